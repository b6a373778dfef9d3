"""Translating the Docker engine's errors into ours, in one place."""

from __future__ import annotations

import docker.errors

from bacalhau.errors import ExecutionFailed, ExecutorNotInstalled

#: What a call to the engine can raise: the SDK's errors, and the OSError family that
#: ``requests`` connection failures belong to.
ENGINE_ERRORS = (docker.errors.DockerException, OSError)


def explain(e: BaseException) -> str:
    """The engine's own explanation when it gave one, else the exception's text."""
    explanation = getattr(e, "explanation", None)
    return str(explanation) if explanation else str(e)


def unreachable(e: BaseException) -> ExecutorNotInstalled:
    return ExecutorNotInstalled(
        f"the Docker engine is not reachable: {explain(e)}",
        hint="start the Docker engine on the compute node (dockerd) or check DOCKER_HOST",
    )


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
