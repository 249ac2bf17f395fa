"""Endpoints, backlogs and publishing for the scenarios, through hookline's own layers.

A backlog is bulk-inserted in batches into ``events`` and ``deliveries`` (the tables of
``hookline.storage.models``, through the deployment's engine), as ``pending`` deliveries *held*
a day ahead and not queued, so that the worker sees nothing of them while they are written.
``release`` then makes them due now in one statement and tells the queue (``add_missing``, as a
publish does; the SQL queue is the table itself): the timed phase starts at the release, not
at the first insert. ``set_due`` gives each delivery its own due time instead (lateness),
``schedule`` queues them at a future time (memory).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

import aiohttp
import orjson
from sqlalchemy import Table, bindparam, insert, text, update

from bench.common import BenchFailure, payload_bytes
from bench.deployments import Deployment
from bench.receiver_client import ReceiverClient
from hookline import ids
from hookline.domain.retry_config import RetryConfig
from hookline.storage.models import Delivery, Event

HOLD: Final = timedelta(days=1)
"""How far ahead a held backlog is due: beyond the sweeper's horizon, so nothing queues it."""
INSERT_BATCH: Final = 5000
"""Deliveries per insert transaction."""
QUEUE_BATCH: Final = 1000
"""Ids per queue call."""

_EVENTS = cast(Table, Event.__table__)
_DELIVERIES = cast(Table, Delivery.__table__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Target:
    """One endpoint of a scenario: its id, the event type only it subscribes to, its URL."""

    endpoint_id: str
    event_type: str
    url: str


async def create_endpoints(
    deployment: Deployment,
    receiver: ReceiverClient,
    *,
    group: str,
    count: int,
    mode: str = "ok",
    retry_config: RetryConfig | None = None,
) -> list[Target]:
    """``count`` endpoints at ``/<mode>/<group>/e<i>`` of the receiver, one event type each."""
    targets = []
    for index in range(count):
        event_type = f"bench.{group}.e{index}"
        url = receiver.url(mode, group, f"e{index}")
        endpoint = await deployment.runtime.endpoints.create(
            url=url,
            description=f"bench {group}",
            event_types=[event_type],
            retry_config=retry_config,
        )
        targets.append(Target(endpoint.id, event_type, url))
    return targets


@dataclass(frozen=True, slots=True)
class Backlog:
    """What ``insert_backlog`` wrote: event id (= the webhook-id a receiver sees) → delivery."""

    delivery_by_event: dict[str, str]
    targets: list[Target]

    @property
    def delivery_ids(self) -> list[str]:
        return list(self.delivery_by_event.values())

    @property
    def endpoint_ids(self) -> list[str]:
        return [target.endpoint_id for target in self.targets]


async def insert_backlog(
    deployment: Deployment,
    targets: Sequence[Target],
    *,
    count: int,
    due_at: datetime | None = None,
    retrying: bool = False,
    fanout: bool = False,
    queue: bool = False,
    payload_size: int = 1024,
) -> Backlog:
    """Insert ``count`` deliveries spread over ``targets`` (one event each, round robin; with
    ``fanout`` one event per ``len(targets)`` deliveries, to every target), due at ``due_at``
    (default: held, ``HOLD`` ahead). ``retrying``: as if a first attempt had failed (state
    ``retrying``, attempt 1) — the lateness scenario's retries falling due. Queued (at
    ``due_at``, batch by batch) only with ``queue``."""
    now = utcnow()
    due = due_at or now + HOLD
    delivery_by_event: dict[str, str] = {}
    per_event = len(targets) if fanout else 1
    body_cache: dict[int, str] = {}
    made = 0
    engine = deployment.runtime.engine
    while made < count:
        events: list[dict[str, Any]] = []
        deliveries: list[dict[str, Any]] = []
        while made < count and len(deliveries) < INSERT_BATCH:
            seq = made
            chosen = targets if fanout else [targets[seq % len(targets)]]
            chosen = chosen[: count - made]
            event_id = ids.new_id(ids.EVENT)
            key = seq % 64
            if key not in body_cache:
                body_cache[key] = payload_bytes(key, payload_size).decode()
            events.append(
                {
                    "id": event_id,
                    "event_type": chosen[0].event_type if per_event == 1 else "bench.fanout",
                    "payload": body_cache[key],
                    "idempotency_key": None,
                    "created_at": now,
                }
            )
            for target in chosen:
                delivery_id = ids.new_id(ids.DELIVERY)
                if per_event == 1:
                    delivery_by_event[event_id] = delivery_id
                deliveries.append(
                    {
                        "id": delivery_id,
                        "event_id": event_id,
                        "endpoint_id": target.endpoint_id,
                        "state": "retrying" if retrying else "pending",
                        "attempt_number": 1 if retrying else 0,
                        "round_start_attempt": 0,
                        "next_attempt_at": due,
                        "lease_until": None,
                        "first_attempt_at": now if retrying else None,
                        "last_status_code": 503 if retrying else None,
                        "last_error": None,
                        "created_at": now,
                        "updated_at": now,
                        "completed_at": None,
                        "version": 1 if retrying else 0,
                    }
                )
                made += 1
        async with engine.begin() as conn:
            await conn.execute(insert(_EVENTS), events)
            await conn.execute(insert(_DELIVERIES), deliveries)
        if queue:
            await schedule(deployment, [(d["id"], due) for d in deliveries])
    return Backlog(delivery_by_event=delivery_by_event, targets=list(targets))


async def release(deployment: Deployment, backlog: Backlog) -> None:
    """Make a held backlog due now: one UPDATE, then the queue learns of it (Redis)."""
    now = utcnow()
    runtime = deployment.runtime
    async with runtime.engine.begin() as conn:
        await conn.execute(
            update(_DELIVERIES)
            .where(
                _DELIVERIES.c.endpoint_id.in_(backlog.endpoint_ids),
                _DELIVERIES.c.next_attempt_at > now,
                _DELIVERIES.c.state.in_(("pending", "retrying")),
            )
            .values(next_attempt_at=now)
        )
    if not runtime.queue.leases_in_database:
        items = [(delivery_id, now) for delivery_id in backlog.delivery_ids]
        for start in range(0, len(items), QUEUE_BATCH):
            await runtime.queue.add_missing(items[start : start + QUEUE_BATCH])


async def set_due(deployment: Deployment, items: Sequence[tuple[str, datetime]]) -> None:
    """Give each delivery its own due time, in the database and in the queue."""
    runtime = deployment.runtime
    statement = (
        update(_DELIVERIES)
        .where(_DELIVERIES.c.id == bindparam("delivery_id"))
        .values(next_attempt_at=bindparam("due_at"))
    )
    for start in range(0, len(items), INSERT_BATCH):
        chunk = items[start : start + INSERT_BATCH]
        async with runtime.engine.begin() as conn:
            await conn.execute(statement, [{"delivery_id": i, "due_at": due} for i, due in chunk])
    if not runtime.queue.leases_in_database:
        await schedule(deployment, items)


async def schedule(deployment: Deployment, items: Sequence[tuple[str, datetime]]) -> None:
    """Queue these (id, due) pairs (a no-op on the SQL queue, which is the table)."""
    queue = deployment.runtime.queue
    if queue.leases_in_database:
        return
    for start in range(0, len(items), QUEUE_BATCH):
        await queue.schedule_many(items[start : start + QUEUE_BATCH])


async def delivery_states(deployment: Deployment, endpoint_ids: Sequence[str]) -> Counter[str]:
    async with deployment.runtime.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT state, count(*) FROM deliveries WHERE endpoint_id IN :ids GROUP BY state"
            ).bindparams(bindparam("ids", expanding=True)),
            {"ids": list(endpoint_ids)},
        )
        return Counter({str(state): int(n) for state, n in rows})


