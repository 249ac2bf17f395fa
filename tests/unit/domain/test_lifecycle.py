"""Probing a disabled endpoint and releasing its backlog slowly: every rule of domain.lifecycle.

Time is explicit (timezone-aware datetimes from ``NOW``); jitter comes from a seeded
``random.Random`` or from ``_FixedUniform``, whose ``uniform`` answers a fixed value.
"""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookline.domain.lifecycle import (
    PROBE_EVENT_TYPE,
    TEST_EVENT_TYPE,
    ProbePolicy,
    ProbeState,
    RecoveryBucket,
    RecoveryPolicy,
)
from tests.unit.domain.strategies import seeds

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
PROBES = ProbePolicy()  # 60 s up to 3600 s, 3 successes
RECOVERY = RecoveryPolicy()  # 1/s up to 50/s, 5 failures
EXAMPLES = settings(max_examples=200, deadline=None)


def _at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


class _FixedUniform(random.Random):
    """An rng whose uniform() always answers ``answer`` and records what it was asked."""

    def __init__(self, answer: float) -> None:
        super().__init__(0)
        self.answer = answer
        self.asked: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.asked.append((a, b))
        return self.answer


class _NoGet:
    """Indexable like the stored dict but not a mapping (no ``.get``): unreadable state."""

    def __init__(self, **items: Any) -> None:
        self.items = items

    def __getitem__(self, key: str) -> Any:
        return self.items[key]

    def __repr__(self) -> str:  # a stable test id (pytest-xdist workers must agree on ids)
        return f"_NoGet({self.items})"


def _bucket(**fields: Any) -> RecoveryBucket:
    values: dict[str, Any] = {"rate": 1.0, "tokens": 0.0, "refilled_at": NOW} | fields
    return RecoveryBucket(**values)


def test_event_types_are_public_values() -> None:
    assert (PROBE_EVENT_TYPE, TEST_EVENT_TYPE) == ("hookline.probe", "hookline.test")


# --- ProbePolicy -----------------------------------------------------------------------------


