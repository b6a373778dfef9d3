"""Callbacks that come back in the answer to an ask, checked as a delivered batch is.

A compute node may answer a pre-approved AskForBid with the execution's callbacks (its bid
answer, and its run result when the run ended within the ask's linger) instead of sending
them by a DeliverCallbacks call of its own: one round trip per short execution. The answer's
batch is signed by the node; the requester holds it to every check a delivered batch gets:
the signature is the asked node's (the pinned TLS peer), and the batch and each of its items
speak for that node.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.message import DecodeError

from bacalhau._proto.v1 import compute_pb2, orchestrator_pb2
from bacalhau._proto.v1.types_pb2 import SignedPayload
from bacalhau.errors import BacalhauError, InvalidRequest, PermissionDenied, error_from_code
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
    items = _opened_items(node_id, response.callbacks, response.callback_seqs, MAX_ANSWER_ITEMS)
    return _answer(node_id, items, response.callback_seqs)


def open_answers(
    node_id: str, response: compute_pb2.AskForBidsResponse, asks: int
) -> list[AskAnswer | BacalhauError | None]:
    """Each of ``asks`` asks' answer in an AskForBids response from ``node_id``, in order:
    its callbacks (checked as :func:`open_answer` checks them; None: none), or the error the
    node met handling it. A response that does not hold together (its signature, its
    counts) raises: no ask's answer can be told apart."""
    sizes, outcomes = list(response.answer_sizes), list(response.outcomes)
    if len(sizes) != asks or len(outcomes) != asks:
        raise InvalidRequest(
            f"node {node_id} answered {asks} asks with {len(sizes)} answers and "
            f"{len(outcomes)} outcomes",
            component="Transport",
        )
    items: list[orchestrator_pb2.CallbackItem] = []
    if response.HasField("callbacks"):
        items = _opened_items(
            node_id, response.callbacks, response.callback_seqs, MAX_ANSWER_ITEMS * asks
        )
    if sum(sizes) != len(items) or any(n > MAX_ANSWER_ITEMS for n in sizes):
        raise InvalidRequest(
            f"node {node_id}'s answers count {sum(sizes)} callbacks, its batch holds "
            f"{len(items)} (at most {MAX_ANSWER_ITEMS} an ask)",
            component="Transport",
        )
    answers: list[AskAnswer | BacalhauError | None] = []
    start = 0
    for size, outcome in zip(sizes, outcomes, strict=True):
        end = start + size
        if outcome.error_code:
            answers.append(
                error_from_code(outcome.error_code, outcome.message, hint=outcome.hint or None)
            )
        elif size:
            answers.append(_answer(node_id, items[start:end], response.callback_seqs[start:end]))
        else:
            answers.append(None)
        start = end
    return answers


def _opened_items(
    node_id: str, envelope: SignedPayload, seqs: Sequence[int], limit: int
) -> list[orchestrator_pb2.CallbackItem]:
    """The items of a callback batch that ``node_id`` signed, one sequence number each."""
    batch = open_sealed(envelope, orchestrator_pb2.CallbackBatch, expected_signer=node_id)
    check_speaker(batch.node_id, node_id, "callback batch")
    if len(batch.items) > limit or len(seqs) != len(batch.items):
        raise InvalidRequest(
            f"an ask's answer carried {len(batch.items)} callbacks and {len(seqs)} sequence "
            f"numbers (at most {limit}, one each)",
            component="Transport",
        )
    return list(batch.items)


def _answer(
    node_id: str, items: Sequence[orchestrator_pb2.CallbackItem], seqs: Sequence[int]
) -> AskAnswer:
    answer = AskAnswer(callbacks=[], seqs=[])
    for item, seq in zip(items, seqs, strict=True):
        try:
            answer.callbacks.append(checked_callback_item(node_id, item))
            answer.seqs.append(seq)
        except PermissionDenied as refused:
            if item.WhichOneof("callback") == "run_result":
                answer.refused.append((seq, item.run_result.execution_id, refused.message))
        except (InvalidRequest, DecodeError):
            continue  # malformed: not acknowledged, so DeliverCallbacks refuses it in turn
    return answer