async def attempt_count(deployment: Deployment, endpoint_ids: Sequence[str]) -> int:
    async with deployment.runtime.engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM delivery_attempts a JOIN deliveries d "
                        "ON d.id = a.delivery_id WHERE d.endpoint_id IN :ids"
                    ).bindparams(bindparam("ids", expanding=True)),
                    {"ids": list(endpoint_ids)},
                )
            ).scalar_one()
        )


async def wait_settled(
    deployment: Deployment, endpoint_ids: Sequence[str], *, count: int, timeout_s: float
) -> Counter[str]:
    """Wait until ``count`` deliveries of these endpoints are ``succeeded`` (the worker commits
    after the request ends); their states."""
    deadline = time.monotonic() + timeout_s
    while True:
        states = await delivery_states(deployment, endpoint_ids)
        if states["succeeded"] >= count:
            return states
        if time.monotonic() > deadline:
            raise BenchFailure(
                f"{states['succeeded']} of {count} deliveries settled as succeeded within "
                f"{timeout_s:g} s (states {dict(states)})"
            )
        await asyncio.sleep(0.05)


# publishing over HTTP -------------------------------------------------------------------------


class ApiClient:
    """POST /events (and /webhooks) to a running hookline API with its token."""

    def __init__(self, base_url: str, token: str, *, connections: int) -> None:
        self.base_url = base_url
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections, limit_per_host=0),
            timeout=aiohttp.ClientTimeout(total=60),
            headers={"Authorization": f"Bearer {token}", "content-type": "application/json"},
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def publish(self, body: bytes) -> tuple[int, str | None]:
        """(status, event id or None)."""
        async with self._session.post(f"{self.base_url}/events", data=body) as response:
            data = await response.read()
            if response.status in (200, 202):
                return response.status, str(orjson.loads(data)["id"])
            return response.status, None

    async def post_event(self, body: bytes) -> int:
        """POST /events; the status."""
        async with self._session.post(f"{self.base_url}/events", data=body) as response:
            await response.read()
            return response.status

    async def create_webhook(self, url: str, event_types: list[str]) -> str:
        body = orjson.dumps({"url": url, "event_types": event_types})
        async with self._session.post(f"{self.base_url}/webhooks", data=body) as response:
            data = await response.read()
            if response.status != 201:
                raise BenchFailure(f"POST /webhooks answered {response.status}: {data[:200]!r}")
            return str(orjson.loads(data)["id"])

    async def close(self) -> None:
        await self._session.close()


