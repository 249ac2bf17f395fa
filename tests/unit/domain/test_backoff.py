"""ExponentialBackoffEngine: delays, jitter bounds, the retryable rule and the window."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookline.domain.backoff import ExponentialBackoffEngine
from hookline.domain.outcome import AttemptError
from hookline.domain.retry_config import DEFAULT_RETRY_CONFIG, RetryConfig
from tests.unit.domain.strategies import retry_configs, seeds
from tests.unit.domain.written_rules import ALL_STATUSES, RETRYABLE_ERRORS, RETRYABLE_STATUSES

EXAMPLES = settings(max_examples=200, deadline=None)


def _engine(seed: int = 0, **fields: object) -> ExponentialBackoffEngine:
    return ExponentialBackoffEngine(RetryConfig.model_validate(fields), random.Random(seed))


class _EdgeRandom(random.Random):
    """An rng whose uniform() answers just outside the interval, as float rounding may."""

    def __init__(self, overshoot: float) -> None:
        super().__init__(0)
        self.overshoot = overshoot

    def uniform(self, a: float, b: float) -> float:
        return b + self.overshoot if self.overshoot > 0 else a + self.overshoot


# --- calculate_delay -------------------------------------------------------------------------


def test_default_delays_double_from_two_minutes_up_to_two_hours() -> None:
    engine = _engine(jitter="none")
    assert [engine.calculate_delay(n) for n in range(1, 11)] == [
        120, 240, 480, 960, 1920, 3840, 7200, 7200, 7200, 7200,
    ]  # fmt: skip


def test_the_cap_is_reached_exactly_on_a_power() -> None:
    engine = _engine(base_delay=1, max_delay=1024, multiplier=2, max_retry_duration=2000)
    assert [engine.calculate_delay(n) for n in (10, 11, 12)] == [512, 1024, 1024]


def test_multiplier_one_keeps_the_base_delay() -> None:
    engine = _engine(base_delay=30, multiplier=1)
    assert {engine.calculate_delay(n) for n in (1, 2, 10, 10**30)} == {30}


@pytest.mark.parametrize("retry_number", [11, 1_000, 10**18, 10**400])
def test_huge_retry_numbers_do_not_overflow(retry_number: int) -> None:
    engine = _engine(multiplier=10)
    assert engine.calculate_delay(retry_number) == 7200


@pytest.mark.parametrize("retry_number", [0, -1])
def test_retry_numbers_start_at_one(retry_number: int) -> None:
    with pytest.raises(ValueError, match="starts at 1"):
        _engine().calculate_delay(retry_number)


@EXAMPLES
@given(config=retry_configs(), retry_number=st.integers(min_value=1, max_value=60))
def test_calculate_delay_is_the_capped_power(config: RetryConfig, retry_number: int) -> None:
    engine = ExponentialBackoffEngine(config, random.Random(0))
    exact = min(
        Fraction(config.base_delay) * Fraction(config.multiplier) ** (retry_number - 1),
        Fraction(config.max_delay),
    )
    delay = engine.calculate_delay(retry_number)
    assert math.isclose(delay, float(exact), rel_tol=1e-9)
    assert config.base_delay <= delay <= config.max_delay
    assert engine.calculate_delay(retry_number + 1) >= delay


# --- jitter ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("jitter", "delay", "bounds"),
    [
        ("none", 100, (100, 100)),
        ("full", 100, (0, 100)),
        ("equal", 100, (50, 100)),
        ("proportional", 100, (100, 150)),
        ("proportional", 6000, (6000, 7200)),  # the upper bound is capped ...
        ("proportional", 7200, (7200, 7200)),  # ... and never below the delay itself
        ("proportional", 9000, (7200, 7200)),  # a delay above the cap counts as the cap
        ("full", 9000, (0, 7200)),
        ("none", 0, (0, 0)),
    ],
)
def test_jitter_bounds(jitter: str, delay: float, bounds: tuple[float, float]) -> None:
    assert _engine(jitter=jitter).jitter_bounds(delay) == bounds


def test_proportional_bounds_follow_jitter_ratio() -> None:
    assert _engine(jitter_ratio=0.1).jitter_bounds(1000) == (1000, 1100)
    assert _engine(jitter_ratio=0).jitter_bounds(1000) == (1000, 1000)
    assert _engine(jitter_ratio=1).jitter_bounds(1000) == (1000, 2000)


@pytest.mark.parametrize("delay", [-1.0, math.nan])
def test_jitter_bounds_refuse_a_negative_or_nan_delay(delay: float) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        _engine().jitter_bounds(delay)


def test_apply_jitter_is_reproducible_from_the_seed() -> None:
    first = [_engine(seed=42).apply_jitter(1000) for _ in range(3)]
    assert len(set(first)) == 1
    engine = _engine(seed=42)
    draws = [engine.apply_jitter(1000) for _ in range(50)]
    assert len(set(draws)) == 50  # the rng advances between draws
    assert all(1000 <= draw <= 1500 for draw in draws)


@pytest.mark.parametrize(("overshoot", "expected"), [(1e-9, 150.0), (-1e-9, 100.0)])
def test_apply_jitter_clamps_a_draw_that_rounds_outside(overshoot: float, expected: float) -> None:
    engine = ExponentialBackoffEngine(RetryConfig(), _EdgeRandom(overshoot))
    assert engine.apply_jitter(100) == expected


@EXAMPLES
@given(config=retry_configs(), seed=seeds, fraction=st.floats(min_value=0, max_value=2))
def test_jitter_stays_in_its_bounds_and_under_the_cap(
    config: RetryConfig, seed: int, fraction: float
) -> None:
    engine = ExponentialBackoffEngine(config, random.Random(seed))
    delay = config.max_delay * fraction
    low, high = engine.jitter_bounds(delay)
    jittered = engine.apply_jitter(delay)
    assert 0 <= low <= jittered <= high <= config.max_delay


@settings(max_examples=300, deadline=None)
@given(seed=seeds)
def test_default_first_retry_is_two_to_three_minutes_for_any_seed(seed: int) -> None:
    engine = ExponentialBackoffEngine(DEFAULT_RETRY_CONFIG, random.Random(seed))
    delay = engine.next_retry_delay(retry_number=1, elapsed_s=0.4)
    assert delay is not None
    assert 120 <= delay <= 180


def test_default_first_retries_spread_over_the_whole_interval() -> None:
    delays = [
        ExponentialBackoffEngine(DEFAULT_RETRY_CONFIG, random.Random(seed)).next_retry_delay(
            retry_number=1, elapsed_s=0
        )
        for seed in range(1000)
    ]
    numbers = [delay for delay in delays if delay is not None]
    assert len(numbers) == 1000
    assert 120 <= min(numbers) < 125
    assert 175 < max(numbers) <= 180


# --- is_retryable ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", ALL_STATUSES)
def test_is_retryable_every_status(status: int) -> None:
    assert _engine().is_retryable(status) is (status in RETRYABLE_STATUSES)


@pytest.mark.parametrize("error", list(AttemptError))
def test_is_retryable_every_error(error: AttemptError) -> None:
    assert _engine().is_retryable(error=error) is (error.value in RETRYABLE_ERRORS)


def test_is_retryable_ignores_disable_on_status_and_lets_the_status_decide() -> None:
    engine = _engine(disable_on_status=[503])
    assert engine.is_retryable(503) is True
    assert engine.is_retryable(404, AttemptError.TIMEOUT) is False
    assert engine.is_retryable(500, AttemptError.BLOCKED_ADDRESS) is True


def test_is_retryable_needs_something_to_judge() -> None:
    with pytest.raises(ValueError, match="status code or an error"):
        _engine().is_retryable()


# --- next_retry_delay ------------------------------------------------------------------------


def test_retries_stop_after_max_retries() -> None:
    engine = _engine(jitter="none", max_retries=3)
    assert engine.next_retry_delay(retry_number=3, elapsed_s=0) == 480
    assert engine.next_retry_delay(retry_number=4, elapsed_s=0) is None
    assert _engine(max_retries=0).next_retry_delay(retry_number=1, elapsed_s=0) is None


def test_retries_stop_when_the_window_is_used_up() -> None:
    engine = _engine(jitter="none")
    assert engine.next_retry_delay(retry_number=2, elapsed_s=36000) is None
    assert engine.next_retry_delay(retry_number=2, elapsed_s=50000) is None
    assert engine.next_retry_delay(retry_number=2, elapsed_s=35999.5) == 0.5


def test_the_last_retry_lands_exactly_at_the_window_end() -> None:
    engine = _engine(jitter="none")
    elapsed_s = 120 + 240 + 480 + 960 + 1920 + 3840 + 7200 * 3  # after retry 9
    assert elapsed_s == 29160
    assert engine.next_retry_delay(retry_number=10, elapsed_s=elapsed_s) == 6840
    assert engine.next_retry_delay(retry_number=11, elapsed_s=36000) is None


def test_retry_after_wins_when_longer_and_is_capped() -> None:
    engine = _engine(jitter="none")
    assert engine.next_retry_delay(retry_number=1, elapsed_s=0, retry_after_s=600) == 600
    assert engine.next_retry_delay(retry_number=1, elapsed_s=0, retry_after_s=60) == 120
    assert engine.next_retry_delay(retry_number=1, elapsed_s=0, retry_after_s=10**9) == 7200
    # ... and by the window too.
    assert engine.next_retry_delay(retry_number=1, elapsed_s=35000, retry_after_s=5000) == 1000


def test_retry_after_is_ignored_when_the_config_says_so() -> None:
    engine = _engine(jitter="none", respect_retry_after=False)
    assert engine.next_retry_delay(retry_number=1, elapsed_s=0, retry_after_s=600) == 120


def test_a_slightly_negative_elapsed_time_counts_as_zero() -> None:
    engine = _engine(jitter="none", base_delay=120, max_retry_duration=150)
    assert engine.next_retry_delay(retry_number=1, elapsed_s=-50) == 120
    assert engine.next_retry_delay(retry_number=1, elapsed_s=40) == 110


def test_next_retry_delay_refuses_bad_arguments() -> None:
    engine = _engine()
    with pytest.raises(ValueError, match="starts at 1"):
        engine.next_retry_delay(retry_number=0, elapsed_s=0)
    with pytest.raises(ValueError, match="NaN"):
        engine.next_retry_delay(retry_number=1, elapsed_s=math.nan)


def test_fitting_never_overshoots_the_window_by_rounding() -> None:
    # 480458.2682120547 - 159260.77924459052 rounds up: the naive sum passes the window.
    window_s, elapsed_s = 480458.2682120547, 159260.77924459052
    assert elapsed_s + (window_s - elapsed_s) > window_s
    engine = _engine(base_delay=1, max_delay=window_s, max_retry_duration=window_s)
    fitted = engine.fit_to_window(window_s, elapsed_s=elapsed_s)
    assert elapsed_s + fitted <= window_s
    assert fitted == pytest.approx(window_s - elapsed_s, abs=1e-9)


@EXAMPLES
@given(
    config=retry_configs(),
    seed=seeds,
    retry_number=st.integers(min_value=1, max_value=12),
    window_fraction=st.floats(min_value=0, max_value=1.2),
    retry_after_s=st.none() | st.floats(min_value=0, max_value=10**7),
)
def test_every_delay_is_capped_and_inside_the_window(
    config: RetryConfig,
    seed: int,
    retry_number: int,
    window_fraction: float,
    retry_after_s: float | None,
) -> None:
    engine = ExponentialBackoffEngine(config, random.Random(seed))
    elapsed_s = config.max_retry_duration * window_fraction
    delay = engine.next_retry_delay(
        retry_number=retry_number, elapsed_s=elapsed_s, retry_after_s=retry_after_s
    )
    if retry_number > config.max_retries or elapsed_s >= config.max_retry_duration:
        assert delay is None
        return
    assert delay is not None
    assert 0 <= delay <= config.max_delay
    assert elapsed_s + delay <= config.max_retry_duration
    low, high = engine.jitter_bounds(engine.calculate_delay(retry_number))
    if config.respect_retry_after and retry_after_s is not None:
        high = max(high, min(retry_after_s, config.max_delay))
    remaining_s = config.max_retry_duration - elapsed_s
    assert min(low, remaining_s) - 1e-9 <= delay <= high
