"""Wire JSON -> domain models, for the responses the models do not decode themselves."""

from __future__ import annotations

from typing import Any

from bacalhau.models import (
    Connection,
    Event,
    ExecutionStateType,
    JobHistory,
    JobStateType,
    LivenessState,
    Membership,
    NodeInfo,
    NodeReputation,
    NodeState,
    NodeType,
    Obj,
    parse_rfc3339_ns,
)


def _job_state(value: Any) -> JobStateType | None:
    return None if value in (None, "") else JobStateType.parse(value)


def _exec_state(value: Any) -> ExecutionStateType | None:
    if value in (None, "", 0):
        return None
    return ExecutionStateType.from_wire(int(value), v152=True)


def history_from_dict(data: Any) -> JobHistory:
    """A history item as served to a v1.5.2 client (execution states numbered 0-11)."""
    o = Obj(data, "JobHistory")
    time_text = o.get_str("Time")
    job_state = o.get_obj("JobState")
    exec_state = o.get_obj("ExecutionState")
    return JobHistory(
        seq_num=o.get_int("SeqNum"),
        type=o.get_str("Type"),
        job_id=o.get_str("JobID"),
        event=Event.from_dict(o.raw("Event")),
        time=parse_rfc3339_ns(time_text) if time_text else 0,
        new_revision=o.get_int("NewRevision"),
        node_id=o.get_str("NodeID"),
        execution_id=o.get_str("ExecutionID"),
        job_state_previous=_job_state(job_state.raw("Previous")),
        job_state_new=_job_state(job_state.raw("New")),
        exec_state_previous=_exec_state(exec_state.raw("Previous")),
        exec_state_new=_exec_state(exec_state.raw("New")),
        job_version=o.get_int("JobVersion"),
    )


def _enum_value(value: str, allowed: set[str], default: str) -> str:
    upper = value.upper()
    return upper if upper in allowed else default


def node_info_from_dict(data: Any) -> NodeInfo:
    return NodeInfo.from_dict(data)


def node_state_from_dict(data: Any) -> NodeState:
    """A NodeState, or the merged NodeState+NodeInfo of ``/api/v1/agent/node``."""
    o = Obj(data, "NodeState")
    info = o.raw("Info")
    membership = _enum_value(
        o.get_str("Membership"), {m.value for m in Membership}, Membership.APPROVED.value
    )
    connection = _enum_value(
        o.get_str("Connection"), {c.value for c in Connection}, Connection.CONNECTED.value
    )
    liveness = o.get_str("Liveness").lower()
    if liveness not in {v.value for v in LivenessState}:
        # A Bacalhau requester says only CONNECTED or DISCONNECTED.
        connected = connection == Connection.CONNECTED.value
        liveness = LivenessState.ALIVE.value if connected else LivenessState.DEAD.value
    last_seen = o.get_str("LastSeen")
    try:
        last_seen_ns = parse_rfc3339_ns(last_seen) if last_seen else 0
    except ValueError:
        last_seen_ns = 0
    known_roles = {t.value: t for t in NodeType}
    addresses = o.raw("Addresses")
    return NodeState(
        info=node_info_from_dict(info if info is not None else data),
        membership=Membership(membership),
        membership_message=o.get_str("MembershipMessage"),
        connection=Connection(connection),
        liveness=LivenessState(liveness),
        last_seen_ns=last_seen_ns,
        roles=tuple(known_roles[r] for r in o.str_list("Roles") if r in known_roles),
        record_version=o.get_int("RecordVersion"),
        addresses=(
            {str(k): str(v) for k, v in addresses.items()} if isinstance(addresses, dict) else {}
        ),
        health=o.get_str("Health"),
        reputation=_reputation(o.get_obj("Reputation")) if o.has("Reputation") else None,
    )


def _reputation(o: Obj) -> NodeReputation:
    return NodeReputation(
        agreements=o.get_int("Agreements"), disagreements=o.get_int("Disagreements")
    )
