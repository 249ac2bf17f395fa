"""In-process alerts for what an operator must hear about at once: an endpoint was disabled, a
delivery failed for good (a dead letter).

``AlertDispatcher.record`` sits on the worker's settle path, after the commit that made the fact
true: it is synchronous, O(1), never raises and never waits. ``flush`` (looped by ``run``) hands
what is due to every ``AlertNotifier``. In between, alerts are deduplicated and rate-limited, so
10,000 dead letters become a handful of messages:

- **duplicates** (same kind, endpoint and key — the delivery id) seen within the storm window are
  dropped and not counted.
- **per endpoint**: the first alert of a (kind, endpoint) goes out at the next flush; more of them
  within ``min_interval_s`` are only counted, and when the interval ends one ``AlertSummary``
  ("12 more ...") goes out.
- **per kind** (the storm cap): at most ``max_messages_per_kind`` messages (alerts and
  per-endpoint summaries) per storm window (``min_interval_s``, never less than
  ``STORM_WINDOW_MIN_S``); the rest is counted into one summary across endpoints, sent when the
  window ends.
- **memory**: at most ``max_tracked_subjects`` (kind, endpoint) windows are tracked; the oldest
  is dropped when full and what it had counted goes into the summary across endpoints.

Hence at most ``max_messages_per_kind + 1`` messages per kind per storm window (42 for both
kinds with the defaults), however large the storm. Every alert recorded is accounted for exactly
once: sent on its own, or counted in one summary (or dropped as a duplicate).
The limits hold per process: with N worker processes a storm may send up to N times as much.

May import the kernel and ``observability.logging`` only: notifiers that need the network (the
webhook notifier lives in ``service.alert_webhook``) are passed in.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final, Protocol

from structlog.stdlib import BoundLogger

from hookline.clock import Clock
from hookline.observability.logging import get_logger

log = get_logger("hookline.alerts")

DEFAULT_FLUSH_INTERVAL_S: Final = 1.0
"""How often ``run`` sends what is due: an alert is at most this late (plus sending time)."""
STORM_WINDOW_MIN_S: Final = 60.0
"""Shortest storm window and dedup memory, so ``ALERT_MIN_INTERVAL=0`` cannot lift the cap."""
MAX_MESSAGES_PER_KIND: Final = 20
"""Messages of one kind per storm window before the rest is only counted (one summary)."""
MAX_TRACKED_SUBJECTS: Final = 10_000
"""(kind, endpoint) windows kept; about 300 bytes each, so a few MB at worst."""
MAX_DEDUP_KEYS: Final = 10_000
"""Recent (kind, endpoint, key) triples remembered to drop duplicates."""
MAX_OUTBOX: Final = 1_000
"""Messages waiting for a flush; only reached if nothing flushes for ~20 storm windows."""
MAX_EXAMPLES: Final = 5
"""Example ids a summary carries (delivery ids, or endpoint ids across endpoints)."""
MAX_ERROR_CHARS: Final = 300
"""An alert's ``error`` is a hint, not the record (the dead letter's ``last_error`` is)."""
FLUSH_BACKOFF_MAX_S: Final = 60.0
"""Longest pause of ``run`` after consecutive failed flushes."""

FieldValue = str | int | float | bool | None


class AlertKind(StrEnum):
    """What happened."""

    ENDPOINT_DISABLED = "endpoint_disabled"
    ENDPOINT_RECOVERY = "endpoint_recovery"
    """An endpoint came back: probes passed (recovering), or its backlog drained (active)."""
    DELIVERY_FAILED = "delivery_failed"
    """A delivery became a dead letter: retries exhausted, a permanent failure, endpoint gone."""


@dataclass(frozen=True, slots=True)
class Alert:
    """One fact worth an alert.

    ``subject`` is the endpoint id for both kinds, so a storm from one endpoint groups; ``key``
    tells this occurrence apart from others about the same subject (the delivery id; for a
    disable, its reason and time): the same (kind, subject, key) twice is one alert. ``fields``
    are short, JSON-able facts (ids, reason, status code, error) and never hold a secret.
    """

    kind: AlertKind
    subject: str
    key: str
    title: str
    at: datetime
    fields: Mapping[str, FieldValue] = field(default_factory=dict)

    @property
    def event(self) -> str:
        """Its log event name, ``alert.<kind>``."""
        return f"alert.{self.kind.value}"


@dataclass(frozen=True, slots=True)
class AlertSummary:
    """Alerts that were counted instead of sent.

    ``subject`` is the endpoint id when they are the repeats of one endpoint within
    ``min_interval_s``, and None for the storm summary across endpoints. ``count`` alerts on
    ``subjects`` endpoints between ``first_at`` and ``last_at``; ``examples`` holds a few of
    their keys (delivery ids) or, across endpoints, endpoint ids.
    """

    kind: AlertKind
    subject: str | None
    count: int
    subjects: int
    first_at: datetime
    last_at: datetime
    examples: tuple[str, ...]

    @property
    def event(self) -> str:
        """Its log event name."""
        return "alert.summary"

    @property
    def title(self) -> str:
        if self.kind is AlertKind.DELIVERY_FAILED:
            what = "more deliveries failed permanently"
        elif self.kind is AlertKind.ENDPOINT_RECOVERY:
            what = "more endpoint recoveries"
        else:
            what = "more endpoint disables"
        where = (
            f"to webhook {self.subject}"
            if self.subject is not None
            else f"across {self.subjects} webhook{'s' if self.subjects != 1 else ''}"
        )
        return f"{self.count} {what} {where}"


AlertMessage = Alert | AlertSummary


def endpoint_disabled_alert(
    *,
    endpoint_id: str,
    reason: str,
    at: datetime,
    trigger: str = "automatic",
    cancelled_deliveries: int | None = None,
    parked_deliveries: int | None = None,
    fail_since: datetime | None = None,
) -> Alert:
    """The alert for an endpoint that was just disabled (``reason``: a ``DisabledReason``
    value; ``trigger``: ``automatic`` from the worker or ``manual`` from the API;
    ``fail_since``: the start of the run of failures that led there, if any)."""
    return Alert(
        kind=AlertKind.ENDPOINT_DISABLED,
        subject=endpoint_id,
        key=f"{reason}@{at.isoformat()}",
        title=f"Webhook {endpoint_id} was disabled ({reason})",
        at=at,
        fields={
            "reason": reason,
            "trigger": trigger,
            "cancelled_deliveries": cancelled_deliveries,
            "parked_deliveries": parked_deliveries,
            "fail_since": None if fail_since is None else fail_since.isoformat(),
        },
    )


def endpoint_recovery_alert(
    *,
    endpoint_id: str,
    status: str,
    at: datetime,
    trigger: str,
    fail_since: datetime | None = None,
    parked_deliveries: int | None = None,
) -> Alert:
    """The alert for an endpoint that came back: ``status`` ``recovering`` (probes passed or
    an operator enabled it; its parked deliveries are being released) or ``active``."""
    return Alert(
        kind=AlertKind.ENDPOINT_RECOVERY,
        subject=endpoint_id,
        key=f"{status}@{at.isoformat()}",
        title=f"Webhook {endpoint_id} is {status} again",
        at=at,
        fields={
            "status": status,
            "trigger": trigger,
            "fail_since": None if fail_since is None else fail_since.isoformat(),
            "parked_deliveries": parked_deliveries,
        },
    )


def delivery_failed_alert(
    *,
    endpoint_id: str,
    delivery_id: str,
    reason: str,
    at: datetime,
    event_id: str | None = None,
    attempt: int | None = None,
    status_code: int | None = None,
    error: str | None = None,
) -> Alert:
    """The alert for a delivery that became a dead letter (``reason``: the
    ``webhook_dead_letter_total`` label: exhausted, permanent, endpoint_gone, ...)."""
    return Alert(
        kind=AlertKind.DELIVERY_FAILED,
        subject=endpoint_id,
        key=delivery_id,
        title=f"Delivery {delivery_id} to webhook {endpoint_id} failed permanently ({reason})",
        at=at,
        fields={
            "delivery_id": delivery_id,
            "event_id": event_id,
            "attempt": attempt,
            "reason": reason,
            "status_code": status_code,
            "error": _shorten(error),
        },
    )


def alert_data(message: AlertMessage) -> dict[str, FieldValue | list[str]]:
    """The JSON-able facts of an alert or summary: log fields and the webhook body's ``data``."""
    if isinstance(message, Alert):
        return {
            **message.fields,
            "kind": message.kind.value,
            "endpoint_id": message.subject,
            "title": message.title,
            "occurred_at": message.at.isoformat(),
        }
    return {
        "kind": message.kind.value,
        "endpoint_id": message.subject,
        "title": message.title,
        "count": message.count,
        "endpoints": message.subjects,
        "first_at": message.first_at.isoformat(),
        "last_at": message.last_at.isoformat(),
        "examples": list(message.examples),
    }


