"""Kernel: clock, ids and the error tree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hookline import errors, ids
from hookline.clock import ManualClock, SystemClock


async def test_manual_clock_moves_only_when_told() -> None:
    start = datetime(2026, 3, 1, 12, tzinfo=UTC)
    clock = ManualClock(start)
    assert clock.now() == start
    assert clock.advance(90) == start + timedelta(seconds=90)
    await clock.sleep(30)
    assert clock.now() == start + timedelta(seconds=120)
    assert clock.monotonic() == 120
    clock.set(start + timedelta(hours=1))
    assert clock.now() == start + timedelta(hours=1)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(datetime(2026, 1, 1))


async def test_system_clock_is_utc_and_monotonic() -> None:
    clock = SystemClock()
    assert clock.now().tzinfo is UTC
    first = clock.monotonic()
    await clock.sleep(0)
    assert clock.monotonic() >= first


@pytest.mark.parametrize("prefix", sorted(ids.PREFIXES))
def test_ids_carry_their_prefix_and_sort_by_time(prefix: str) -> None:
    earlier = ids.new_id(prefix, now_ms=1_000)
    later = ids.new_id(prefix, now_ms=2_000)
    assert earlier.startswith(prefix + "_")
    assert ids.has_prefix(earlier, prefix)
    assert earlier < later
    assert len({ids.new_id(prefix) for _ in range(1000)}) == 1000


def test_an_id_made_at_a_time_sorts_by_that_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # A counter of its own: the ids of later tests must not continue from year 2100
    monkeypatch.setattr(ids, "_monotonic", ids._Monotonic())
    t0 = datetime(2100, 1, 1, tzinfo=UTC)
    made_at = ids.new_id(ids.ALERT, at=t0)
    same_ms = ids.new_id(ids.ALERT, now_ms=int(t0.timestamp() * 1000))
    assert made_at[:14] == same_ms[:14]  # "alt_" + the 10 characters of the millisecond
    assert made_at < same_ms < ids.new_id(ids.ALERT, at=t0 + timedelta(milliseconds=1))


def test_ids_made_in_one_millisecond_still_increase() -> None:
    made = [ids.new_id(ids.EVENT, now_ms=1) for _ in range(100)]  # all in one (old) ms
    assert made == sorted(made)
    assert len(set(made)) == 100


def test_id_validation() -> None:
    good = ids.new_id(ids.DELIVERY)
    assert not ids.has_prefix(good, ids.EVENT)
    assert not ids.has_prefix("dlv_short", ids.DELIVERY)
    assert not ids.has_prefix("dlv" + good[3:].replace("_", "-"), ids.DELIVERY)
    assert not ids.has_prefix(good[:-1] + "u", ids.DELIVERY)  # 'u' is not Crockford base32
    with pytest.raises(ValueError, match="unknown id prefix"):
        ids.new_id("usr")


def test_error_tree_and_messages() -> None:
    assert issubclass(errors.InvalidTransition, errors.Conflict)
    assert issubclass(errors.RetriesExhausted, errors.RetryError)
    assert issubclass(errors.PermanentFailure, errors.HooklineError)
    assert str(errors.NotFound("webhook", "wh_x")) == "webhook 'wh_x' not found"
    assert "'succeeded' to 'pending'" in str(errors.InvalidTransition("succeeded", "pending"))
    too_big = errors.PayloadTooLarge(300, 256)
    assert (too_big.size_bytes, too_big.limit_bytes) == (300, 256)
    busy = errors.Backpressure(11, 10, retry_after_s=5)
    assert busy.retry_after_s == 5
    assert "limit 10" in str(busy)
    assert errors.RetriesExhausted(11, "max_retries").attempts == 11
