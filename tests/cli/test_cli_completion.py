"""``bacalhau completion SHELL``: a script a real shell runs, completing commands, flags and
configuration keys."""

from __future__ import annotations

import shutil
import subprocess

from click.testing import CliRunner, Result

from bacalhau.cli import cli


def complete(words: str, shell: str = "bash") -> list[str]:
    """What the command line answers a completion request, as the script asks it."""
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    env = {"_BACALHAU_COMPLETE": f"{shell}_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    result = CliRunner().invoke(cli, [], env=env, prog_name="bacalhau", catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return [line for line in result.output.splitlines() if line]


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_bash_script_completes_commands_in_a_real_bash() -> None:
    script = run("completion", "bash")
    assert script.exit_code == 0
    assert shutil.which("bacalhau"), "the bacalhau command is installed with the package"
    probe = (
        script.output
        + "\nCOMP_WORDS=(bacalhau jo); COMP_CWORD=1; _bacalhau_completion bacalhau 2>/dev/null"
        + '\nprintf "%s\\n" "${COMPREPLY[@]}"'
        + "\nCOMP_WORDS=(bacalhau job li); COMP_CWORD=2; COMPREPLY=()"
        + "\n_bacalhau_completion bacalhau 2>/dev/null"
        + '\nprintf "%s\\n" "${COMPREPLY[@]}"'
    )
    out = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.split() == ["job", "list"]


def test_zsh_and_fish_scripts_name_the_command() -> None:
    zsh = run("completion", "zsh")
    assert zsh.exit_code == 0 and zsh.output.startswith("#compdef bacalhau")
    fish = run("completion", "fish")
    assert fish.exit_code == 0 and "complete --no-files --command bacalhau" in fish.output


def test_an_unsupported_shell_is_a_clear_error() -> None:
    result = run("completion", "powershell")
    assert result.exit_code == 1
    assert "no completion script for powershell" in result.output
    assert "Hint: use bash, zsh or fish" in result.output
    assert run("completion", "tcsh").exit_code == 2  # not a choice: a usage error


def test_flags_and_their_choices_complete() -> None:
    flags = complete("bacalhau job list --")
    assert "plain,--order-by" in flags and "plain,--output" in flags
    assert "plain,yaml" in complete("bacalhau job list --output ")


def test_config_set_completes_keys_case_insensitively_with_what_they_set() -> None:
    keys = complete("bacalhau config set compute.allocatedcapacity.c")
    assert keys == ["plain,Compute.AllocatedCapacity.CPU"]
    described = complete("bacalhau config set API.Po", shell="zsh")
    assert described == ["plain", "API.Port", "sets api_port"]


def test_config_flag_completes_key_equals_or_a_file() -> None:
    keys = complete("bacalhau -c API.Po")
    assert keys == ["file,API.Po", "plain,API.Port="]
    assert complete("bacalhau serve -c ./conf") == ["file,./conf"]
    assert complete("bacalhau serve -c API.Port=12") == []
    # bash leaves the cursor right after KEY= for its value.
    assert "[[ $value == *= ]] && compopt -o nospace" in run("completion", "bash").output