class AlertNotifier(Protocol):
    """Somewhere alerts go: the log, a webhook."""

    async def notify(self, messages: Sequence[AlertMessage]) -> None:
        """Tell someone about ``messages``, in the order given.

        Best effort and bounded in time: a notifier reports its own failures (a log line) and
        should not raise; if it does, the dispatcher logs the exception and goes on with the
        other notifiers and later flushes. Messages are not offered again. Called by one task at
        a time.
        """
        ...


class LogNotifier:
    """One structured log line per message: ``alert.endpoint_disabled``,
    ``alert.delivery_failed`` or ``alert.summary``, at warning level."""

    def __init__(self, logger: BoundLogger | None = None) -> None:
        self._log = logger or log

    async def notify(self, messages: Sequence[AlertMessage]) -> None:
        for message in messages:
            fields = alert_data(message)
            if "delivery_id" in fields:  # the log's name for a delivery id (seed: job_id)
                fields["job_id"] = fields.pop("delivery_id")
            self._log.warning(message.event, **fields)


@dataclass(slots=True)
class AlertStats:
    """What the dispatcher did since it was built (for tests and a future metric)."""

    recorded: int = 0
    """``record`` calls."""
    duplicates: int = 0
    """Alerts dropped as duplicates (not counted in any summary)."""
    sent: int = 0
    """Messages handed to the notifiers."""
    evicted: int = 0
    """Windows dropped to keep memory bounded (their counts went into a storm summary)."""
    dropped: int = 0
    """Messages lost because the outbox was full (nothing flushed for a long time)."""
    errors: int = 0
    """``record`` calls that failed inside (a bug; logged)."""