def event_body(event_type: str, seq: int, size: int = 1024) -> bytes:
    """A POST /events body whose payload is ``size`` bytes of compact JSON."""
    return (
        b'{"event_type":"' + event_type.encode() + b'","payload":' + payload_bytes(seq, size) + b"}"
    )


@dataclass
class SteadyResult:
    published_at: dict[str, float]
    statuses: Counter[int]
    elapsed_s: float

    @property
    def rate(self) -> float:
        return len(self.published_at) / self.elapsed_s if self.elapsed_s > 0 else 0.0


async def publish_steady(
    api: ApiClient,
    targets: Sequence[Target],
    *,
    rate_per_s: float,
    count: int,
    max_in_flight: int = 64,
) -> SteadyResult:
    """Publish ``count`` events at ``rate_per_s`` (open loop: the k-th is due at k / rate;
    at most ``max_in_flight`` requests at once), round robin over ``targets``. Records when each
    publish *started* (monotonic), by event id."""
    published_at: dict[str, float] = {}
    statuses: Counter[int] = Counter()
    slots = asyncio.Semaphore(max_in_flight)
    started = time.monotonic()

    async def one(seq: int) -> None:
        try:
            at = time.monotonic()
            status, event_id = await api.publish(
                event_body(targets[seq % len(targets)].event_type, seq)
            )
            statuses[status] += 1
            if event_id is not None:
                published_at[event_id] = at
        finally:
            slots.release()

    async with asyncio.TaskGroup() as group:
        for seq in range(count):
            delay = started + seq / rate_per_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await slots.acquire()
            group.create_task(one(seq))
    return SteadyResult(published_at, statuses, time.monotonic() - started)
