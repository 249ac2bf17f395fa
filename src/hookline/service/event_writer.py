"""``EventWriter``: the one write path of publishing, committing concurrent publishes in groups.

Publishers hand their event to the writer and wait. A writer task takes whatever is pending
(up to ``GROUP_MAX_EVENTS`` / ``GROUP_MAX_BYTES``) and writes it in one transaction with a fixed
number of statements (``storage.repositories.events``: Core statements on a connection, no unit
of work); while it commits, the next group gathers. Only after the commit is the queue told
(``add_missing``, once per group), and only then is each publisher answered: no event is
acknowledged before it is durable. PostgreSQL takes ``GROUPS_IN_FLIGHT`` groups at once (one is
sent while another commits); SQLite one, as its writers take turns anyway.

One group, one transaction (on PostgreSQL one statement), so one failure would fail all of it.
What happens instead:

- an outage (``storage.db.is_outage``: the database unreachable, restarting, locked too long)
  fails every member with ``Unavailable`` (503 + Retry-After); the transaction wrote nothing;
- any other error is the fault of one event (a row the database refuses, a key another process
  inserted a moment ago): the members are written again one by one, each in its own
  transaction, so each gets its own answer and the bad one fails alone.

Idempotency keys are looked up for the whole group inside its transaction. A key that is stored
already answers with the stored event (or ``Conflict``); two members with the same new key
become one event: the first is created, the later ones are its repeats (``same_content``). A key
that another group of this writer is writing waits for that group; one that another process
inserts meanwhile makes the insert fail, and the one-by-one retry finds it stored.

On SQLite the group's transaction starts with ``BEGIN IMMEDIATE`` (``storage.db.begin_write``):
with one writer for all of ingest, publishers never queue up on the database lock, and the
writer waits for the worker's short transactions (``busy_timeout``) instead of failing.

Memory is bounded: at most ``PENDING_MAX_EVENTS`` / ``PENDING_MAX_BYTES`` wait for the writer;
more publishers wait for room before they are queued. A writer task runs only while there is
something to write (a publish starts one when fewer than allowed are running; it ends when
nothing is left for it), so a writer nobody closes leaves nothing behind; ``close`` refuses new
events and waits until everything pending is answered. A writer that fails in itself (a bug, not
a database error) answers its group with the error, logs it with its traceback, backs off and
goes on.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from contextvars import Context
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, TypeAlias

import orjson
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from hookline import ids
from hookline.clock import Clock
from hookline.domain.states import DeliveryState
from hookline.errors import Conflict, HooklineError, Unavailable
from hookline.observability.logging import get_logger
from hookline.queue.base import DelayedQueue
from hookline.storage.db import begin_write, is_conflict, is_outage, is_sqlite
from hookline.storage.repositories import events as repo

log = get_logger("hookline.events")

GROUP_MAX_EVENTS: Final = 256
"""Most events one transaction writes (also bounds the idempotency keys of one ``IN``)."""
GROUP_MAX_BYTES: Final = 4 * 1024 * 1024
"""Most payload bytes one transaction writes (one larger event still goes, alone)."""
PENDING_MAX_EVENTS: Final = 4 * GROUP_MAX_EVENTS
"""Most events waiting for the writer; further publishers wait for room."""
PENDING_MAX_BYTES: Final = 32 * 1024 * 1024
"""Most payload bytes waiting for the writer (one larger event is let in when none waits)."""
GROUPS_IN_FLIGHT: Final = 2
"""Groups written at once where the database takes concurrent writers (PostgreSQL): one commits
while the next one's statements are on their way, so the writer does not idle on round trips."""
CONFLICT_RETRY_DELAYS_S: Final = (0.01, 0.05, 0.2)
"""Pauses before a group rolled back by a conflict (a deadlock victim) is written again."""
WRITER_BACKOFF_S: Final = 0.05
"""First pause after the writer itself failed (a bug, not a database error); doubles."""
WRITER_BACKOFF_MAX_S: Final = 5.0
_PENDING: Final = DeliveryState.PENDING.value
_PARKED: Final = DeliveryState.PARKED.value
SHUTTING_DOWN: Final = "hookline is shutting down; publish again in a moment"