@dataclass(slots=True)
class _Window:
    """One (kind, endpoint) since its last message: what was counted instead of sent."""

    opened_at: float
    storm: int | None
    """None when its first alert went out on its own; else the generation of the storm
    summary that counted it (its repeats are counted there too)."""
    suppressed: int = 0
    first_at: datetime | None = None
    last_at: datetime | None = None
    examples: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Storm:
    """One kind's budget for the current storm window and what went over it."""

    generation: int = 0
    opened_at: float | None = None
    used: int = 0
    count: int = 0
    subjects: int = 0
    first_at: datetime | None = None
    last_at: datetime | None = None
    examples: list[str] = field(default_factory=list)

    def absorb(
        self,
        *,
        subject: str | None,
        count: int,
        first_at: datetime,
        last_at: datetime,
        now: float,
    ) -> None:
        """Count ``count`` alerts; ``subject`` is an endpoint new to this summary, or None."""
        if self.opened_at is None:
            self.opened_at = now  # so that this window ends and its summary goes out
        self.count += count
        if subject is not None:
            self.subjects += 1
            if len(self.examples) < MAX_EXAMPLES:
                self.examples.append(subject)
        self.first_at = first_at if self.first_at is None else min(self.first_at, first_at)
        self.last_at = last_at if self.last_at is None else max(self.last_at, last_at)


