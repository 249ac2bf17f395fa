"""A webhook's whole life through ``hookline serve`` and a real receiver on loopback, on SQLite
(SQL queue) and on PostgreSQL + Redis: signed delivery, retries into the dead-letter list, and a
replay that reaches the recovered receiver with the same ``webhook-id``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.e2e.api_server import STARTUP_TIMEOUT_S, HooklineServer, running_hookline
from tests.fixtures.processes import STOP_TIMEOUT_S
from tests.receiver import Receiver, RecordedRequest

pytestmark = pytest.mark.e2e

DELIVERY_TIMEOUT_S = 60.0
"""Longest each of the test's six waits on the server process takes (a loaded machine)."""
# One retry one second after the first attempt, then the dead-letter list.
QUICK_RETRIES = {
    "max_retries": 1,
    "base_delay": 1,
    "max_delay": 1,
    "jitter": "none",
    "max_retry_duration": 60,
}


@pytest.fixture(params=["sqlite", "postgres+redis"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HooklineServer]:
    env = {
        "ALLOWED_NETWORKS": "127.0.0.1/32",  # the receiver lives on loopback
        "RETRY_WORKER_POLL_INTERVAL": "0.1",
    }
    if request.param == "postgres+redis":
        request.getfixturevalue("pg_engine")  # every table emptied
        env["DATABASE_URL"] = request.getfixturevalue("migrated_pg_url")
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
        env["HOOKLINE_REDIS_PREFIX"] = request.getfixturevalue("redis_prefix")
    with running_hookline(tmp_path, env=env) as running:
        yield running


async def eventually(
    check: Callable[[], Awaitable[Any]],
    *,
    what: str,
    server: HooklineServer,
    timeout_s: float = DELIVERY_TIMEOUT_S,
) -> Any:
    """Poll ``check`` (a bounded loop) until it returns something truthy; on timeout, fail
    with the last thing it returned and the tail of the server's log."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() >= deadline:
            tail = "\n".join(server.log().splitlines()[-40:])
            raise AssertionError(
                f"timed out after {timeout_s} s waiting for {what}; last seen: {result!r}\n"
                f"server log tail:\n{tail}"
            )
        await asyncio.sleep(0.1)  # another process works meanwhile: poll it, bounded


def verify(secret: str, request: RecordedRequest) -> dict[str, Any]:
    """The parsed body, if the Standard Webhooks signature on ``request`` verifies."""
    headers = {name.lower(): value for name, value in request.headers.items()}
    body: dict[str, Any] = Webhook(secret).verify(request.body, headers)
    return body


@pytest.mark.timeout(STARTUP_TIMEOUT_S + 6 * DELIVERY_TIMEOUT_S + 2 * STOP_TIMEOUT_S + 30)
async def test_deliver_retry_dead_letter_and_replay(server: HooklineServer) -> None:
    async with (
        Receiver() as receiver,
        httpx.AsyncClient(base_url=server.base_url, headers=server.auth, timeout=60) as api,
    ):
        # Given a healthy webhook, and one whose receiver fails, with one quick retry
        receiver.on("/ok", statuses=[200])
        receiver.on("/down", statuses=[500])
        ok = (await api.post("/webhooks", json={"url": receiver.url_for("/ok")})).json()
        down = (
            await api.post(
                "/webhooks",
                json={"url": receiver.url_for("/down"), "retry_config": QUICK_RETRIES},
            )
        ).json()
        ok_secret = (await api.get(f"/webhooks/{ok['id']}/secret")).json()["secret"]
        down_secret = (await api.get(f"/webhooks/{down['id']}/secret")).json()["secret"]

        # When an event is published
        published = await api.post(
            "/events", json={"event_type": "order.created", "payload": {"order": 7}}
        )
        assert published.status_code == 202
        event_id = published.json()["id"]
        by_webhook = {d["webhook_id"]: d["id"] for d in published.json()["deliveries"]}

        # Then the healthy receiver gets one POST whose signature verifies, its body the
        # Standard Webhooks envelope of the event
        (delivered,) = await receiver.wait_for(1, path="/ok", timeout_s=DELIVERY_TIMEOUT_S)
        assert delivered.method == "POST"
        assert delivered.headers["webhook-id"] == event_id
        created_at = (await api.get(f"/events/{event_id}")).json()["created_at"]
        envelope = {"type": "order.created", "timestamp": created_at, "data": {"order": 7}}
        assert verify(ok_secret, delivered) == envelope

        async def state_of(delivery_id: str) -> str:
            return str((await api.get(f"/deliveries/{delivery_id}")).json()["state"])

        async def succeeded(delivery_id: str) -> bool:
            return await state_of(delivery_id) == "succeeded"

        await eventually(
            lambda: succeeded(by_webhook[ok["id"]]), what="the ok delivery", server=server
        )

        # And the failing one is tried twice (first attempt + one retry), then dead-lettered
        failures = await receiver.wait_for(2, path="/down", timeout_s=DELIVERY_TIMEOUT_S)
        assert {r.headers["webhook-id"] for r in failures} == {event_id}
        assert [r.headers["webhook-attempt"] for r in failures] == ["1", "2"]
        assert failures[1].received_monotonic_s - failures[0].received_monotonic_s >= 0.9

        async def dead_letters() -> list[dict[str, Any]]:
            page = await api.get("/dead-letters", params={"webhook_id": down["id"]})
            data: list[dict[str, Any]] = page.json()["data"]
            return data

        (dead,) = await eventually(dead_letters, what="the dead letter", server=server)
        assert dead["id"] == by_webhook[down["id"]]
        assert dead["attempt_number"] == 2
        assert dead["last_status_code"] == 500
        attempts = (await api.get(f"/deliveries/{dead['id']}")).json()["attempts"]
        assert [(a["attempt_number"], a["status_code"]) for a in attempts] == [(1, 500), (2, 500)]
        assert attempts[0]["retryable"] is True
        assert attempts[0]["next_delay"] == 1

        # When the receiver recovers and the dead letters are replayed
        receiver.on("/down", statuses=[200])
        replay = await api.post("/dead-letters/replay", json={"webhook_id": down["id"]})
        assert replay.status_code == 202
        assert replay.json() == {"replayed": 1, "skipped": {}}

        # Then it is delivered, with the same webhook-id and body bytes, and verifies
        third = (await receiver.wait_for(3, path="/down", timeout_s=DELIVERY_TIMEOUT_S))[2]
        assert third.headers["webhook-id"] == event_id
        assert third.body == failures[0].body == failures[1].body
        assert verify(down_secret, third) == envelope
        await eventually(lambda: succeeded(dead["id"]), what="the replayed delivery", server=server)
        assert (await dead_letters()) == []