PublishedEvent: TypeAlias = repo.EventRow
"""An event as stored: ``id``, ``event_type``, ``payload`` (the JSON text), ``idempotency_key``,
``created_at``."""
PublishedDelivery: TypeAlias = repo.DeliveryRow
"""A delivery as written or read: ``id``, ``event_id``, ``endpoint_id``, ``state``,
``created_at``."""


@dataclass(frozen=True, slots=True)
class PublishResult:
    """The event, its deliveries, and whether this call created them (False: idempotent repeat)."""

    event: PublishedEvent
    deliveries: list[PublishedDelivery]
    created: bool


@dataclass(eq=False, slots=True)
class PendingEvent:
    """One publish waiting for the writer: what to store, and the caller's answer."""

    event_type: str
    payload: Any
    body: str
    """``payload`` as the compact JSON text that is stored, signed and sent."""
    size_bytes: int
    idempotency_key: str | None
    answer: asyncio.Future[PublishResult] = field(repr=False)
    trace_context: str | None = None


_Outcome: TypeAlias = PublishResult | BaseException


@dataclass(slots=True)
class _Rows:
    """What one group inserts."""

    events: list[PublishedEvent] = field(default_factory=list)
    deliveries: list[PublishedDelivery] = field(default_factory=list)


class EventWriter:
    """Group commit of published events; the only code that inserts events."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        queue: DelayedQueue,
        clock: Clock,
        groups_in_flight: int | None = None,
    ) -> None:
        """``groups_in_flight``: how many groups may be written at once (default: 1 on SQLite,
        whose writers take turns anyway, ``GROUPS_IN_FLIGHT`` elsewhere)."""
        self._sessions = sessions
        self._engine = _engine_of(sessions)
        # PostgreSQL inserts a group in one statement (repo.insert_events): no transaction needed
        self._autocommit = (
            self._engine.execution_options(isolation_level="AUTOCOMMIT")
            if self._engine.dialect.name == "postgresql"
            else None
        )
        self._queue = queue
        self._clock = clock
        if groups_in_flight is None:
            groups_in_flight = 1 if is_sqlite(self._engine) else GROUPS_IN_FLIGHT
        self._max_writers = max(1, groups_in_flight)
        self._pending: deque[PendingEvent] = deque()
        self._pending_bytes = 0
        self._room = asyncio.Event()
        self._writers: set[asyncio.Task[None]] = set()
        self._keys_in_flight: set[str] = set()
        self._closed = False
        self.groups_written = 0
        """Groups written whole, each by one transaction (for tests and debugging)."""

    @property
    def pending(self) -> int:
        """Events waiting for the writer (not counting the groups being written)."""
        return len(self._pending)

    async def write(
        self,
        *,
        event_type: str,
        payload: Any,
        body: str,
        size_bytes: int,
        key: str | None,
        trace_context: str | None = None,
    ) -> PublishResult:
        """Store the event (or find it stored under ``key``) and return once that is
        committed and the queue was told; raises what that one event's write raised."""
        if self._closed:
            raise Unavailable(SHUTTING_DOWN)
        while self._pending and (
            len(self._pending) >= PENDING_MAX_EVENTS
            or self._pending_bytes + size_bytes > PENDING_MAX_BYTES
        ):
            self._room.clear()
            await self._room.wait()
            if self._closed:
                raise Unavailable(SHUTTING_DOWN)
        item = PendingEvent(
            event_type=event_type,
            payload=payload,
            body=body,
            size_bytes=size_bytes,
            idempotency_key=key,
            answer=asyncio.get_running_loop().create_future(),
            trace_context=trace_context,
        )
        self._pending.append(item)
        self._pending_bytes += size_bytes
        if len(self._writers) < self._max_writers:
            # A context of its own: the writer serves every publisher, not the one that woke it
            # (its SQL spans must not appear inside that one request's trace).
            self._writers.add(
                asyncio.create_task(self._run(), name="event-writer", context=Context())
            )
        # A cancelled caller cancels its answer: not written if no writer has taken it yet.
        return await item.answer

    async def close(self) -> None:
        """Refuse new events; wait until every pending one is written and answered."""
        self._closed = True
        self._room.set()
        while self._writers:
            await asyncio.shield(asyncio.gather(*self._writers, return_exceptions=True))

    async def _run(self) -> None:
        """Write groups until nothing is left that this writer may take."""
        group: list[PendingEvent] = []
        failures = 0
        try:
            while group := self._take_group():
                try:
                    await self._write_group(group)
                    failures = 0
                except Exception as exc:  # a bug here must not stop ingest: answer, back off
                    failures += 1
                    log.error("events.writer_failed", events=len(group), exc_info=exc)
                    for item in group:
                        _answer(item, exc)
                    await self._clock.sleep(
                        min(WRITER_BACKOFF_MAX_S, WRITER_BACKOFF_S * 2 ** (failures - 1))
                    )
                finally:
                    self._keys_in_flight.difference_update(
                        item.idempotency_key for item in group if item.idempotency_key
                    )
        finally:
            # Synchronously with the last look at what is pending: a publish from now on sees
            # this writer gone and starts another one.
            self._writers.discard(asyncio.current_task())
            # Normally nothing is left to answer. Cancelled (the event loop is closing): answer
            # this writer's group, and what is pending if no other writer is left to take it.
            stopped = Unavailable(SHUTTING_DOWN)
            for item in group:
                _answer(item, stopped)
            if not self._writers:
                for item in self._pending:
                    _answer(item, stopped)
                self._pending.clear()
                self._pending_bytes = 0
            self._room.set()

    def _take_group(self) -> list[PendingEvent]:
        """The next group: pending events in order, except those whose idempotency key another
        writer is writing right now (they wait for it: its commit decides what they get)."""
        group: list[PendingEvent] = []
        deferred: list[PendingEvent] = []
        group_bytes = 0
        while self._pending and len(group) < GROUP_MAX_EVENTS:
            item = self._pending[0]
            if group and group_bytes + item.size_bytes > GROUP_MAX_BYTES:
                break
            self._pending.popleft()
            if item.answer.done():  # its caller gave up before it was written
                self._pending_bytes -= item.size_bytes
                continue
            key = item.idempotency_key
            if key is not None and key in self._keys_in_flight:
                deferred.append(item)
                continue
            self._pending_bytes -= item.size_bytes
            group.append(item)
            group_bytes += item.size_bytes
        self._pending.extendleft(reversed(deferred))
        self._keys_in_flight.update(item.idempotency_key for item in group if item.idempotency_key)
        self._room.set()
        return group

    async def _write_group(self, group: list[PendingEvent]) -> None:
        now = self._clock.now()
        outcomes: Sequence[_Outcome]
        try:
            outcomes = await self._commit_retrying_conflicts(group, now)
            self.groups_written += 1
        except Exception as exc:
            if is_outage(exc):
                log.warning("events.group_unavailable", events=len(group), error=_describe(exc))
                for item in group:
                    _answer(item, _unavailable(exc))
                return
            if len(group) > 1:
                log.warning(
                    "events.group_failed_writing_alone", events=len(group), error=_describe(exc)
                )
            outcomes = [await self._write_alone(item, now) for item in group]
        created = [
            (delivery.id, now)
            for outcome in outcomes
            if isinstance(outcome, PublishResult) and outcome.created
            for delivery in outcome.deliveries
            if delivery.state == _PENDING  # parked ones have no queue entry
        ]
        await self._enqueue(created)
        for item, outcome in zip(group, outcomes, strict=True):
            _answer(item, outcome)

    async def _commit_retrying_conflicts(
        self, group: list[PendingEvent], now: datetime
    ) -> list[_Outcome]:
        """``_commit_group``, run again when the database rolled it back to break a conflict
        with another transaction (a deadlock victim): it wrote nothing, and a second try is
        expected to go through, so its publishers are not answered 503 for it."""
        for delay_s in (*CONFLICT_RETRY_DELAYS_S, None):
            try:
                return await self._commit_group(group, now)
            except Exception as exc:
                if delay_s is None or not is_conflict(exc):
                    raise
                log.info("events.group_conflict_retry", events=len(group), retry_in_s=delay_s)
                await self._clock.sleep(delay_s)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _commit_group(self, group: list[PendingEvent], now: datetime) -> list[_Outcome]:
        """Write ``group`` at once (one transaction; on PostgreSQL one statement); the outcome
        of each member, in order."""
        keys = {item.idempotency_key for item in group if item.idempotency_key is not None}
        outcomes: list[_Outcome | PendingEvent] = []
        rows = _Rows()
        async with self._writing() as connection:
            stored = await repo.find_by_idempotency_keys(connection, idempotency_keys=keys)
            subscriptions = await repo.subscriptions(connection)
            subscribers: dict[str, list[repo.Subscription]] = {}
            first_with_key: dict[str, PendingEvent] = {}
            for item in group:
                key = item.idempotency_key
                if key is not None and key in stored:
                    outcomes.append(_same_content_or_conflict(_stored_result(stored[key]), item))
                    continue
                if key is not None:
                    if key in first_with_key:
                        outcomes.append(first_with_key[key])  # resolved below, after the first
                        continue
                    first_with_key[key] = item
                targets = subscribers.get(item.event_type)
                if targets is None:
                    targets = repo.subscribers(subscriptions, item.event_type)
                    subscribers[item.event_type] = targets
                outcomes.append(_new_event(item, targets, now, rows))
            await repo.insert_events(connection, events=rows.events, deliveries=rows.deliveries)
        created = {
            item.idempotency_key: outcome
            for item, outcome in zip(group, outcomes, strict=True)
            if isinstance(outcome, PublishResult) and outcome.created and item.idempotency_key
        }
        resolved: list[_Outcome] = []
        for item, outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, PendingEvent):  # a repeat of an earlier member's new key
                assert item.idempotency_key is not None
                first = created[item.idempotency_key]
                repeat = PublishResult(
                    event=first.event, deliveries=first.deliveries, created=False
                )
                resolved.append(_same_content_or_conflict(repeat, item))
            else:
                resolved.append(outcome)
        return resolved

    async def _write_alone(self, item: PendingEvent, now: datetime) -> _Outcome:
        """Write ``item`` in a transaction of its own: its outcome, error included."""
        try:
            return await self._commit_alone(item, now)
        except Exception as exc:
            if is_outage(exc):
                return _unavailable(exc)
            if not isinstance(exc, HooklineError):  # a Conflict is an answer, not a failure
                # Its caller gets the exception (the API logs its traceback and answers 500).
                log.warning(
                    "events.publish_failed",
                    event_type=item.event_type[:255],
                    error=_describe(exc),
                )
            return exc

    async def _commit_alone(self, item: PendingEvent, now: datetime) -> PublishResult:
        key = item.idempotency_key
        if key is not None:
            existing = await self._stored(key)
            if existing is not None:
                return same_content(existing, event_type=item.event_type, payload=item.payload)
        rows = _Rows()
        try:
            async with self._writing() as connection:
                subscriptions = await repo.subscriptions(connection)
                targets = repo.subscribers(subscriptions, item.event_type)
                result = _new_event(item, targets, now, rows)
                await repo.insert_events(connection, events=rows.events, deliveries=rows.deliveries)
        except IntegrityError:
            if key is None:
                raise
            existing = await self._stored(key)  # lost a race with the same key
            if existing is None:
                raise
            return same_content(existing, event_type=item.event_type, payload=item.payload)
        return result

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        """A connection to write one group on.

        PostgreSQL: in autocommit mode. The group's insert is one statement, atomic by itself,
        and its reads gain nothing from a transaction (under READ COMMITTED each statement sees
        the latest commits anyway): no ``BEGIN`` and ``COMMIT`` round trips. SQLite: a
        transaction that holds the write lock from its first statement (``begin_write``).
        """
        if self._autocommit is not None:
            async with self._autocommit.connect() as connection:
                yield connection
            return
        async with self._engine.begin() as connection:
            await begin_write(connection)
            yield connection

    async def _stored(self, idempotency_key: str) -> PublishResult | None:
        return await find_stored(self._sessions, idempotency_key)

    async def _enqueue(self, items: list[tuple[str, datetime]]) -> None:
        if not items:
            return
        try:
            # add_missing, not schedule_many: a worker may have claimed them already (SQL queue)
            # or the sweeper may have queued them, and a claim must never be doubled.
            await self._queue.add_missing(items)
        except Exception as exc:
            # Committed already: the sweeper enqueues what is due in SQL and missing here.
            log.warning(
                "events.enqueue_failed",
                deliveries=len(items),
                error=_describe(exc),
                exc_info=not isinstance(exc, HooklineError),
            )