def test_probe_policy_defaults() -> None:
    assert (PROBES.min_interval_s, PROBES.max_interval_s, PROBES.successes_needed) == (
        60.0,
        3600.0,
        3,
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"min_interval_s": 0}, "0 < min_interval_s <= max_interval_s"),
        ({"min_interval_s": -1}, "0 < min_interval_s <= max_interval_s"),
        ({"min_interval_s": math.nan}, "0 < min_interval_s <= max_interval_s"),
        ({"min_interval_s": 61, "max_interval_s": 60}, "0 < min_interval_s <= max_interval_s"),
        ({"max_interval_s": math.nan}, "0 < min_interval_s <= max_interval_s"),
        ({"successes_needed": 0}, "successes_needed must be at least 1"),
        ({"successes_needed": -3}, "successes_needed must be at least 1"),
    ],
)
def test_probe_policy_refuses_impossible_settings(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ProbePolicy(**fields)


def test_probe_policy_edges_are_allowed() -> None:
    policy = ProbePolicy(min_interval_s=0.001, max_interval_s=0.001, successes_needed=1)
    assert policy.min_interval_s == policy.max_interval_s


# --- ProbeState: the interval and the count --------------------------------------------------


def test_probing_starts_at_the_shortest_interval() -> None:
    assert ProbeState.start(PROBES) == ProbeState(interval_s=60.0, successes=0, probes=0)


def test_each_failure_doubles_the_interval_up_to_the_max() -> None:
    state = ProbeState.start(PROBES)
    intervals = []
    for _ in range(8):
        state = state.after(ok=False, policy=PROBES)
        intervals.append(state.interval_s)
    assert intervals == [120, 240, 480, 960, 1920, 3600, 3600, 3600]
    assert state.probes == 8


def test_a_failure_never_leaves_the_interval_below_the_min_or_above_the_max() -> None:
    # A state stored under other settings (the policy changed since) is brought back in range.
    policy = ProbePolicy(min_interval_s=100, max_interval_s=1000)
    assert ProbeState(interval_s=10).after(ok=False, policy=policy).interval_s == 100
    assert ProbeState(interval_s=40).after(ok=False, policy=policy).interval_s == 100
    assert ProbeState(interval_s=60).after(ok=False, policy=policy).interval_s == 120
    assert ProbeState(interval_s=999).after(ok=False, policy=policy).interval_s == 1000
    assert ProbeState(interval_s=5000).after(ok=False, policy=policy).interval_s == 1000


def test_a_success_keeps_the_interval_and_counts() -> None:
    state = ProbeState(interval_s=480, successes=1, probes=7)
    assert state.after(ok=True, policy=PROBES) == ProbeState(interval_s=480, successes=2, probes=8)


def test_a_failure_starts_the_count_again() -> None:
    state = ProbeState(interval_s=480, successes=2, probes=7)
    assert state.after(ok=False, policy=PROBES) == ProbeState(interval_s=960, successes=0, probes=8)


def test_healthy_after_enough_consecutive_successes() -> None:
    state = ProbeState.start(PROBES)
    seen = []
    for ok in (True, True, False, True, True, True):
        state = state.after(ok=ok, policy=PROBES)
        seen.append(state.healthy(PROBES))
    # Two successes, then a failure in between: the count starts again; three in a row count.
    assert seen == [False, False, False, False, False, True]
    assert state.successes == 3
    assert state.probes == 6


@pytest.mark.parametrize(("successes", "healthy"), [(0, False), (1, True), (5, True)])
def test_one_success_is_enough_when_the_policy_says_so(successes: int, healthy: bool) -> None:
    policy = ProbePolicy(successes_needed=1)
    assert ProbeState(interval_s=60, successes=successes).healthy(policy) is healthy


# --- ProbeState.next_at ----------------------------------------------------------------------


@pytest.mark.parametrize(("answer", "seconds"), [(0.75, 450.0), (0.9, 540.0), (1.0, 600.0)])
def test_next_probe_is_the_interval_up_to_a_quarter_sooner(answer: float, seconds: float) -> None:
    rng = _FixedUniform(answer)
    assert ProbeState(interval_s=600).next_at(NOW, rng) == _at(seconds)
    assert rng.asked == [(0.75, 1.0)]


@EXAMPLES
@given(seed=seeds, interval_s=st.floats(min_value=0.001, max_value=86400))
def test_next_probe_stays_within_the_jitter_bounds(seed: int, interval_s: float) -> None:
    due = ProbeState(interval_s=interval_s).next_at(NOW, random.Random(seed))
    # timedelta keeps whole microseconds: allow the rounding of one.
    micro = timedelta(microseconds=1)
    assert _at(0.75 * interval_s) - micro <= due <= _at(interval_s) + micro
    assert due > NOW


def test_the_same_seed_gives_the_same_probe_time() -> None:
    state = ProbeState(interval_s=3600)
    assert state.next_at(NOW, random.Random(7)) == state.next_at(NOW, random.Random(7))


# --- ProbeState JSON -------------------------------------------------------------------------


def test_probe_state_round_trips_through_json_text() -> None:
    state = ProbeState(interval_s=960.5, successes=2, probes=11)
    assert state.to_json() == {"interval_s": 960.5, "successes": 2, "probes": 11}
    stored = json.loads(json.dumps(state.to_json()))
    assert ProbeState.from_json(stored, PROBES) == state


def test_probe_state_missing_counts_are_zero() -> None:
    assert ProbeState.from_json({"interval_s": 120}, PROBES) == ProbeState(interval_s=120)


def test_probe_state_numbers_written_as_strings_are_read() -> None:
    stored = {"interval_s": "120", "successes": "2", "probes": 4.0}
    assert ProbeState.from_json(stored, PROBES) == ProbeState(interval_s=120, successes=2, probes=4)


@pytest.mark.parametrize(
    "stored",
    [
        None,
        {},
        [],
        [60],
        "interval_s",
        42,
        _NoGet(interval_s=120),
        {"successes": 2, "probes": 3},
        {"interval_s": None},
        {"interval_s": "soon"},
        {"interval_s": [60]},
        {"interval_s": {"s": 60}},
        {"interval_s": 120, "successes": "two"},
        {"interval_s": 120, "successes": None},
        {"interval_s": 120, "probes": [1]},
        {"interval_s": math.nan},
        {"interval_s": "NaN"},
        {"interval_s": math.inf},
        {"interval_s": -math.inf},
        {"interval_s": 0},
        {"interval_s": -0.0},
        {"interval_s": -120},
        # An unreadable interval drops the counts stored with it.
        {"interval_s": 0, "successes": 2, "probes": 5},
        {"interval_s": -0.0, "successes": 2, "probes": 5},
        {"interval_s": math.nan, "successes": 2, "probes": 5},
    ],
    ids=repr,
)
def test_unreadable_probe_state_starts_afresh(stored: Any) -> None:
    assert ProbeState.from_json(stored, PROBES) == ProbeState.start(PROBES)


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ({"interval_s": 1}, ProbeState(interval_s=60)),
        ({"interval_s": 59.9}, ProbeState(interval_s=60)),
        ({"interval_s": 3600.5}, ProbeState(interval_s=3600)),
        ({"interval_s": 1e300}, ProbeState(interval_s=3600)),
        ({"interval_s": 600, "successes": -2, "probes": -9}, ProbeState(interval_s=600)),
    ],
)
def test_probe_state_is_clamped_into_the_policy(stored: Any, expected: ProbeState) -> None:
    assert ProbeState.from_json(stored, PROBES) == expected


