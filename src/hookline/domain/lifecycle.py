"""Endpoints that come back: probing a disabled endpoint, and releasing its backlog slowly.

An endpoint disabled as ``failing`` is probed (``ProbeState``): a signed ``hookline.probe`` on a
growing, jittered interval from ``min_interval_s`` up to ``max_interval_s``; ``successes_needed``
consecutive 2xx answers make it healthy, any other answer starts the count again and lengthens
the interval. A healthy endpoint goes ``recovering``: its parked deliveries are released oldest
first through a token bucket (``RecoveryBucket``) that starts at ``start_rate`` per second and
doubles for every ``rate`` successes in a row (one second's worth at the current rate), up to
``max_rate``. A failure halves the rate (not below ``start_rate``); a ``Retry-After`` pauses the
release for that long; ``max_failures`` failures in a row park the endpoint again.

Pure: no clock (callers pass ``now``), no I/O, no randomness of its own (callers pass a
``random.Random``). The state lives in the endpoint's ``lifecycle`` JSON column (``to_json`` /
``from_json``), so every worker process sees the same bucket.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final

PROBE_EVENT_TYPE: Final = "hookline.probe"
"""The ``type`` of a probe's body (and of a test send's, ``TEST_EVENT_TYPE``)."""
TEST_EVENT_TYPE: Final = "hookline.test"


@dataclass(frozen=True, slots=True)
class ProbePolicy:
    """How a disabled endpoint is probed (settings ``PROBE_*``)."""

    min_interval_s: float = 60.0
    max_interval_s: float = 3600.0
    successes_needed: int = 3

    def __post_init__(self) -> None:
        if not 0 < self.min_interval_s <= self.max_interval_s:
            raise ValueError("probe intervals need 0 < min_interval_s <= max_interval_s")
        if self.successes_needed < 1:
            raise ValueError("successes_needed must be at least 1")


@dataclass(frozen=True, slots=True)
class ProbeState:
    """Where probing an endpoint stands: the current interval and consecutive 2xx answers."""

    interval_s: float
    successes: int = 0
    probes: int = 0

    @classmethod
    def start(cls, policy: ProbePolicy) -> ProbeState:
        """The state right after the endpoint was disabled: the shortest interval."""
        return cls(interval_s=policy.min_interval_s)

    def after(self, *, ok: bool, policy: ProbePolicy) -> ProbeState:
        """The state after one probe answered (``ok``: a 2xx). A success keeps the interval (the
        next probe confirms soon); a failure resets the count and doubles the interval up to
        ``max_interval_s``."""
        if ok:
            return replace(self, successes=self.successes + 1, probes=self.probes + 1)
        interval = min(policy.max_interval_s, max(policy.min_interval_s, self.interval_s * 2))
        return ProbeState(interval_s=interval, successes=0, probes=self.probes + 1)

    def healthy(self, policy: ProbePolicy) -> bool:
        """Enough consecutive 2xx probes to start releasing the backlog."""
        return self.successes >= policy.successes_needed

    def next_at(self, now: datetime, rng: random.Random) -> datetime:
        """When the next probe is due: ``interval_s``, up to 25 % sooner (jitter, so endpoints
        disabled at once do not probe in step; never later than the interval)."""
        return now + timedelta(seconds=self.interval_s * rng.uniform(0.75, 1.0))

    def to_json(self) -> dict[str, Any]:
        return {"interval_s": self.interval_s, "successes": self.successes, "probes": self.probes}

    @classmethod
    def from_json(cls, data: Any, policy: ProbePolicy) -> ProbeState:
        """The stored state; a missing or unreadable one starts afresh (never raises)."""
        try:
            interval = float(data["interval_s"])
            successes = int(data.get("successes", 0))
            probes = int(data.get("probes", 0))
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
            return cls.start(policy)
        if not math.isfinite(interval) or interval <= 0:
            return cls.start(policy)
        interval = min(policy.max_interval_s, max(policy.min_interval_s, interval))
        return cls(interval_s=interval, successes=max(0, successes), probes=max(0, probes))


@dataclass(frozen=True, slots=True)
class RecoveryPolicy:
    """How a recovering endpoint's backlog is released (settings ``RECOVERY_*``)."""

    start_rate: float = 1.0
    max_rate: float = 50.0
    max_failures: int = 5

    def __post_init__(self) -> None:
        if not 0 < self.start_rate <= self.max_rate:
            raise ValueError("recovery rates need 0 < start_rate <= max_rate")
        if self.max_failures < 1:
            raise ValueError("max_failures must be at least 1")


