"""Helpers of the API tests: an authenticated client bundled with its runtime, assertions, and
the fake DNS every API runtime resolves names with (no test looks up a real name)."""

from __future__ import annotations

import asyncio
import re
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from aiohttp.abc import AbstractResolver, ResolveResult

from hookline import ids
from hookline.clock import ManualClock, SystemClock
from hookline.domain.outcome import AttemptError
from hookline.runtime import Runtime
from hookline.sender.client import OutboundRequest, Sender, SendResult
from hookline.storage.models import Delivery, DeliveryAttempt, Endpoint, Event
from tests import factories

TOKEN = "test-token-0123456789abcdef"
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
ID = {
    "wh": re.compile(r"^wh_[0-9A-HJKMNP-TV-Z]{26}$"),
    "evt": re.compile(r"^evt_[0-9A-HJKMNP-TV-Z]{26}$"),
    "dlv": re.compile(r"^dlv_[0-9A-HJKMNP-TV-Z]{26}$"),
    "att": re.compile(r"^att_[0-9A-HJKMNP-TV-Z]{26}$"),
}
WEBHOOK_FIELDS = {
    "id",
    "url",
    "description",
    "event_types",
    "headers",
    "payload_format",
    "rate_limit_per_s",
    "status",
    "parked",
    "disabled_reason",
    "disabled_at",
    "probe_enabled",
    "next_probe_at",
    "retry_config",
    "trace_propagation",
    "created_at",
    "updated_at",
}
DELIVERY_FIELDS = {
    "id",
    "event_id",
    "webhook_id",
    "state",
    "attempt_number",
    "next_attempt_at",
    "last_status_code",
    "last_error",
    "created_at",
    "completed_at",
}
ATTEMPT_FIELDS = {
    "id",
    "attempt_number",
    "started_at",
    "duration_ms",
    "status_code",
    "error",
    "retryable",
    "response_body",
    "next_delay",
}
DEFAULT_RETRY_CONFIG = {
    "max_retries": 10,
    "base_delay": 120.0,
    "max_delay": 7200.0,
    "multiplier": 2.0,
    "jitter": "proportional",
    "jitter_ratio": 0.5,
    "max_retry_duration": 36000.0,
    "respect_retry_after": True,
    "disable_on_status": [404, 410],
}
LOCALHOST = ("127.0.0.1", "::1")


class FakeDns(AbstractResolver):
    """Answers from ``table`` (name → addresses; ``localhost`` is there, as in /etc/hosts);
    any other name does not resolve. A name in ``hanging`` never answers. ``lookups`` records
    every name asked for."""

    def __init__(self) -> None:
        self.table: dict[str, tuple[str, ...]] = {"localhost": LOCALHOST}
        self.hanging: set[str] = set()
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        name = host.lower().rstrip(".")
        if name in self.hanging:
            await asyncio.Event().wait()
        if name not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} is not in the fake DNS")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.table[name]
        ]

    async def close(self) -> None:
        return None


UNKNOWN = {
    "wh": "wh_00000000000000000000000000",
    "evt": "evt_00000000000000000000000000",
    "dlv": "dlv_00000000000000000000000000",
}


def is_id(value: object, prefix: str) -> bool:
    return isinstance(value, str) and ID[prefix].match(value) is not None


def is_utc(value: object) -> bool:
    return isinstance(value, str) and RFC3339_UTC.match(value) is not None


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def iso(when: datetime) -> str:
    """How the API writes ``when``."""
    return when.isoformat().replace("+00:00", "Z")


def assert_422(response: httpx.Response, *loc: str | int) -> None:
    """A FastAPI-shaped validation error naming exactly ``loc`` (among its errors)."""
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list)
    locs = [list(error["loc"]) for error in detail]
    assert list(loc) in locs, locs


def assert_error(response: httpx.Response, status: int) -> str:
    """A ``{"detail": "..."}`` error with ``status``; returns the detail."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail"}
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return str(body["detail"])


@dataclass
class Api:
    """An authenticated client on ``create_app(runtime)``, with the runtime for seeding rows."""

    client: httpx.AsyncClient
    runtime: Runtime

    @property
    def clock(self) -> ManualClock:
        assert isinstance(self.runtime.clock, ManualClock)
        return self.runtime.clock

    async def create_webhook(self, **body: Any) -> dict[str, Any]:
        body.setdefault("url", "https://example.com/hook")
        response = await self.client.post("/webhooks", json=body)
        assert response.status_code == 201, response.text
        self.clock.advance(0.001)  # ids are time-ordered by millisecond: keep them distinct
        created: dict[str, Any] = response.json()
        return created

    async def seed_delivery(
        self, *, webhook_id: str, event: Event | None = None, **over: Any
    ) -> Delivery:
        """A delivery row of ``webhook_id`` (and a new event unless given), via the factories."""
        async with self.runtime.sessions.begin() as session:
            endpoint = await session.get(Endpoint, webhook_id)
            assert endpoint is not None
            if event is None:
                event = await factories.make_event(session, now=self.clock.now())
            over.setdefault("id", ids.new_id(ids.DELIVERY, now_ms=ms(self.clock.now())))
            delivery = await factories.make_delivery(
                session, event=event, endpoint=endpoint, now=self.clock.now(), **over
            )
        self.clock.advance(0.001)
        return delivery

    async def seed_attempt(self, *, delivery_id: str, **over: Any) -> DeliveryAttempt:
        async with self.runtime.sessions.begin() as session:
            delivery = await session.get(Delivery, delivery_id)
            assert delivery is not None
            attempt = await factories.make_attempt(
                session, delivery=delivery, now=self.clock.now(), **over
            )
        return attempt

    async def delivery(self, delivery_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/deliveries/{delivery_id}")
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found


class OfflineSender(Sender):
    """A ``Sender`` that never touches the network: every send is a connection error. For
    runtimes whose webhook URLs are generated (schemathesis): a test send or a probe to a
    generated public address must not leave this machine."""

    def __init__(self) -> None:
        super().__init__(
            connect_timeout_s=1.0,
            total_timeout_s=1.0,
            allowed_networks=[],
            user_agent="hookline/test",
            clock=SystemClock(),
        )
        self.sent: list[OutboundRequest] = []

    async def send(self, request: OutboundRequest) -> SendResult:
        self.sent.append(request)
        return SendResult(
            status_code=None,
            error=AttemptError.CONNECT,
            error_detail="offline sender: nothing leaves the test machine",
            response_body=None,
            retry_after=None,
            duration_ms=0,
        )