@pytest.mark.parametrize(
    "stored",
    [
        # JSON text the column may hold: a 400-digit integer, and 1e400 (json.loads gives inf).
        json.loads('{"interval_s": 1' + "0" * 400 + "}"),
        json.loads('{"interval_s": 60, "successes": 1e400}'),
    ],
    ids=["huge-int-interval", "inf-successes"],
)
def test_probe_state_with_numbers_too_big_starts_afresh(stored: Any) -> None:
    assert ProbeState.from_json(stored, PROBES) == ProbeState.start(PROBES)


# --- RecoveryPolicy --------------------------------------------------------------------------


def test_recovery_policy_defaults() -> None:
    assert (RECOVERY.start_rate, RECOVERY.max_rate, RECOVERY.max_failures) == (1.0, 50.0, 5)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"start_rate": 0}, "0 < start_rate <= max_rate"),
        ({"start_rate": -1}, "0 < start_rate <= max_rate"),
        ({"start_rate": math.nan}, "0 < start_rate <= max_rate"),
        ({"start_rate": 51}, "0 < start_rate <= max_rate"),
        ({"start_rate": 2, "max_rate": 1.5}, "0 < start_rate <= max_rate"),
        ({"max_failures": 0}, "max_failures must be at least 1"),
        ({"max_failures": -1}, "max_failures must be at least 1"),
    ],
)
def test_recovery_policy_refuses_impossible_settings(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RecoveryPolicy(**fields)


def test_recovery_policy_edges_are_allowed() -> None:
    policy = RecoveryPolicy(start_rate=0.01, max_rate=0.01, max_failures=1)
    assert policy.start_rate == policy.max_rate


# --- RecoveryBucket: start, burst, refill ----------------------------------------------------


def test_a_new_bucket_releases_one_at_once_at_the_start_rate() -> None:
    bucket = RecoveryBucket.start(RECOVERY, NOW)
    assert bucket == RecoveryBucket(
        rate=1.0, tokens=1.0, refilled_at=NOW, streak=0, failures=0, paused_until=None
    )
    count, after = bucket.take(100, NOW)
    assert count == 1
    assert after.tokens == 0


def test_a_fast_start_rate_still_starts_with_one_token() -> None:
    bucket = RecoveryBucket.start(RecoveryPolicy(start_rate=20), NOW)
    assert (bucket.rate, bucket.tokens) == (20, 1.0)
    assert bucket.take(100, NOW)[0] == 1


def test_a_slow_start_rate_also_releases_one_at_once() -> None:
    bucket = RecoveryBucket.start(RecoveryPolicy(start_rate=0.5), NOW)
    assert bucket.tokens == 1.0
    assert bucket.take(100, NOW)[0] == 1


@pytest.mark.parametrize(("rate", "burst"), [(0.01, 1.0), (0.5, 1.0), (1.0, 1.0), (7.5, 7.5)])
def test_burst_is_one_seconds_worth_and_at_least_one(rate: float, burst: float) -> None:
    assert _bucket(rate=rate).burst == burst


def test_tokens_refill_at_the_rate_up_to_the_burst() -> None:
    bucket = _bucket(rate=4.0, tokens=0.0)
    assert bucket.refill(_at(0.25)) == _bucket(rate=4.0, tokens=1.0, refilled_at=_at(0.25))
    assert bucket.refill(_at(0.5)).tokens == 2.0
    assert bucket.refill(_at(1)).tokens == 4.0
    assert bucket.refill(_at(3600)).tokens == 4.0  # one second's worth, however long it waited
    assert _bucket(rate=4.0, tokens=3.5).refill(_at(0.25)).tokens == 4.0


def test_a_slow_bucket_still_holds_one_token() -> None:
    bucket = _bucket(rate=0.5, tokens=0.0)
    assert bucket.refill(_at(1)).tokens == 0.5
    assert bucket.refill(_at(2)).tokens == 1.0
    assert bucket.refill(_at(60)).tokens == 1.0


def test_no_refill_while_paused_then_counted_from_the_end_of_the_pause() -> None:
    paused = _bucket(rate=2.0, tokens=0.0, paused_until=_at(10))
    # While paused: empty (even tokens stored during the pause), and still paused.
    during = _bucket(rate=2.0, tokens=1.5, paused_until=_at(10)).refill(_at(5))
    assert during == _bucket(rate=2.0, tokens=0.0, refilled_at=_at(5), paused_until=_at(10))
    assert during.refill(_at(9.999)).tokens == 0.0
    # At the end of the pause: nothing yet, and the pause is over.
    assert paused.refill(_at(10)) == _bucket(rate=2.0, tokens=0.0, refilled_at=_at(10))
    # After it: only the time since the pause ended counts (0.5 s at 2/s), not the 10.5 s.
    assert paused.refill(_at(10.5)) == _bucket(rate=2.0, tokens=1.0, refilled_at=_at(10.5))
    assert during.refill(_at(10.25)).tokens == 0.5


def test_a_pause_that_ended_before_the_last_refill_changes_nothing() -> None:
    bucket = _bucket(rate=2.0, tokens=0.0, refilled_at=_at(10), paused_until=_at(5))
    assert bucket.refill(_at(10.5)) == _bucket(rate=2.0, tokens=1.0, refilled_at=_at(10.5))


def test_a_clock_gone_back_adds_nothing() -> None:
    bucket = _bucket(rate=2.0, tokens=0.5, refilled_at=_at(10))
    assert bucket.refill(_at(4)).tokens == 0.5
    assert bucket.refill(_at(10)).tokens == 0.5


# --- RecoveryBucket.take ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tokens", "available", "count", "left"),
    [
        (2.75, 10, 2, 0.75),  # whole tokens only
        (2.75, 1, 1, 1.75),  # at most what is parked
        (2.75, 0, 0, 2.75),
        (2.75, -3, 0, 2.75),  # a negative count (a racing release) takes nothing
        (0.5, 10, 0, 0.5),
        (3.0, 3, 3, 0.0),
        (1 - 1e-12, 10, 1, 0.0),  # float dust does not hold a release back, nor go negative
    ],
)
def test_take_whole_tokens_up_to_what_is_available(
    tokens: float, available: int, count: int, left: float
) -> None:
    bucket = _bucket(rate=5.0, tokens=tokens)
    assert bucket.take(available, NOW) == (count, _bucket(rate=5.0, tokens=left))


