"""plan_schedule: the planned timeline, and that it is the engine's own timeline."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookline.domain.backoff import ExponentialBackoffEngine
from hookline.domain.retry_config import MAX_RETRY_DURATION_LIMIT_S, JitterMode, RetryConfig
from hookline.domain.schedule import RetrySchedule, ScheduledRetry, plan_schedule
from tests.unit.domain.strategies import retry_configs, seeds


class _EndRandom(random.Random):
    """An rng that always draws one end of the interval: the plan's earliest or latest path."""

    def __init__(self, *, high: bool) -> None:
        super().__init__(0)
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


def _walk(config: RetryConfig, *, high: bool) -> list[tuple[float, float]]:
    """(delay, cumulative) of each retry the engine grants when every draw hits one end."""
    engine = ExponentialBackoffEngine(config, _EndRandom(high=high))
    elapsed_s = 0.0
    steps = []
    for retry_number in range(1, config.max_retries + 2):
        delay = engine.next_retry_delay(retry_number=retry_number, elapsed_s=elapsed_s)
        if delay is None:
            break
        low, high_s = engine.jitter_bounds(engine.calculate_delay(retry_number))
        drawn = high_s if high else low
        # A retry the window shortened starts exactly at the window's end.
        elapsed_s = config.max_retry_duration if delay < drawn else elapsed_s + delay
        steps.append((delay, elapsed_s))
    return steps


def test_defaults_without_jitter() -> None:
    schedule = plan_schedule(RetryConfig(jitter="none"))
    delays = [row.earliest_delay_s for row in schedule.retries]
    assert delays == [120, 240, 480, 960, 1920, 3840, 7200, 7200, 7200, 6840]
    assert [row.latest_delay_s for row in schedule.retries] == delays
    assert [row.earliest_at_s for row in schedule.retries] == [
        120, 360, 840, 1800, 3720, 7560, 14760, 21960, 29160, 36000,
    ]  # fmt: skip
    assert schedule.retries[-1] == ScheduledRetry(
        retry_number=10,
        earliest_delay_s=6840,
        latest_delay_s=6840,
        earliest_at_s=36000,
        latest_at_s=36000,
        cut_by_window=True,
    )
    assert [row.cut_by_window for row in schedule.retries] == [False] * 9 + [True]
    assert schedule.window_cut_retry == 10
    assert schedule.total_retries == 10
    assert schedule.dropped_retries == 0
    assert schedule.window_s == 36000


def test_defaults_with_proportional_jitter() -> None:
    schedule = plan_schedule(RetryConfig())
    first, last = schedule.retries[0], schedule.retries[-1]
    assert (first.earliest_delay_s, first.latest_delay_s) == (120, 180)
    assert [row.latest_at_s for row in schedule.retries] == [
        180, 540, 1260, 2700, 5580, 11340, 18540, 25740, 32940, 36000,
    ]  # fmt: skip
    # The window cuts the last retry: the latest path (at 32940 s) has only 3060 s left to
    # wait, the earliest (at 29160 s) 6840 s; the shortest wait comes first.
    assert (last.earliest_delay_s, last.latest_delay_s) == (3060, 6840)
    assert (last.earliest_at_s, last.latest_at_s) == (36000, 36000)
    assert schedule.window_cut_retry == 10


def test_the_latest_path_can_end_first_and_leaves_none_behind() -> None:
    schedule = plan_schedule(RetryConfig(jitter="full", max_retry_duration=3000))
    rows = schedule.retries
    assert len(rows) == 10
    assert {row.earliest_delay_s for row in rows} == {0}
    # The longest wait before retry 5 follows four retries at once (the earliest path, at 0).
    assert [row.latest_delay_s for row in rows[:5]] == [120, 240, 480, 960, 1920]
    assert [row.latest_at_s for row in rows[:5]] == [120, 360, 840, 1800, 3000]
    assert rows[4].cut_by_window is True
    assert all(row.latest_delay_s is None and row.latest_at_s is None for row in rows[5:])
    assert not any(row.cut_by_window for row in rows[5:])
    assert schedule.window_cut_retry == 5
    assert schedule.dropped_retries == 0


