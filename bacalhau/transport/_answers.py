"""Callbacks that come back in the answer to an ask, checked as a delivered batch is.

A compute node may answer a pre-approved AskForBid with the execution's callbacks (its bid
answer, and its run result when the run ended within the ask's linger) instead of sending
them by a DeliverCallbacks call of its own: one round trip per short execution. The answer's
batch is signed by the node; the requester holds it to every check a delivered batch gets:
the signature is the asked node's (the pinned TLS peer), and the batch and each of its items
speak for that node.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from bacalhau._proto.v1 import compute_pb2, orchestrator_pb2
from bacalhau.errors import InvalidRequest, PermissionDenied
from bacalhau.models import AskAnswer, BidResult, RunResult
from bacalhau.transport._convert_messages import CallbackMessage, callback_item_from_proto
from bacalhau.transport._signing import check_speaker, open_sealed

#: The most callbacks an answer may carry (a node sends those of one execution: a handful).
MAX_ANSWER_ITEMS = 64


def checked_callback_item(peer: str, item: orchestrator_pb2.CallbackItem) -> CallbackMessage:
    """One item of a verified batch, held to the checks of its single callback."""
    message = callback_item_from_proto(item)
    what = {BidResult: "bid result", RunResult: "run result"}.get(type(message), "compute failure")
    check_speaker(message.node_id, peer, what)
    return message


def open_answer(node_id: str, response: compute_pb2.AskForBidResponse) -> AskAnswer | None:
    """The callbacks ``node_id`` answered an ask with (None: none), checked.

    A batch whose envelope does not hold raises :class:`PermissionDenied` (the answer as a
    whole is not the node's word). Items that fail their own checks are left out. The run
    results among them are listed in ``refused``: the requester counts each false proposal
    against the node once and acknowledges it, as a refusing DeliverCallbacks has the node
    drop it. Other refused items are not acknowledged: the node sends them again by
    DeliverCallbacks, which refuses them in turn.
    """
    if not response.HasField("callbacks"):
        return None
    batch = open_sealed(response.callbacks, orchestrator_pb2.CallbackBatch, expected_signer=node_id)
    check_speaker(batch.node_id, node_id, "callback batch")
    if len(batch.items) > MAX_ANSWER_ITEMS or len(response.callback_seqs) != len(batch.items):
        raise InvalidRequest(
            f"an ask's answer carried {len(batch.items)} callbacks and "
            f"{len(response.callback_seqs)} sequence numbers (at most {MAX_ANSWER_ITEMS}, "
            "one each)",
            component="Transport",
        )
    answer = AskAnswer(callbacks=[], seqs=[])
    for item, seq in zip(batch.items, response.callback_seqs, strict=True):
        try:
            answer.callbacks.append(checked_callback_item(node_id, item))
            answer.seqs.append(seq)
        except PermissionDenied as refused:
            if item.WhichOneof("callback") == "run_result":
                answer.refused.append((seq, item.run_result.execution_id, refused.message))
        except (InvalidRequest, DecodeError):
            continue  # malformed: not acknowledged, so DeliverCallbacks refuses it in turn
    return answer