def test_take_refills_first() -> None:
    bucket = _bucket(rate=4.0, tokens=0.5)
    count, after = bucket.take(10, _at(0.5))
    assert (count, after.tokens, after.refilled_at) == (2, 0.5, _at(0.5))


def test_take_while_paused_takes_nothing() -> None:
    bucket = _bucket(rate=4.0, tokens=3.0, paused_until=_at(1))
    assert bucket.take(10, NOW)[0] == 0


def test_half_a_token_per_second_releases_one_every_two_seconds() -> None:
    bucket = _bucket(rate=0.5, tokens=0.0)
    released_at = []
    for tick in range(1, 41):  # every 0.25 s for 10 s
        count, bucket = bucket.take(1000, _at(tick * 0.25))
        released_at += [tick * 0.25] * count
    assert released_at == [2.0, 4.0, 6.0, 8.0, 10.0]


# --- RecoveryBucket.after_answers: the ramp --------------------------------------------------


def _answers(
    bucket: RecoveryBucket,
    *,
    successes: int = 0,
    failures: int = 0,
    retry_after_s: float | None = None,
    policy: RecoveryPolicy = RECOVERY,
    now: datetime = NOW,
) -> RecoveryBucket:
    return bucket.after_answers(
        successes=successes,
        failures=failures,
        retry_after_s=retry_after_s,
        policy=policy,
        now=now,
    )