async def find_stored(
    sessions: async_sessionmaker[AsyncSession], idempotency_key: str
) -> PublishResult | None:
    """The event stored under ``idempotency_key`` as a repeat's answer, or None."""
    async with sessions() as session:
        found = await repo.find_by_idempotency_key(session, idempotency_key=idempotency_key)
    return None if found is None else _stored_result(found)


def same_content(existing: PublishResult, *, event_type: str, payload: Any) -> PublishResult:
    """``existing`` if it was published with this ``event_type`` and an equal payload; else
    ``Conflict`` naming what differs (see ``service.events`` for what "equal" means)."""
    event = existing.event
    different: list[str] = []
    if event.event_type != event_type:
        different.append("event_type")
    if _canonical(orjson.loads(event.payload)) != _canonical(payload):
        different.append("payload")
    if different:
        raise Conflict(
            f"idempotency_key {event.idempotency_key!r} was already used for event {event.id} "
            f"with a different {' and '.join(different)}; a different event needs a new key"
        )
    return existing


def _same_content_or_conflict(existing: PublishResult, item: PendingEvent) -> _Outcome:
    try:
        return same_content(existing, event_type=item.event_type, payload=item.payload)
    except Conflict as conflict:
        return conflict


def _canonical(value: Any) -> bytes:
    """``value`` as compact JSON with sorted keys: equal for equal JSON values."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _new_event(
    item: PendingEvent, targets: list[repo.Subscription], now: datetime, rows: _Rows
) -> PublishResult:
    """A new event of ``item`` with one delivery per endpoint, added to ``rows``: ``pending``,
    or ``parked`` where the endpoint is disabled (not gone) or recovering."""
    event = PublishedEvent(
        ids.new_id(ids.EVENT),
        item.event_type,
        item.body,
        item.idempotency_key,
        now,
        item.trace_context,
    )
    deliveries = [
        PublishedDelivery(
            ids.new_id(ids.DELIVERY),
            event.id,
            found.endpoint_id,
            _PARKED if found.parks else _PENDING,
            now,
        )
        for found in targets
    ]
    rows.events.append(event)
    rows.deliveries.extend(deliveries)
    return PublishResult(event=event, deliveries=deliveries, created=True)


def _engine_of(sessions: async_sessionmaker[AsyncSession]) -> AsyncEngine:
    """The engine ``sessions`` are bound to: the writer runs Core statements on its
    connections (no unit of work per group)."""
    bind = sessions.kw.get("bind")
    if not isinstance(bind, AsyncEngine):
        raise TypeError("EventWriter needs sessions bound to an AsyncEngine")
    return bind


def _stored_result(found: repo.StoredEvent) -> PublishResult:
    """A repeat's answer: the stored event and its deliveries as they are now."""
    event, deliveries = found
    return PublishResult(event=event, deliveries=deliveries, created=False)


def _answer(item: PendingEvent, outcome: _Outcome) -> None:
    if item.answer.done():  # its caller was cancelled meanwhile
        return
    if isinstance(outcome, PublishResult):
        item.answer.set_result(outcome)
    else:
        item.answer.set_exception(outcome)


def _unavailable(exc: BaseException) -> Unavailable:
    """What a publisher hit by an outage is told (the details are logged, not sent)."""
    error = Unavailable("database unavailable")
    error.__cause__ = exc
    return error


def _describe(exc: BaseException) -> str:
    """``exc`` for a log line: its type and the driver's message, not the statement and its
    parameters (which would copy payloads into the log)."""
    orig = getattr(exc, "orig", None)
    if isinstance(orig, BaseException):
        return f"{type(exc).__name__}: {type(orig).__name__}: {orig}"[:300]
    return f"{type(exc).__name__}: {exc}"[:300]
