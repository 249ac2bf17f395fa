"""``Throttle``: the worker's side of per-endpoint rate limits (``rate_limit_per_s``).

The limiter (``queue.rate_limit``) holds a token bucket per endpoint; the throttle asks it once
per batch, for all the batch's rate-limited endpoints in one call, how many of their deliveries
may go now. Every delivery without a token gets a due time instead: the k-th of an endpoint is
due ``k / rate`` seconds after the endpoint's next token (and after the ones deferred before it),
so a backlog comes back at the pace the endpoint takes it rather than all at once, to be turned
away again. Deferred deliveries are neither attempted nor failed: the worker puts them back in
the queue, their attempt counters untouched.

The throttle also remembers when each endpoint's next token is: a lower bound (tokens never come
sooner), so claims for an endpoint that cannot have one yet are turned away before they are
prepared (``holds``), with no round trip. Endpoints without a limit cost nothing: a batch with no
rate-limited delivery makes no call at all.

When the limiter fails (Redis is down), the batch's rate-limited deliveries are deferred by
``LIMITER_DOWN_DEFER_S`` rather than sent unlimited: a limit is a promise to the subscriber (it
may ban or bill whoever exceeds it), while a delivery a second late is nothing; the others of the
batch go on.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from hookline.observability.logging import get_logger
from hookline.observability.metrics import Metrics
from hookline.queue.rate_limit import RateLimiter, TokenRequest
from hookline.service.delivery import PlannedAttempt

log = get_logger("hookline.worker")

LIMITER_DOWN_DEFER_S: Final = 1.0
"""How long rate-limited deliveries are put back for when the limiter cannot answer: an outage
costs one claim per such delivery per second, and a blip delays them by no more than this."""
PACES_MAX: Final = 10_000
"""Most endpoints whose next token a worker remembers (a hint: forgetting only costs a call)."""


def is_limited(rate_limit_per_s: float | None) -> bool:
    """Whether deliveries to an endpoint with this ``rate_limit_per_s`` need a token. Only a
    positive number limits (the API accepts nothing else; a hand-edited 0 or NaN in the
    database is ignored rather than holding the endpoint's deliveries forever)."""
    return rate_limit_per_s is not None and math.isfinite(rate_limit_per_s) and rate_limit_per_s > 0


@dataclass(slots=True)
class _Pace:
    """What this worker knows of one limited endpoint's bucket."""

    next_token_at: datetime
    """No token before this (the limiter's last answer)."""
    next_slot_at: datetime
    """When the next delivery deferred for this endpoint is due."""
    interval_s: float
    """Seconds per token (1 / rate)."""


class Throttle:
    """Per-endpoint rate limits for one worker: which planned attempts may go now."""

    def __init__(self, limiter: RateLimiter, *, metrics: Metrics | None = None) -> None:
        self._limiter = limiter
        self._metrics = metrics
        self._paces: dict[str, _Pace] = {}

    def holds(self, endpoint_id: str, now: datetime) -> bool:
        """True while ``endpoint_id`` is known to have no token (until its next one)."""
        pace = self._paces.get(endpoint_id)
        return pace is not None and now < pace.next_token_at

    def next_slot(self, endpoint_id: str, now: datetime) -> datetime:
        """The due time of one more delivery deferred for a held endpoint (see ``holds``)."""
        due = self._take_slot(self._paces[endpoint_id], now)
        self._count(endpoint_id, 1)
        return due

    async def split(
        self, planned: Sequence[PlannedAttempt], *, now: datetime
    ) -> tuple[list[PlannedAttempt], list[tuple[str, datetime]]]:
        """The planned attempts that may go now (in their order), and ``(delivery id, due
        time)`` of those that must wait for their endpoint's next tokens. One limiter call for
        all the rate-limited endpoints of the batch; none when there are none."""
        limited: dict[str, list[PlannedAttempt]] = defaultdict(list)
        rates: dict[str, float] = {}
        for attempt in planned:
            rate = attempt.rate_limit_per_s
            if rate is not None and is_limited(rate):
                limited[attempt.endpoint_id].append(attempt)
                # The strictest, should the limit change between two claims of one batch.
                rates[attempt.endpoint_id] = min(rate, rates.get(attempt.endpoint_id, rate))
        if not limited:
            return list(planned), []
        requests = [
            TokenRequest(endpoint_id=endpoint_id, rate_per_s=rates[endpoint_id], count=len(group))
            for endpoint_id, group in limited.items()
        ]
        deferred: list[tuple[str, datetime]] = []
        try:
            grants = await self._limiter.take(requests, now=now)
        except Exception as exc:
            held = [a.delivery_id for group in limited.values() for a in group]
            log.error(
                "worker.rate_limit_failed",
                error=f"{type(exc).__name__}: {exc}",
                endpoints=len(requests),
                deliveries=len(held),
                defer_s=LIMITER_DOWN_DEFER_S,
            )
            due = now + timedelta(seconds=LIMITER_DOWN_DEFER_S)
            deferred = [(delivery_id, due) for delivery_id in held]
        else:
            for request, grant in zip(requests, grants, strict=True):
                rest = limited[request.endpoint_id][grant.granted :]
                if not rest:
                    continue
                pace = self._pace(request, grant.next_token_at, now)
                deferred += [(a.delivery_id, self._take_slot(pace, now)) for a in rest]
                self._count(request.endpoint_id, len(rest))
        if not deferred:
            return list(planned), []
        waiting = {delivery_id for delivery_id, _ in deferred}
        return [p for p in planned if p.delivery_id not in waiting], deferred

    def _pace(self, request: TokenRequest, next_token_at: datetime, now: datetime) -> _Pace:
        """Record the limiter's answer for an endpoint that had too few tokens."""
        pace = self._paces.get(request.endpoint_id)
        interval_s = 1 / request.rate_per_s
        if pace is None:
            if len(self._paces) >= PACES_MAX:
                self._forget_past(now)
            pace = self._paces[request.endpoint_id] = _Pace(
                next_token_at=next_token_at, next_slot_at=next_token_at, interval_s=interval_s
            )
        pace.next_token_at = next_token_at
        pace.interval_s = interval_s
        return pace

    @staticmethod
    def _take_slot(pace: _Pace, now: datetime) -> datetime:
        due = max(pace.next_slot_at, pace.next_token_at, now)
        pace.next_slot_at = due + timedelta(seconds=pace.interval_s)
        return due

    def _forget_past(self, now: datetime) -> None:
        """Drop what no longer holds anything back (all of it, if every entry still does)."""
        past = [e for e, p in self._paces.items() if max(p.next_slot_at, p.next_token_at) <= now]
        for endpoint_id in past:
            del self._paces[endpoint_id]
        if len(self._paces) >= PACES_MAX:
            self._paces.clear()

    def _count(self, endpoint_id: str, deliveries: int) -> None:
        if self._metrics is not None:
            self._metrics.rate_limited_total.labels(endpoint_id).inc(deliveries)