def test_each_rate_successes_in_a_row_double_the_rate() -> None:
    bucket = RecoveryBucket.start(RECOVERY, NOW)
    seen = []
    for _ in range(7):
        bucket = _answers(bucket, successes=1)
        seen.append((bucket.rate, bucket.streak))
    # 1→2 after one success, 2→4 after two more, 4→8 after four more.
    assert seen == [(2, 0), (2, 1), (4, 0), (4, 1), (4, 2), (4, 3), (8, 0)]


def test_one_batch_may_double_several_times_and_carries_the_rest() -> None:
    bucket = _bucket(rate=8.0, streak=3)
    after = _answers(bucket, successes=5 + 16 + 7)  # 8 → 16 (uses 8), 16 → 32 (uses 16), 7 left
    assert (after.rate, after.streak) == (32, 7)


def test_the_rate_stops_at_max_rate_and_the_streak_keeps_counting() -> None:
    bucket = _answers(_bucket(rate=32.0), successes=32)
    assert (bucket.rate, bucket.streak) == (50, 0)
    bucket = _answers(bucket, successes=120)
    assert (bucket.rate, bucket.streak) == (50, 120)


def test_max_rate_is_reached_exactly_when_it_is_not_a_power_of_two() -> None:
    policy = RecoveryPolicy(start_rate=3, max_rate=7)
    bucket = _answers(RecoveryBucket.start(policy, NOW), successes=3 + 5, policy=policy)
    assert (bucket.rate, bucket.streak) == (6, 5)
    bucket = _answers(bucket, successes=1, policy=policy)
    assert (bucket.rate, bucket.streak) == (7, 0)


def test_a_fractional_rate_needs_its_ceiling_in_successes() -> None:
    policy = RecoveryPolicy(start_rate=0.5)
    bucket = _answers(RecoveryBucket.start(policy, NOW), successes=1, policy=policy)
    assert (bucket.rate, bucket.streak) == (1.0, 0)
    bucket = _answers(_bucket(rate=2.5, streak=1), successes=1)
    assert (bucket.rate, bucket.streak) == (2.5, 2)  # ceil(2.5) = 3 successes needed
    bucket = _answers(bucket, successes=1)
    assert (bucket.rate, bucket.streak) == (5.0, 0)


def test_successes_clear_the_failures_and_keep_the_tokens() -> None:
    bucket = _answers(_bucket(rate=4.0, tokens=2.5, failures=3), successes=1)
    assert (bucket.failures, bucket.tokens, bucket.streak) == (0, 2.5, 1)


def test_no_answers_change_nothing() -> None:
    bucket = _bucket(rate=4.0, tokens=2.5, streak=2, failures=1)
    assert _answers(bucket) == bucket


# --- RecoveryBucket.after_answers: failures and Retry-After ----------------------------------


def test_a_failure_halves_the_rate_and_resets_the_streak() -> None:
    bucket = _bucket(rate=16.0, tokens=3.0, streak=9, failures=1)
    after = _answers(bucket, failures=2)
    assert (after.rate, after.streak, after.failures, after.tokens) == (8.0, 0, 3, 3.0)


def test_a_failure_caps_the_tokens_at_the_new_burst() -> None:
    assert _answers(_bucket(rate=16.0, tokens=12.0), failures=1).tokens == 8.0
    assert _answers(_bucket(rate=1.5, tokens=1.5), failures=1).tokens == 1.0  # burst ≥ 1


