"""The delivery state machine (every pair of states, allowed or refused); which endpoints park."""

from __future__ import annotations

import itertools

import pytest

from hookline.domain.states import (
    CLAIMABLE_STATES,
    PARKABLE_STATES,
    PARKING_REASONS,
    QUEUED_STATES,
    RETRYABLE_BY_HAND,
    TERMINAL_STATES,
    DeliveryState,
    DisabledReason,
    EndpointStatus,
    allowed_targets,
    can_transition,
    parks,
    receives,
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
    (S.PENDING, S.PARKED),  # its endpoint was disabled (not gone) or is recovering
    (S.RETRYING, S.PARKED),
    (S.FAILED, S.PARKED),  # enable with recover "since:<time>": released with the backlog
    (S.CANCELLED, S.PARKED),
    (S.PARKED, S.PENDING),  # released when the endpoint recovers
    (S.PARKED, S.FAILED),  # overflow or discard: a dead letter
    (S.PARKED, S.CANCELLED),  # the endpoint was deleted
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
    # Terminal: nothing happens on its own any more; only a person moves it back to pending (or
    # to parked, behind its endpoint's backlog: enable with recover "since:<time>").
    assert {S.SUCCEEDED, S.FAILED, S.CANCELLED} == set(TERMINAL_STATES)
    assert all(allowed_targets(state) <= {S.PENDING, S.PARKED} for state in TERMINAL_STATES)
    # Queued: waits for its due time; cancelling (endpoint deleted or disabled) is allowed.
    assert set(QUEUED_STATES) == {S.PENDING, S.RETRYING}
    assert all(can_transition(state, S.DELIVERING) for state in QUEUED_STATES)
    assert all(can_transition(state, S.CANCELLED) for state in QUEUED_STATES)
    # Claimable: every state a worker can move to delivering, a leased one included.
    assert set(CLAIMABLE_STATES) == {s for s in S if can_transition(s, S.DELIVERING)}
    assert set(CLAIMABLE_STATES).isdisjoint(TERMINAL_STATES)
    assert set(CLAIMABLE_STATES) == {S.PENDING, S.RETRYING, S.DELIVERING}  # parked has no entry
    # Parkable: the queued states, exactly the ones the system parks (a person also parks
    # terminal ones, by hand); a leased delivery finishes its attempt first.
    assert set(PARKABLE_STATES) == {s for s in S if can_transition(s, S.PARKED)} - set(
        TERMINAL_STATES
    )
    assert set(PARKABLE_STATES) == set(QUEUED_STATES)
    # Parked: no due time, so neither queued, claimable nor done.
    assert S.PARKED not in {*QUEUED_STATES, *CLAIMABLE_STATES, *TERMINAL_STATES}
    # By hand: exactly the states the machine lets go back to pending, but parked (which goes
    # back by itself, released when its endpoint recovers).
    assert set(RETRYABLE_BY_HAND) == {s for s in S if can_transition(s, S.PENDING)} - {S.PARKED}


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
        "parked",
    ]
    assert [s.value for s in EndpointStatus] == ["active", "disabled", "recovering"]
    assert [r.value for r in DisabledReason] == ["gone", "not_found", "failing", "manual"]


def test_parked_waits_for_release_overflow_or_delete() -> None:
    assert allowed_targets(S.PARKED) == {S.PENDING, S.FAILED, S.CANCELLED}
    for target in (S.DELIVERING, S.SUCCEEDED, S.RETRYING, S.PARKED):
        with pytest.raises(InvalidTransition):
            transition(S.PARKED, target)
    # Parked from a queued state, or by hand from a dead letter; never once it succeeded.
    assert {s for s in S if can_transition(s, S.PARKED)} == {
        S.PENDING,
        S.RETRYING,
        S.FAILED,
        S.CANCELLED,
    }
    assert transition("pending", "parked") is S.PARKED  # type: ignore[arg-type]


# Whether an endpoint parks new deliveries, and whether it makes them at all (queued or parked),
# for every status and disabled_reason (None: no reason recorded).
_A, _D, _R = EndpointStatus.ACTIVE, EndpointStatus.DISABLED, EndpointStatus.RECOVERING
PARKS_RECEIVES = {
    (_A, None): (False, True),
    (_A, DisabledReason.GONE): (False, True),  # a stale reason on an active endpoint is ignored
    (_A, DisabledReason.NOT_FOUND): (False, True),
    (_A, DisabledReason.FAILING): (False, True),
    (_A, DisabledReason.MANUAL): (False, True),
    (_D, None): (False, False),
    (_D, DisabledReason.GONE): (False, False),  # 410: done until an operator acts
    (_D, DisabledReason.NOT_FOUND): (True, True),
    (_D, DisabledReason.FAILING): (True, True),
    (_D, DisabledReason.MANUAL): (True, True),
    (_R, None): (True, True),  # new events wait behind the backlog
    (_R, DisabledReason.GONE): (True, True),
    (_R, DisabledReason.NOT_FOUND): (True, True),
    (_R, DisabledReason.FAILING): (True, True),
    (_R, DisabledReason.MANUAL): (True, True),
}


@pytest.mark.parametrize(
    ("status", "reason"), list(itertools.product(EndpointStatus, [None, *DisabledReason]))
)
def test_parks_and_receives(status: EndpointStatus, reason: DisabledReason | None) -> None:
    assert (parks(status, reason), receives(status, reason)) == PARKS_RECEIVES[(status, reason)]
    # The same answer for the plain strings read from the database.
    plain = None if reason is None else reason.value
    assert (parks(status.value, plain), receives(status.value, plain)) == PARKS_RECEIVES[
        (status, reason)
    ]


def test_an_unknown_status_parks_and_receives_nothing() -> None:
    assert (parks("paused", "failing"), receives("paused", "failing")) == (False, False)


def test_every_reason_but_gone_parks() -> None:
    assert set(DisabledReason) - {DisabledReason.GONE} == PARKING_REASONS
