"""Hypothesis strategies for the domain property tests."""

from __future__ import annotations

from hypothesis import strategies as st

from hookline.domain.retry_config import MAX_RETRY_DURATION_LIMIT_S, JitterMode, RetryConfig


def _seconds(low: float, high: float) -> st.SearchStrategy[float]:
    """Round numbers (as people write them) as well as arbitrary floats."""
    return st.one_of(
        st.integers(min_value=int(-(-low // 1)), max_value=int(high)).map(float),
        st.floats(min_value=low, max_value=high),
    )


@st.composite
def retry_configs(draw: st.DrawFn) -> RetryConfig:
    """Any valid RetryConfig, near its bounds as often as in the middle."""
    base_delay = draw(_seconds(1, 3600))
    return RetryConfig(
        max_retries=draw(st.integers(min_value=0, max_value=10)),
        base_delay=base_delay,
        max_delay=draw(_seconds(base_delay, base_delay * 1000)),
        multiplier=draw(st.floats(min_value=1, max_value=10)),
        jitter=draw(st.sampled_from(JitterMode)),
        jitter_ratio=draw(st.floats(min_value=0, max_value=1)),
        max_retry_duration=draw(_seconds(base_delay, MAX_RETRY_DURATION_LIMIT_S)),
        respect_retry_after=draw(st.booleans()),
    )


seeds = st.integers(min_value=0, max_value=2**64 - 1)