def test_retries_beyond_the_window_are_dropped() -> None:
    config = RetryConfig(jitter="none", base_delay=100, multiplier=1, max_retry_duration=250)
    schedule = plan_schedule(config)
    assert [(row.earliest_delay_s, row.earliest_at_s) for row in schedule.retries] == [
        (100, 100),
        (100, 200),
        (50, 250),
    ]
    assert schedule.total_retries == 3
    assert schedule.dropped_retries == 7
    assert schedule.window_cut_retry == 3


def test_a_window_that_never_cuts() -> None:
    schedule = plan_schedule(RetryConfig(max_retries=3))
    assert schedule.window_cut_retry is None
    assert schedule.total_retries == 3
    assert schedule.dropped_retries == 0


def test_no_retries_at_all() -> None:
    schedule = plan_schedule(RetryConfig(max_retries=0))
    assert schedule.retries == ()
    assert (schedule.total_retries, schedule.dropped_retries, schedule.window_cut_retry) == (
        0,
        0,
        None,
    )


def test_to_dict_is_json_ready() -> None:
    schedule = plan_schedule(RetryConfig(jitter="full", max_retry_duration=3000, max_retries=6))
    data = json.loads(json.dumps(schedule.to_dict()))
    assert data["config"]["jitter"] == "full"
    assert data["config"]["disable_on_status"] == [404, 410]
    assert data["window_s"] == 3000
    assert data["total_retries"] == 6
    assert data["window_cut_retry"] == 5
    assert data["dropped_retries"] == 0
    assert data["retries"][0] == {
        "retry_number": 1,
        "earliest_delay_s": 0.0,
        "latest_delay_s": 120.0,
        "earliest_at_s": 0.0,
        "latest_at_s": 120.0,
        "cut_by_window": False,
    }
    assert data["retries"][5]["latest_at_s"] is None


def test_schedule_is_frozen() -> None:
    schedule = plan_schedule(RetryConfig())
    with pytest.raises(AttributeError):
        schedule.window_s = 1  # type: ignore[misc]
    assert isinstance(schedule, RetrySchedule)


@st.composite
def configs_leaving_bounds_out(draw: st.DrawFn) -> RetryConfig:
    """Valid configs without ``max_retry_duration`` (and sometimes ``max_delay``): the model
    fills them in from their defaults and ``base_delay``."""
    base_delay = draw(st.floats(min_value=1, max_value=MAX_RETRY_DURATION_LIMIT_S))
    fields: dict[str, object] = {
        "max_retries": draw(st.integers(min_value=0, max_value=10)),
        "base_delay": base_delay,
        "multiplier": draw(st.floats(min_value=1, max_value=10)),
        "jitter": draw(st.sampled_from(JitterMode)),
        "jitter_ratio": draw(st.floats(min_value=0, max_value=1)),
    }
    if draw(st.booleans()):
        fields["max_delay"] = draw(st.floats(min_value=base_delay, max_value=base_delay * 1000))
    return RetryConfig.model_validate(fields)


any_config = st.one_of(retry_configs(), configs_leaving_bounds_out())


def _engine(config: RetryConfig, *, high: bool) -> ExponentialBackoffEngine:
    return ExponentialBackoffEngine(config, _EndRandom(high=high))


