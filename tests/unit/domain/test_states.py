"""The delivery state machine: every pair of states, allowed or refused."""

from __future__ import annotations

import itertools

import pytest

from hookline.domain.states import (
    CLAIMABLE_STATES,
    QUEUED_STATES,
    RETRYABLE_BY_HAND,
    TERMINAL_STATES,
    DeliveryState,
    DisabledReason,
    EndpointStatus,
    allowed_targets,
    can_transition,
    transition,
    values,
)
from hookline.errors import Conflict, InvalidTransition

S = DeliveryState
ALLOWED = {
    (S.PENDING, S.DELIVERING),
    (S.PENDING, S.CANCELLED),
    (S.PENDING, S.FAILED),  # its request cannot be built: a dead letter without an attempt
    (S.RETRYING, S.DELIVERING),
    (S.RETRYING, S.CANCELLED),
    (S.RETRYING, S.FAILED),
    (S.DELIVERING, S.SUCCEEDED),
    (S.DELIVERING, S.RETRYING),
    (S.DELIVERING, S.FAILED),
    (S.DELIVERING, S.DELIVERING),  # re-claim after an expired lease
    (S.FAILED, S.PENDING),  # manual retry, dead-letter replay
    (S.CANCELLED, S.PENDING),  # re-enable with replay_cancelled
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
def test_every_pair(current: DeliveryState, target: DeliveryState) -> None:
    allowed = (current, target) in ALLOWED
    assert can_transition(current, target) is allowed
    if allowed:
        assert transition(current, target) is target
    else:
        with pytest.raises(InvalidTransition) as caught:
            transition(current, target)
        assert (caught.value.current, caught.value.target) == (current.value, target.value)
        assert isinstance(caught.value, Conflict)


def test_plain_strings_from_the_database_work() -> None:
    assert can_transition("pending", "delivering")  # type: ignore[arg-type]
    assert transition("retrying", "cancelled") is S.CANCELLED  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'lost'"):
        can_transition("lost", "pending")  # type: ignore[arg-type]


def test_succeeded_is_the_only_state_with_no_way_out() -> None:
    assert [state for state in S if not allowed_targets(state)] == [S.SUCCEEDED]


def test_state_groups_follow_the_machine() -> None:
    # Terminal: nothing happens on its own any more; only a person moves it back to pending.
    assert {S.SUCCEEDED, S.FAILED, S.CANCELLED} == set(TERMINAL_STATES)
    assert all(allowed_targets(state) <= {S.PENDING} for state in TERMINAL_STATES)
    # Queued: waits for its due time; cancelling (endpoint deleted or disabled) is allowed.
    assert set(QUEUED_STATES) == {S.PENDING, S.RETRYING}
    assert all(can_transition(state, S.DELIVERING) for state in QUEUED_STATES)
    assert all(can_transition(state, S.CANCELLED) for state in QUEUED_STATES)
    # Claimable: every state a worker can move to delivering, a leased one included.
    assert set(CLAIMABLE_STATES) == {s for s in S if can_transition(s, S.DELIVERING)}
    assert set(CLAIMABLE_STATES).isdisjoint(TERMINAL_STATES)
    # By hand: exactly the states the machine lets go back to pending.
    assert set(RETRYABLE_BY_HAND) == {s for s in S if can_transition(s, S.PENDING)}


def test_values_are_plain_strings_for_sql() -> None:
    assert values(QUEUED_STATES) == ("pending", "retrying")
    assert all(type(value) is str for value in values(CLAIMABLE_STATES))


def test_public_values() -> None:
    assert [s.value for s in S] == [
        "pending",
        "delivering",
        "succeeded",
        "retrying",
        "failed",
        "cancelled",
    ]
    assert [s.value for s in EndpointStatus] == ["active", "disabled"]
    assert [r.value for r in DisabledReason] == ["gone", "not_found", "failing", "manual"]
