"""Translating the Docker engine's errors into ours, in one place."""

from __future__ import annotations

import docker.errors

from bacalhau.errors import ExecutionFailed, ExecutorUnavailable

#: What a call to the engine can raise: the SDK's errors, and the OSError family that
#: ``requests`` connection failures belong to.
ENGINE_ERRORS = (docker.errors.DockerException, OSError)


def explain(e: BaseException) -> str:
    """The engine's own explanation when it gave one, else the exception's text."""
    explanation = getattr(e, "explanation", None)
    return str(explanation) if explanation else str(e)


def unreachable(e: BaseException) -> ExecutorUnavailable:
    """The engine did not answer: it may be restarting, so the run may be tried again (a
    node whose engine stays away stops offering Docker: see the executor's health)."""
    return ExecutorUnavailable(
        f"the Docker engine is not reachable: {_reason(e)}",
        hint="start the Docker engine on the compute node (dockerd) or check DOCKER_HOST",
    )


def _reason(e: BaseException) -> str:
    """Why a call to the engine failed, in words rather than the Python objects requests
    nests (``('Connection aborted.', FileNotFoundError(2, ...))``)."""
    inner: BaseException | None = e
    while inner is not None:
        for arg in getattr(inner, "args", ()):
            if isinstance(arg, OSError) and arg.strerror:
                return f"{arg.strerror} ({type(arg).__name__})"
        if isinstance(inner, OSError) and inner.strerror:
            return f"{inner.strerror} ({type(inner).__name__})"
        inner = inner.__cause__ or inner.__context__
    return explain(e)


def start_error(e: BaseException) -> ExecutionFailed:
    """A container that could not start; a missing program gets its own clear message."""
    explanation = explain(e)
    if "executable file not found" in explanation or "no such file or directory" in explanation:
        return ExecutionFailed(
            f"failed to start container: executable file not found: {explanation}",
            hint="check the entrypoint and parameters: the first word must be a program "
            "that exists in the image",
        )
    if "port is already allocated" in explanation or "address already in use" in explanation:
        # Taken between the compute node's check and the start (another program, or a
        # container of another node on this engine).
        return ExecutionFailed(
            f"failed to start container: a published port is taken: {explanation}",
            hint="the requester runs the job again, on this node or another",
        )
    return ExecutionFailed(f"failed to start container: {explanation}")