def test_the_rate_never_halves_below_the_start_rate() -> None:
    policy = RecoveryPolicy(start_rate=3)
    bucket = _bucket(rate=10.0)
    rates = []
    for _ in range(4):
        bucket = _answers(bucket, failures=1, policy=policy)
        rates.append(bucket.rate)
    assert rates == [5.0, 3.0, 3.0, 3.0]


def test_failures_win_over_successes_in_the_same_batch() -> None:
    after = _answers(_bucket(rate=8.0, streak=7, failures=2), successes=40, failures=1)
    assert (after.rate, after.streak, after.failures) == (4.0, 0, 3)


def test_a_retry_after_empties_the_bucket_and_pauses_it() -> None:
    bucket = _bucket(rate=8.0, tokens=5.0)
    after = _answers(bucket, failures=1, retry_after_s=30, now=_at(5))
    assert after == _bucket(
        rate=4.0, tokens=0.0, refilled_at=_at(5), failures=1, paused_until=_at(35)
    )
    assert after.take(100, _at(34.9))[0] == 0
    count, resumed = after.take(100, _at(35.5))  # 0.5 s at 4/s since the pause ended
    assert (count, resumed.paused_until) == (2, None)


def test_a_shorter_retry_after_does_not_shorten_a_pause() -> None:
    paused = _answers(_bucket(rate=4.0, tokens=2.0), retry_after_s=60)
    assert paused.paused_until == _at(60)
    # Shorter, or ending at the same time: the bucket stays as it is.
    assert _answers(paused, retry_after_s=5, now=_at(10)) == paused
    assert _answers(paused, retry_after_s=50, now=_at(10)) == paused
    assert _answers(paused, retry_after_s=51, now=_at(10)).paused_until == _at(61)


def test_a_pause_that_is_over_is_replaced() -> None:
    stale = _bucket(rate=4.0, tokens=2.0, paused_until=_at(-30))
    assert _answers(stale, retry_after_s=5).paused_until == _at(5)


@pytest.mark.parametrize("retry_after_s", [None, 0, -5])
def test_no_pause_without_a_positive_retry_after(retry_after_s: float | None) -> None:
    bucket = _bucket(rate=4.0, tokens=2.0)
    assert _answers(bucket, failures=1, retry_after_s=retry_after_s).paused_until is None


def test_a_retry_after_with_successes_pauses_but_keeps_the_ramp() -> None:
    after = _answers(_bucket(rate=2.0, tokens=2.0, streak=1), successes=1, retry_after_s=10)
    assert (after.rate, after.streak, after.tokens, after.paused_until) == (4.0, 0, 0.0, _at(10))


def test_max_failures_in_a_row_repark_the_endpoint() -> None:
    bucket = RecoveryBucket.start(RECOVERY, NOW)
    reparks = []
    for _ in range(5):
        bucket = _answers(bucket, failures=1)
        reparks.append(bucket.should_repark(RECOVERY))
    assert reparks == [False, False, False, False, True]
    assert _answers(bucket, failures=3).should_repark(RECOVERY)


def test_a_success_in_between_restarts_the_failure_count() -> None:
    bucket = _answers(_bucket(failures=4), successes=1)
    bucket = _answers(bucket, failures=4)
    assert (bucket.failures, bucket.should_repark(RECOVERY)) == (4, False)
    assert _answers(bucket, failures=1).should_repark(RECOVERY)


def test_one_failed_batch_can_repark_at_once() -> None:
    assert _answers(_bucket(), failures=5).should_repark(RECOVERY)
    assert _answers(_bucket(), failures=1).should_repark(RecoveryPolicy(max_failures=1))


# --- RecoveryBucket JSON ---------------------------------------------------------------------


@pytest.mark.parametrize("paused_until", [None, _at(42.5)])
def test_recovery_bucket_round_trips_through_json_text(paused_until: datetime | None) -> None:
    bucket = RecoveryBucket(
        rate=12.5,
        tokens=3.25,
        refilled_at=_at(1.5),
        streak=4,
        failures=2,
        paused_until=paused_until,
    )
    assert bucket.to_json() == {
        "rate": 12.5,
        "tokens": 3.25,
        "refilled_at": "2026-03-01T12:00:01.500000+00:00",
        "streak": 4,
        "failures": 2,
        "paused_until": None if paused_until is None else "2026-03-01T12:00:42.500000+00:00",
    }
    stored = json.loads(json.dumps(bucket.to_json()))
    assert RecoveryBucket.from_json(stored, RECOVERY, _at(999)) == bucket