@dataclass(frozen=True, slots=True)
class RecoveryBucket:
    """The token bucket of one recovering endpoint.

    ``tokens`` refill at ``rate`` per second up to one second's worth (``burst``), so the release
    is never faster than ``rate`` averaged over any second after the first. ``streak`` counts
    2xx answers since the rate last changed; ``failures`` counts failures in a row.
    """

    rate: float
    tokens: float
    refilled_at: datetime
    streak: int = 0
    failures: int = 0
    paused_until: datetime | None = None

    @classmethod
    def start(cls, policy: RecoveryPolicy, now: datetime) -> RecoveryBucket:
        """A new bucket: the start rate, one token (the first release happens at once)."""
        return cls(rate=policy.start_rate, tokens=1.0, refilled_at=now)

    @property
    def burst(self) -> float:
        """Most tokens the bucket holds: one second's worth, and at least one."""
        return max(1.0, self.rate)

    def refill(self, now: datetime) -> RecoveryBucket:
        """Tokens added since ``refilled_at`` (none while paused, none for a clock gone back)."""
        if self.paused_until is not None and now < self.paused_until:
            return replace(self, tokens=0.0, refilled_at=now)
        start = self.refilled_at
        if self.paused_until is not None and self.paused_until > start:
            start = self.paused_until
        elapsed = max(0.0, (now - start).total_seconds())
        tokens = min(self.burst, self.tokens + elapsed * self.rate)
        return replace(self, tokens=tokens, refilled_at=now, paused_until=None)

    def take(self, available: int, now: datetime) -> tuple[int, RecoveryBucket]:
        """Refill, then take as many whole tokens as there are parked deliveries (at most
        ``available``): how many to release now, and the bucket after."""
        bucket = self.refill(now)
        count = min(max(0, available), math.floor(bucket.tokens + 1e-9))
        return count, replace(bucket, tokens=max(0.0, bucket.tokens - count))

    def after_answers(
        self,
        *,
        successes: int,
        failures: int,
        retry_after_s: float | None,
        policy: RecoveryPolicy,
        now: datetime,
    ) -> RecoveryBucket:
        """The bucket after a batch of answers from the endpoint.

        Failures (``failures`` > 0: any non-2xx answer or error) halve the rate, reset the streak
        and add to ``failures``; otherwise each ``rate`` successes double the rate (up to
        ``max_rate``) and clear ``failures``. A ``retry_after_s`` (a 429/503 that asked for a
        pause) empties the bucket and pauses it that long.
        """
        bucket = self
        if failures > 0:
            bucket = replace(
                bucket,
                rate=max(policy.start_rate, bucket.rate / 2),
                streak=0,
                failures=bucket.failures + failures,
                tokens=min(bucket.tokens, max(1.0, bucket.rate / 2)),
            )
        elif successes > 0:
            streak = bucket.streak + successes
            rate = bucket.rate
            while streak >= math.ceil(rate) and rate < policy.max_rate:
                streak -= math.ceil(rate)
                rate = min(policy.max_rate, rate * 2)
            bucket = replace(bucket, rate=rate, streak=streak, failures=0)
        if retry_after_s is not None and retry_after_s > 0:
            until = now + timedelta(seconds=retry_after_s)
            if bucket.paused_until is None or until > bucket.paused_until:
                bucket = replace(bucket, tokens=0.0, paused_until=until, refilled_at=now)
        return bucket

    def should_repark(self, policy: RecoveryPolicy) -> bool:
        """``max_failures`` failures in a row: park the endpoint again."""
        return self.failures >= policy.max_failures

    def to_json(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "tokens": self.tokens,
            "refilled_at": self.refilled_at.isoformat(),
            "streak": self.streak,
            "failures": self.failures,
            "paused_until": None if self.paused_until is None else self.paused_until.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Any, policy: RecoveryPolicy, now: datetime) -> RecoveryBucket:
        """The stored bucket; a missing or unreadable one starts afresh (never raises)."""
        try:
            rate = float(data["rate"])
            tokens = float(data["tokens"])
            refilled_at = datetime.fromisoformat(data["refilled_at"])
            streak = int(data.get("streak", 0))
            failures = int(data.get("failures", 0))
            paused = data.get("paused_until")
            paused_until = None if paused is None else datetime.fromisoformat(paused)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
            return cls.start(policy, now)
        aware = refilled_at.tzinfo is not None and (
            paused_until is None or paused_until.tzinfo is not None
        )
        if not aware or not all(map(math.isfinite, (rate, tokens))) or rate <= 0:
            return cls.start(policy, now)
        return cls(
            rate=min(policy.max_rate, max(policy.start_rate, rate)),
            tokens=max(0.0, tokens),
            refilled_at=refilled_at,
            streak=max(0, streak),
            failures=max(0, failures),
            paused_until=paused_until,
        )