@settings(max_examples=300, deadline=None)
@given(config=any_config)
def test_every_row_is_ordered(config: RetryConfig) -> None:
    rows = plan_schedule(config).retries
    for row in rows:
        assert 0 <= row.earliest_delay_s <= config.max_delay
        assert 0 <= row.earliest_at_s <= config.max_retry_duration
        if row.latest_delay_s is not None:
            assert row.earliest_delay_s <= row.latest_delay_s <= config.max_delay
        if row.latest_at_s is not None:
            assert row.earliest_at_s <= row.latest_at_s <= config.max_retry_duration
        assert (row.latest_delay_s is None) is (row.latest_at_s is None)
    # Down the table no time goes back, and once the latest path has ended it stays ended.
    earliest_at = [row.earliest_at_s for row in rows]
    assert earliest_at == sorted(earliest_at)
    latest_at = [row.latest_at_s for row in rows if row.latest_at_s is not None]
    assert latest_at == sorted(latest_at)
    assert all(row.latest_at_s is None for row in rows[len(latest_at) :])


@settings(max_examples=200, deadline=None)
@given(config=any_config)
def test_the_plan_is_what_the_engine_does(config: RetryConfig) -> None:
    schedule = plan_schedule(config)
    earliest = _walk(config, high=False)
    latest = _walk(config, high=True)
    rows = schedule.retries
    # The times are the two walks: every draw low, every draw high.
    assert [row.earliest_at_s for row in rows] == [at for _, at in earliest]
    assert [row.latest_at_s for row in rows if row.latest_at_s is not None] == [
        at for _, at in latest
    ]
    assert schedule.total_retries == len(rows) == len(earliest) >= len(latest)
    assert schedule.dropped_retries == config.max_retries - len(rows)
    # The waits are waits the engine grants: the low end after the latest path's previous
    # attempt (least window left), the high end after the earliest path's (most left); both
    # walks' own waits lie between them.
    low, high = _engine(config, high=False), _engine(config, high=True)
    previous_earliest_s, previous_latest_s = 0.0, 0.0
    for row, (early_delay_s, _) in zip(rows, earliest, strict=True):
        n = row.retry_number
        if row.latest_delay_s is None:
            assert row.earliest_delay_s == 0
        else:
            assert row.earliest_delay_s == low.next_retry_delay(
                retry_number=n, elapsed_s=previous_latest_s
            )
            assert row.latest_delay_s == high.next_retry_delay(
                retry_number=n, elapsed_s=previous_earliest_s
            )
            assert row.earliest_delay_s <= early_delay_s <= row.latest_delay_s
            late_delay_s = latest[n - 1][0]
            assert row.earliest_delay_s <= late_delay_s <= row.latest_delay_s
            assert row.latest_at_s is not None
            previous_latest_s = row.latest_at_s
        previous_earliest_s = row.earliest_at_s
    cut = [row.retry_number for row in rows if row.cut_by_window]
    assert schedule.window_cut_retry == (cut[0] if cut else None)


ROUNDING_S = 1e-6


@settings(max_examples=200, deadline=None)
@given(config=any_config, seed=seeds)
def test_real_retries_stay_inside_the_plan(config: RetryConfig, seed: int) -> None:
    rows = plan_schedule(config).retries
    engine = ExponentialBackoffEngine(config, random.Random(seed))
    elapsed_s = 0.0
    made = 0
    for retry_number in range(1, config.max_retries + 1):
        delay_s = engine.next_retry_delay(retry_number=retry_number, elapsed_s=elapsed_s)
        if delay_s is None:
            break
        row = rows[retry_number - 1]
        elapsed_s = min(elapsed_s + delay_s, config.max_retry_duration)
        made += 1
        # The run sums its delays in another order than the plan: allow float rounding (1 µs).
        assert row.earliest_delay_s <= delay_s + ROUNDING_S
        assert row.earliest_at_s <= elapsed_s + ROUNDING_S
        if row.latest_delay_s is not None:
            assert delay_s <= row.latest_delay_s + ROUNDING_S
        if row.latest_at_s is not None:
            assert elapsed_s <= row.latest_at_s + ROUNDING_S
    # Every path makes at least the retries the latest path makes, at most those of the table.
    assert sum(row.latest_at_s is not None for row in rows) <= made <= len(rows)