def test_recovery_bucket_missing_counts_are_zero_and_no_pause() -> None:
    stored = {"rate": 2, "tokens": 1.5, "refilled_at": NOW.isoformat()}
    assert RecoveryBucket.from_json(stored, RECOVERY, _at(5)) == _bucket(rate=2.0, tokens=1.5)


def test_recovery_bucket_keeps_other_timezones() -> None:
    stored = {"rate": 2, "tokens": 0, "refilled_at": "2026-03-01T13:00:00+01:00"}
    assert RecoveryBucket.from_json(stored, RECOVERY, _at(5)).refilled_at == NOW


def _stored(**changes: Any) -> dict[str, Any]:
    """A readable stored bucket with ``changes`` applied (a value of ``...`` drops the key)."""
    stored: dict[str, Any] = {
        "rate": 4.0,
        "tokens": 1.0,
        "refilled_at": NOW.isoformat(),
        "streak": 1,
        "failures": 0,
        "paused_until": None,
    } | changes
    return {key: value for key, value in stored.items() if value is not ...}


@pytest.mark.parametrize(
    "stored",
    [
        None,
        {},
        [],
        "rate",
        7,
        _NoGet(**_stored()),
        _stored(rate=...),
        _stored(tokens=...),
        _stored(refilled_at=...),
        _stored(rate=None),
        _stored(rate="fast"),
        _stored(tokens=[1]),
        _stored(refilled_at=None),
        _stored(refilled_at=1772366400),
        _stored(refilled_at="yesterday"),
        _stored(streak="x"),
        _stored(streak=None),
        _stored(failures={"n": 1}),
        _stored(paused_until=60),
        _stored(paused_until="later"),
        # Naive datetimes cannot be compared with an aware now.
        _stored(refilled_at="2026-03-01T12:00:00"),
        _stored(paused_until="2026-03-01T12:00:30"),
        # Non-finite or non-positive numbers.
        _stored(rate=math.nan),
        _stored(rate=math.inf),
        _stored(rate="-inf"),
        _stored(tokens=math.nan),
        _stored(tokens=math.inf),
        _stored(tokens=-math.inf),
        _stored(rate=0),
        _stored(rate=-2),
    ],
    ids=repr,
)
def test_unreadable_recovery_bucket_starts_afresh(stored: Any) -> None:
    now = _at(77)
    assert RecoveryBucket.from_json(stored, RECOVERY, now) == RecoveryBucket.start(RECOVERY, now)


@pytest.mark.parametrize(
    ("changes", "field", "value"),
    [
        ({"rate": 0.25}, "rate", 1.0),  # below start_rate
        ({"rate": 400}, "rate", 50.0),  # above max_rate
        ({"rate": 1e300}, "rate", 50.0),
        ({"tokens": -3}, "tokens", 0.0),
        ({"streak": -2}, "streak", 0),
        ({"failures": -1}, "failures", 0),
        ({"tokens": 500}, "tokens", 500.0),  # kept: the next refill caps it at the burst
    ],
)
def test_recovery_bucket_is_clamped_into_the_policy(
    changes: dict[str, Any], field: str, value: float
) -> None:
    bucket = RecoveryBucket.from_json(_stored(**changes), RECOVERY, _at(5))
    assert getattr(bucket, field) == value
    assert bucket.take(1000, NOW)[0] <= bucket.burst


def test_a_stored_pause_is_kept() -> None:
    bucket = RecoveryBucket.from_json(_stored(paused_until=_at(30).isoformat()), RECOVERY, NOW)
    assert bucket.paused_until == _at(30)
    assert bucket.take(10, _at(29))[0] == 0


@pytest.mark.parametrize(
    "stored",
    [
        _stored(rate=10**400),  # a 400-digit JSON integer
        _stored(streak=json.loads("1e400")),  # json.loads gives inf
    ],
    ids=["huge-int-rate", "inf-streak"],
)
def test_recovery_bucket_with_numbers_too_big_starts_afresh(stored: Any) -> None:
    assert RecoveryBucket.from_json(stored, RECOVERY, NOW) == RecoveryBucket.start(RECOVERY, NOW)