class AlertDispatcher:
    """Deduplicates and rate-limits alerts, and sends what is due to every notifier.

    ``record`` is for the event loop's thread (it is not thread-safe) and is cheap enough for a
    hot path; ``flush`` sends; ``run`` flushes every ``flush_interval_s`` until stopped.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        notifiers: Sequence[AlertNotifier],
        min_interval_s: float,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        max_messages_per_kind: int = MAX_MESSAGES_PER_KIND,
        max_tracked_subjects: int = MAX_TRACKED_SUBJECTS,
    ) -> None:
        if min_interval_s < 0:
            raise ValueError("min_interval_s must not be negative")
        if flush_interval_s <= 0:
            raise ValueError("flush_interval_s must be positive")
        if max_messages_per_kind < 1 or max_tracked_subjects < 1:
            raise ValueError("max_messages_per_kind and max_tracked_subjects must be at least 1")
        self._clock = clock
        self._notifiers = tuple(notifiers)
        self._min_interval_s = min_interval_s
        self._storm_window_s = max(min_interval_s, STORM_WINDOW_MIN_S)
        self._flush_interval_s = flush_interval_s
        self._max_per_kind = max_messages_per_kind
        self._max_subjects = max_tracked_subjects
        self._windows: OrderedDict[tuple[AlertKind, str], _Window] = OrderedDict()
        self._storms: dict[AlertKind, _Storm] = {kind: _Storm() for kind in AlertKind}
        self._seen: OrderedDict[tuple[AlertKind, str, str], float] = OrderedDict()
        self._outbox: list[AlertMessage] = []
        self._dropped_unreported = 0
        self.stats = AlertStats()

    @property
    def tracked_subjects(self) -> int:
        """(kind, endpoint) windows held in memory now (at most ``max_tracked_subjects``)."""
        return len(self._windows)

    @property
    def remembered_keys(self) -> int:
        """Keys held for deduplication now (at most ``MAX_DEDUP_KEYS``)."""
        return len(self._seen)

    def record(self, alert: Alert) -> None:
        """Take ``alert`` into account. Synchronous, O(1) amortised, never raises, never waits.

        Call it only once the fact is committed (a rolled-back disable must not alert).
        """
        try:
            self.stats.recorded += 1
            self._record(alert, self._clock.monotonic())
        except Exception:
            self._failed()

    def delivery_failed(
        self,
        *,
        delivery_id: str,
        endpoint_id: str,
        event_id: str | None,
        reason: str,
        error: str | None,
        attempt: int | None = None,
        status_code: int | None = None,
    ) -> None:
        """``record`` a ``delivery_failed_alert`` stamped now (``DeliveryService``'s
        ``AlertSink``). Never raises."""
        try:
            alert = delivery_failed_alert(
                endpoint_id=endpoint_id,
                delivery_id=delivery_id,
                reason=reason,
                at=self._clock.now(),
                event_id=event_id or None,
                attempt=attempt,
                status_code=status_code,
                error=error,
            )
        except Exception:
            self._failed()
        else:
            self.record(alert)

    def endpoint_disabled(
        self,
        *,
        endpoint_id: str,
        reason: str,
        trigger: str,
        cancelled_deliveries: int | None = None,
        parked_deliveries: int | None = None,
        fail_since: datetime | None = None,
    ) -> None:
        """``record`` an ``endpoint_disabled_alert`` stamped now (``DeliveryService``'s and
        ``EndpointService``'s ``AlertSink``). Never raises."""
        try:
            alert = endpoint_disabled_alert(
                endpoint_id=endpoint_id,
                reason=reason,
                at=self._clock.now(),
                trigger=trigger,
                cancelled_deliveries=cancelled_deliveries,
                parked_deliveries=parked_deliveries,
                fail_since=fail_since,
            )
        except Exception:
            self._failed()
        else:
            self.record(alert)

    def endpoint_recovered(
        self,
        *,
        endpoint_id: str,
        status: str,
        trigger: str,
        fail_since: datetime | None = None,
        parked_deliveries: int | None = None,
    ) -> None:
        """``record`` an ``endpoint_recovery_alert`` stamped now. Never raises."""
        try:
            alert = endpoint_recovery_alert(
                endpoint_id=endpoint_id,
                status=status,
                at=self._clock.now(),
                trigger=trigger,
                fail_since=fail_since,
                parked_deliveries=parked_deliveries,
            )
        except Exception:
            self._failed()
        else:
            self.record(alert)

    async def flush(self) -> list[AlertMessage]:
        """Send what is due (new alerts, summaries of intervals that ended) to every notifier;
        the messages sent. A notifier that raises is logged and does not stop the others."""
        now = self._clock.monotonic()
        self._expire(now)
        batch, self._outbox = self._outbox, []
        if self._dropped_unreported:
            log.error("alert.dropped", count=self._dropped_unreported)
            self._dropped_unreported = 0
        if batch:
            self.stats.sent += len(batch)
            await asyncio.gather(*(self._notify(notifier, batch) for notifier in self._notifiers))
        return batch

    async def run(self, stop: asyncio.Event) -> None:
        """Flush every ``flush_interval_s`` until ``stop`` is set, then once more. Survives any
        exception: it is logged with its traceback and the next flush waits longer (doubling,
        at most ``FLUSH_BACKOFF_MAX_S``)."""
        failures = 0
        while not stop.is_set():
            pause_s = self._flush_interval_s
            try:
                await self.flush()
                failures = 0
            except Exception as exc:
                failures += 1
                pause_s = min(self._flush_interval_s * 2.0**failures, FLUSH_BACKOFF_MAX_S)
                log.error(
                    "alert.flush_failed",
                    error=f"{type(exc).__name__}: {exc}",
                    failures=failures,
                    retry_in_s=pause_s,
                    exc_info=True,
                )
            await _sleep_unless_stopped(self._clock, pause_s, stop)
        try:
            await self.flush()
        except Exception as exc:
            log.error("alert.flush_failed", error=f"{type(exc).__name__}: {exc}", exc_info=True)

    # --- deciding ------------------------------------------------------------------------------

    def _failed(self) -> None:
        """Count and log an alert that could not be taken into account (a bug)."""
        self.stats.errors += 1
        with contextlib.suppress(Exception):  # a broken logger must not break a settle
            log.error("alert.record_failed", exc_info=True)

    def _record(self, alert: Alert, now: float) -> None:
        if self._is_duplicate(alert, now):
            self.stats.duplicates += 1
            return
        key = (alert.kind, alert.subject)
        window = self._windows.get(key)
        if window is not None and now - window.opened_at >= self._min_interval_s:
            del self._windows[key]
            self._close(key, window, now)
            window = None
        if window is None:
            self._open(key, alert, now)
        elif window.storm is not None:
            storm = self._storm(alert.kind, now)
            new_subject = window.storm != storm.generation  # that summary went out already
            window.storm = storm.generation
            storm.absorb(
                subject=alert.subject if new_subject else None,
                count=1,
                first_at=alert.at,
                last_at=alert.at,
                now=now,
            )
        else:
            window.suppressed += 1
            window.first_at = window.first_at or alert.at
            window.last_at = alert.at
            if len(window.examples) < MAX_EXAMPLES:
                window.examples.append(alert.key)

    def _is_duplicate(self, alert: Alert, now: float) -> bool:
        seen = self._seen
        while seen:
            oldest, seen_at = next(iter(seen.items()))
            if now - seen_at < self._storm_window_s:
                break
            del seen[oldest]
        ident = (alert.kind, alert.subject, alert.key)
        if ident in seen:
            return True
        seen[ident] = now
        if len(seen) > MAX_DEDUP_KEYS:
            seen.popitem(last=False)
        return False

    def _open(self, key: tuple[AlertKind, str], alert: Alert, now: float) -> None:
        self._make_room(now)
        storm = self._storm(alert.kind, now)
        if self._admit(storm, now):
            self._send(alert)
            self._windows[key] = _Window(opened_at=now, storm=None)
        else:
            storm.absorb(
                subject=alert.subject, count=1, first_at=alert.at, last_at=alert.at, now=now
            )
            self._windows[key] = _Window(opened_at=now, storm=storm.generation)

    def _close(self, key: tuple[AlertKind, str], window: _Window, now: float) -> None:
        """The interval of ``window`` ended: summarise what it counted (or fold it into the
        storm summary when the kind's budget is spent)."""
        if window.storm is not None or not window.suppressed:
            return
        assert window.first_at is not None
        assert window.last_at is not None
        kind, subject = key
        storm = self._storm(kind, now)
        if self._admit(storm, now):
            self._send(
                AlertSummary(
                    kind=kind,
                    subject=subject,
                    count=window.suppressed,
                    subjects=1,
                    first_at=window.first_at,
                    last_at=window.last_at,
                    examples=tuple(window.examples),
                )
            )
        else:
            storm.absorb(
                subject=subject,
                count=window.suppressed,
                first_at=window.first_at,
                last_at=window.last_at,
                now=now,
            )

    def _make_room(self, now: float) -> None:
        while len(self._windows) >= self._max_subjects:
            key, window = self._windows.popitem(last=False)  # the oldest window
            if now - window.opened_at >= self._min_interval_s:
                self._close(key, window, now)
                continue
            self.stats.evicted += 1
            if window.storm is None and window.suppressed:
                assert window.first_at is not None
                assert window.last_at is not None
                self._storm(key[0], now).absorb(
                    subject=key[1],
                    count=window.suppressed,
                    first_at=window.first_at,
                    last_at=window.last_at,
                    now=now,
                )

    def _storm(self, kind: AlertKind, now: float) -> _Storm:
        """``kind``'s budget, after ending its storm window if that is over."""
        storm = self._storms[kind]
        if storm.opened_at is not None and now - storm.opened_at >= self._storm_window_s:
            if storm.count:
                assert storm.first_at is not None
                assert storm.last_at is not None
                self._send(
                    AlertSummary(
                        kind=kind,
                        subject=None,
                        count=storm.count,
                        subjects=storm.subjects,
                        first_at=storm.first_at,
                        last_at=storm.last_at,
                        examples=tuple(storm.examples),
                    )
                )
            storm = self._storms[kind] = _Storm(generation=storm.generation + 1)
        return storm

    def _admit(self, storm: _Storm, now: float) -> bool:
        """Whether one more message of this kind fits the storm window (and take it if so)."""
        if storm.opened_at is None:
            storm.opened_at = now
        if storm.used >= self._max_per_kind:
            return False
        storm.used += 1
        return True

    def _expire(self, now: float) -> None:
        """Close the windows whose interval ended (oldest first: they all last as long) and the
        storm windows that ended."""
        windows = self._windows
        while windows:
            key, window = next(iter(windows.items()))
            if now - window.opened_at < self._min_interval_s:
                break
            del windows[key]
            self._close(key, window, now)
        for kind in AlertKind:
            self._storm(kind, now)

    def _send(self, message: AlertMessage) -> None:
        if len(self._outbox) >= MAX_OUTBOX:
            self.stats.dropped += 1
            self._dropped_unreported += 1
            return
        self._outbox.append(message)

    async def _notify(self, notifier: AlertNotifier, batch: Sequence[AlertMessage]) -> None:
        try:
            await notifier.notify(batch)
        except Exception as exc:
            log.error(
                "alert.notifier_failed",
                notifier=type(notifier).__name__,
                messages=len(batch),
                error=f"{type(exc).__name__}: {exc}",
                exc_info=True,
            )


async def _sleep_unless_stopped(clock: Clock, seconds: float, stop: asyncio.Event) -> None:
    """``clock.sleep(seconds)``, cut short when ``stop`` is set."""
    if stop.is_set():
        return
    tasks = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(clock.sleep(seconds))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _shorten(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_ERROR_CHARS:
        return text
    return text[: MAX_ERROR_CHARS - 1] + "…"
