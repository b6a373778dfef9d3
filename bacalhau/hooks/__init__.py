"""Running the operator's programs: what the compute node's job-selection probes and the
requester's bid-approval hooks share.

Both sides run a ``bash -c`` command with a JSON payload on stdin (and, when small, in one
environment variable), read a bounded amount of its output, and kill its whole process group
when it overruns its time; both read answers whose keys may come in any case; both log a
broken program once per cause. The two roles may not import each other (they meet only
through the protocol), so this lives below both.
"""

from bacalhau.hooks._command import (
    MAX_OUTPUT,
    MAX_REASON,
    CommandOutcome,
    HookProgramFailed,
    OnceLog,
    crashed,
    exit_description,
    first_line,
    json_object,
    key_any_case,
    missing_program,
    reason_text,
    run_command,
)
from bacalhau.hooks._http import AnswerTooLarge, read_answer

__all__ = [
    "MAX_OUTPUT",
    "MAX_REASON",
    "AnswerTooLarge",
    "CommandOutcome",
    "HookProgramFailed",
    "OnceLog",
    "crashed",
    "exit_description",
    "first_line",
    "json_object",
    "key_any_case",
    "missing_program",
    "read_answer",
    "reason_text",
    "run_command",
]