# --- The release loop, simulated -------------------------------------------------------------

TICK_S = 0.25
TICKS_PER_S = 4
SIMULATED_S = 60


def _simulate(policy: RecoveryPolicy) -> list[tuple[float, float, int]]:
    """A release loop ticking every 0.25 s for 60 s with 1000 parked, every release answered
    2xx: for each tick, the rate the bucket had going in, its burst, and how many it released."""
    bucket = RecoveryBucket.start(policy, NOW)
    ticks = []
    for tick in range(SIMULATED_S * TICKS_PER_S):
        now = _at(tick * TICK_S)
        rate, burst = bucket.rate, bucket.burst
        released, bucket = bucket.take(1000, now)
        bucket = _answers(bucket, successes=released, policy=policy, now=now)
        ticks.append((rate, burst, released))
    return ticks


def _assert_windows_within_the_bucket(ticks: list[tuple[float, float, int]]) -> None:
    """In every 1-second window [t, t + 1 s) (the four ticks t, t+0.25, t+0.5, t+0.75):

        released ≤ burst(r₀) + 0.25 s * (r₁ + r₂ + r₃)

    where rᵢ is the rate going into the i-th tick of the window (the rate its refill uses).
    Why: right after the first tick's refill the bucket holds at most burst(r₀) (the refill
    caps it); each later tick's refill adds at most 0.25 s * its rate; a take never takes more
    than the whole tokens there are; successes never add tokens. So, as the rate only grows
    here, released ≤ burst(r₀) + 0.75 s * the highest rate in the window; where the rate stays
    r₀ through the window that is within the rate * 1 s + burst(r₀) the brief names.
    (The rate at the window's start alone is not a bound: a doubling mid-window lets up to
    burst(r₀) + 0.75 s * 2 * r₀ through.)
    """
    for start in range(len(ticks) - TICKS_PER_S + 1):
        window = ticks[start : start + TICKS_PER_S]
        released = sum(count for _, _, count in window)
        rate0, burst0, _ = window[0]
        bound = burst0 + TICK_S * sum(rate for rate, _, _ in window[1:])
        assert released <= bound + 1e-6, (start * TICK_S, released, bound)
        if all(rate == rate0 for rate, _, _ in window):
            assert released <= rate0 * 1 + burst0 + 1e-6, (start * TICK_S, released)


def test_the_release_loop_never_outruns_the_bucket_at_the_default_policy() -> None:
    ticks = _simulate(RECOVERY)
    _assert_windows_within_the_bucket(ticks)
    rates = [rate for rate, _, _ in ticks]
    # The ramp: 1 → 2 → 4 … doubling with the successes fed back, and it ends at max_rate.
    assert rates[0] == 1
    assert rates[-1] == 50
    assert rates == sorted(rates)
    assert set(rates) == {1, 2, 4, 8, 16, 32, 50}
    # At full speed the loop releases exactly the rate each second (12.5 per quarter second).
    last_second = sum(count for _, _, count in ticks[-TICKS_PER_S:])
    assert last_second == 50


@settings(max_examples=60, deadline=None)
@given(
    start_rate=st.floats(min_value=0.05, max_value=20),
    headroom=st.floats(min_value=1, max_value=50),
)
def test_the_release_loop_never_outruns_the_bucket(start_rate: float, headroom: float) -> None:
    _assert_windows_within_the_bucket(
        _simulate(RecoveryPolicy(start_rate=start_rate, max_rate=start_rate * headroom))
    )


def test_the_window_bound_is_tight_at_full_speed() -> None:
    # Given a bucket at 8/s holding a full burst and never answered (the rate stays 8/s),
    # when the loop ticks every 0.25 s, then the first second lets burst + 0.75 s * rate through.
    bucket = _bucket(rate=8.0, tokens=8.0)
    released = 0
    for tick in range(TICKS_PER_S):
        count, bucket = bucket.take(1000, _at(tick * TICK_S))
        released += count
    assert released == 8 + 6
