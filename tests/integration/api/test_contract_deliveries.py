"""API.md, row by row: events, deliveries, dead letters and operations, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import socket
from typing import Any

import pytest

from hookline.domain.states import DisabledReason
from hookline.queue.redis_queue import RedisQueue
from hookline.service.endpoints import EndpointService
from hookline.storage.db import create_engine, create_session_factory
from tests.integration.api.conftest import MAX_PAYLOAD_BYTES, client_for
from tests.integration.api.helpers import (
    ATTEMPT_FIELDS,
    DELIVERY_FIELDS,
    UNKNOWN,
    Api,
    assert_422,
    assert_error,
    is_id,
    is_utc,
    iso,
)

# --- POST /events -----------------------------------------------------------------------------


async def test_publish_fans_out_to_subscribed_webhooks_that_are_not_gone(api: Api) -> None:
    everything = await api.create_webhook()
    orders = await api.create_webhook(event_types=["order.created"])
    await api.create_webhook(event_types=["user.deleted"])
    disabled = await api.create_webhook()
    await api.client.post(f"/webhooks/{disabled['id']}/disable")
    gone = await api.create_webhook()
    await api.runtime.endpoints.disable(endpoint_id=gone["id"], reason=DisabledReason.GONE)
    deleted = await api.create_webhook()
    await api.client.delete(f"/webhooks/{deleted['id']}")

    response = await api.client.post(
        "/events", json={"event_type": "order.created", "payload": {"id": 1, "items": [1, 2]}}
    )

    assert response.status_code == 202
    body = response.json()
    assert is_id(body["id"], "evt")
    assert body["event_type"] == "order.created"
    assert is_utc(body["created_at"])
    assert all(set(d) == {"id", "webhook_id"} for d in body["deliveries"])
    assert all(is_id(d["id"], "dlv") for d in body["deliveries"])
    assert sorted(d["webhook_id"] for d in body["deliveries"]) == sorted(
        [everything["id"], orders["id"], disabled["id"]]
    )
    for ref in body["deliveries"]:
        shown = await api.delivery(ref["id"])
        assert shown["event_id"] == body["id"]
        assert shown["attempt_number"] == 0
        if ref["webhook_id"] == disabled["id"]:
            # disabled by hand: it waits parked, with no due time, for the webhook to come back
            assert (shown["state"], shown["next_attempt_at"]) == ("parked", None)
        else:
            assert shown["state"] == "pending"
            assert shown["next_attempt_at"] == iso(api.clock.now())


async def test_publish_with_no_subscriber_creates_an_event_without_deliveries(api: Api) -> None:
    response = await api.client.post("/events", json={"event_type": "x", "payload": None})
    assert response.status_code == 202
    assert response.json()["deliveries"] == []


async def test_a_repeated_idempotency_key_returns_the_first_event_with_200(api: Api) -> None:
    await api.create_webhook()
    body = {"event_type": "order.created", "payload": {"n": 1}, "idempotency_key": "order-1"}

    first = await api.client.post("/events", json=body)
    repeat = await api.client.post("/events", json=body)

    assert first.status_code == 202
    assert repeat.status_code == 200
    assert repeat.json() == first.json()
    listed = (await api.client.get("/deliveries")).json()["data"]
    assert [d["id"] for d in listed] == [d["id"] for d in first.json()["deliveries"]]
    event = (await api.client.get(f"/events/{first.json()['id']}")).json()
    assert event["payload"] == {"n": 1}
    assert event["idempotency_key"] == "order-1"


async def test_payload_over_the_limit_is_413(api: Api) -> None:
    await api.create_webhook()
    big = "x" * MAX_PAYLOAD_BYTES  # as JSON it is two quotes longer than the limit

    response = await api.client.post("/events", json={"event_type": "e", "payload": big})

    detail = assert_error(response, 413)
    assert str(MAX_PAYLOAD_BYTES) in detail
    assert (await api.client.get("/deliveries")).json()["data"] == []
    just_fits = await api.client.post(
        "/events", json={"event_type": "e", "payload": "x" * (MAX_PAYLOAD_BYTES - 2)}
    )
    assert just_fits.status_code == 202


async def test_a_body_far_over_the_limit_is_413_before_parsing(sqlite_api: Api) -> None:
    content = b'{"event_type": "e", "payload": "' + b"x" * (1024 * 1024) + b'"}'
    response = await sqlite_api.client.post(
        "/events", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


async def test_backpressure_is_503_with_retry_after(
    sqlite_url: str, sqlite_engine: Any, runtime_factory: Any
) -> None:
    async with (
        runtime_factory(sqlite_url)(RETRY_QUEUE_MAX_SIZE=2) as runtime,
        client_for(runtime) as api,
    ):
        await api.create_webhook()
        for n in range(2):
            ok = await api.client.post("/events", json={"event_type": "e", "payload": n})
            assert ok.status_code == 202

        refused = await api.client.post("/events", json={"event_type": "e", "payload": 3})

        assert_error(refused, 503)
        assert int(refused.headers["retry-after"]) >= 1
        assert len((await api.client.get("/deliveries")).json()["data"]) == 2


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"payload": 1}, ("event_type",)),
        ({"event_type": "", "payload": 1}, ("event_type",)),
        ({"event_type": "x" * 256, "payload": 1}, ("event_type",)),
        ({"event_type": "e"}, ("payload",)),
        ({"event_type": "e", "payload": 1, "idempotency_key": ""}, ("idempotency_key",)),
        ({"event_type": "e", "payload": 1, "extra": True}, ("extra",)),
        ({"event_type": "e", "payload": 2**70}, ("payload",)),
    ],
)
async def test_publish_422(sqlite_api: Api, body: dict[str, Any], loc: tuple[str, ...]) -> None:
    assert_422(await sqlite_api.client.post("/events", json=body), "body", *loc)


async def test_publish_refuses_json_that_cannot_be_sent(sqlite_api: Api) -> None:
    for raw in (
        b'{"event_type": "e", "payload": NaN}',
        b'{"event_type": "e", "payload": "\\ud800"}',
    ):
        response = await sqlite_api.client.post(
            "/events", content=raw, headers={"content-type": "application/json"}
        )
        assert_422(response, "body", "payload")


# --- GET /events/{id} -------------------------------------------------------------------------


async def test_get_event_with_its_deliveries(api: Api) -> None:
    webhook = await api.create_webhook()
    published = (
        await api.client.post(
            "/events", json={"event_type": "order.paid", "payload": {"b": 2, "a": [1.5, None]}}
        )
    ).json()

    response = await api.client.get(f"/events/{published['id']}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "id",
        "event_type",
        "payload",
        "idempotency_key",
        "created_at",
        "deliveries",
    }
    assert body["id"] == published["id"]
    assert body["payload"] == {"b": 2, "a": [1.5, None]}
    assert body["idempotency_key"] is None
    assert body["created_at"] == published["created_at"]
    (delivery,) = body["deliveries"]
    assert set(delivery) == DELIVERY_FIELDS
    assert delivery["webhook_id"] == webhook["id"]
    assert_error(await api.client.get(f"/events/{UNKNOWN['evt']}"), 404)
    assert_error(await api.client.get("/events/evt_bogus"), 404)


# --- GET /deliveries --------------------------------------------------------------------------


async def test_list_deliveries_with_filters_newest_first(api: Api) -> None:
    a = await api.create_webhook()
    b = await api.create_webhook()
    a1 = await api.seed_delivery(webhook_id=a["id"])
    b1 = await api.seed_delivery(webhook_id=b["id"], state="failed", next_attempt_at=None)
    a2 = await api.seed_delivery(webhook_id=a["id"], state="succeeded", next_attempt_at=None)

    everything = (await api.client.get("/deliveries")).json()
    of_a = (await api.client.get("/deliveries", params={"webhook_id": a["id"]})).json()
    failed = (await api.client.get("/deliveries", params={"state": "failed"})).json()
    of_event = (await api.client.get("/deliveries", params={"event_id": a1.event_id})).json()
    none = (
        await api.client.get("/deliveries", params={"webhook_id": a["id"], "state": "failed"})
    ).json()

    assert [d["id"] for d in everything["data"]] == [a2.id, b1.id, a1.id]
    assert everything["next_cursor"] is None
    assert all(set(d) == DELIVERY_FIELDS for d in everything["data"])
    assert [d["id"] for d in of_a["data"]] == [a2.id, a1.id]
    assert [d["id"] for d in failed["data"]] == [b1.id]
    assert [d["id"] for d in of_event["data"]] == [a1.id]
    assert none == {"data": [], "next_cursor": None}


async def test_delivery_list_pages_newest_first(api: Api) -> None:
    webhook = await api.create_webhook()
    seeded = [(await api.seed_delivery(webhook_id=webhook["id"])).id for _ in range(5)]

    first = (await api.client.get("/deliveries", params={"limit": 3})).json()
    rest = (
        await api.client.get("/deliveries", params={"limit": 3, "cursor": first["next_cursor"]})
    ).json()

    assert [d["id"] for d in first["data"]] == seeded[:1:-1]
    assert [d["id"] for d in rest["data"]] == seeded[1::-1]
    assert rest["next_cursor"] is None
    webhook_cursor = (
        await api.client.get("/webhooks", params={"limit": 1})
    ).json()  # one webhook only: no cursor, so make one from a list that has more
    assert webhook_cursor["next_cursor"] is None
    assert_422(
        await api.client.get("/deliveries", params={"cursor": "bm90LWEtY3Vyc29y"}),
        "query",
        "cursor",
    )


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"state": "lost"}, "state"),
        ({"webhook_id": "wh_nope"}, "webhook_id"),
        ({"event_id": "\x00"}, "event_id"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
    ],
)
async def test_delivery_list_422(sqlite_api: Api, params: dict[str, Any], loc: str) -> None:
    assert_422(await sqlite_api.client.get("/deliveries", params=params), "query", loc)


# --- GET /deliveries/{id} ---------------------------------------------------------------------


async def test_get_delivery_with_attempts_in_order(api: Api) -> None:
    webhook = await api.create_webhook()
    delivery = await api.seed_delivery(
        webhook_id=webhook["id"],
        state="retrying",
        attempt_number=2,
        last_status_code=503,
        last_error="http_503",
    )
    second = await api.seed_attempt(delivery_id=delivery.id, attempt_number=2, next_delay=240.0)
    first = await api.seed_attempt(
        delivery_id=delivery.id,
        attempt_number=1,
        status_code=None,
        error="timeout",
        response_body=None,
        next_delay=150.5,
    )

    response = await api.client.get(f"/deliveries/{delivery.id}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == DELIVERY_FIELDS | {"attempts"}
    assert body["state"] == "retrying"
    assert body["attempt_number"] == 2
    assert body["last_status_code"] == 503
    assert [a["id"] for a in body["attempts"]] == [first.id, second.id]
    assert all(set(a) == ATTEMPT_FIELDS for a in body["attempts"])
    assert body["attempts"][0] == {
        "id": first.id,
        "attempt_number": 1,
        "started_at": iso(first.started_at),
        "duration_ms": 42,
        "status_code": None,
        "error": "timeout",
        "retryable": True,
        "response_body": None,
        "next_delay": 150.5,
    }
    assert body["attempts"][1]["status_code"] == 503
    assert body["attempts"][1]["response_body"] == "unavailable"
    assert_error(await api.client.get(f"/deliveries/{UNKNOWN['dlv']}"), 404)


# --- POST /deliveries/{id}/retry --------------------------------------------------------------


@pytest.mark.parametrize("state", ["failed", "cancelled"])
async def test_manual_retry_of_failed_or_cancelled_is_202_pending_due_now(
    api: Api, state: str
) -> None:
    webhook = await api.create_webhook()
    delivery = await api.seed_delivery(
        webhook_id=webhook["id"],
        state=state,
        next_attempt_at=None,
        completed_at=api.clock.now(),
        attempt_number=11,
    )
    api.clock.advance(30)

    response = await api.client.post(f"/deliveries/{delivery.id}/retry")

    assert response.status_code == 202
    body = response.json()
    assert set(body) == DELIVERY_FIELDS
    assert body["state"] == "pending"
    assert body["next_attempt_at"] == iso(api.clock.now())
    assert body["completed_at"] is None
    assert (await api.delivery(delivery.id))["state"] == "pending"


@pytest.mark.parametrize("state", ["pending", "delivering", "retrying", "succeeded"])
async def test_manual_retry_of_any_other_state_is_409(api: Api, state: str) -> None:
    webhook = await api.create_webhook()
    delivery = await api.seed_delivery(webhook_id=webhook["id"], state=state)

    assert_error(await api.client.post(f"/deliveries/{delivery.id}/retry"), 409)
    assert (await api.delivery(delivery.id))["state"] == state


async def test_manual_retry_of_unknown_is_404(sqlite_api: Api) -> None:
    assert_error(await sqlite_api.client.post(f"/deliveries/{UNKNOWN['dlv']}/retry"), 404)


# --- dead letters -----------------------------------------------------------------------------


async def test_dead_letters_list_only_failed(api: Api) -> None:
    a = await api.create_webhook()
    b = await api.create_webhook()
    a_failed = await api.seed_delivery(webhook_id=a["id"], state="failed", next_attempt_at=None)
    await api.seed_delivery(webhook_id=a["id"], state="cancelled", next_attempt_at=None)
    b_failed = await api.seed_delivery(webhook_id=b["id"], state="failed", next_attempt_at=None)

    everything = (await api.client.get("/dead-letters")).json()
    of_a = (await api.client.get("/dead-letters", params={"webhook_id": a["id"]})).json()
    paged = (await api.client.get("/dead-letters", params={"limit": 1})).json()

    assert [d["id"] for d in everything["data"]] == [b_failed.id, a_failed.id]
    assert all(d["state"] == "failed" for d in everything["data"])
    assert [d["id"] for d in of_a["data"]] == [a_failed.id]
    assert [d["id"] for d in paged["data"]] == [b_failed.id]
    rest = (
        await api.client.get("/dead-letters", params={"limit": 1, "cursor": paged["next_cursor"]})
    ).json()
    assert [d["id"] for d in rest["data"]] == [a_failed.id]
    assert rest["next_cursor"] is None
    assert_422(await api.client.get("/dead-letters", params={"limit": 0}), "query", "limit")


async def test_replay_requeues_dead_letters(api: Api) -> None:
    a = await api.create_webhook()
    b = await api.create_webhook()
    early = api.clock.now()
    a_old = await api.seed_delivery(
        webhook_id=a["id"], state="failed", next_attempt_at=None, completed_at=early
    )
    api.clock.advance(3600)
    since = api.clock.now()
    a_new = await api.seed_delivery(
        webhook_id=a["id"], state="failed", next_attempt_at=None, completed_at=since
    )
    b_new = await api.seed_delivery(
        webhook_id=b["id"], state="failed", next_attempt_at=None, completed_at=since
    )

    only_a_since = await api.client.post(
        "/dead-letters/replay", json={"webhook_id": a["id"], "since": iso(since)}
    )

    assert only_a_since.status_code == 202
    assert only_a_since.json() == {"replayed": 1, "skipped": {}}
    assert (await api.delivery(a_new.id))["state"] == "pending"
    assert (await api.delivery(a_old.id))["state"] == "failed"
    assert (await api.delivery(b_new.id))["state"] == "failed"

    rest = await api.client.post("/dead-letters/replay")
    assert rest.status_code == 202
    assert rest.json() == {"replayed": 2, "skipped": {}}
    assert (await api.client.get("/dead-letters")).json()["data"] == []
    again = await api.client.post("/dead-letters/replay", json={})
    assert again.json() == {"replayed": 0, "skipped": {}}


async def test_replay_errors(sqlite_api: Api) -> None:
    replay = "/dead-letters/replay"
    assert_error(await sqlite_api.client.post(replay, json={"webhook_id": UNKNOWN["wh"]}), 404)
    assert_422(
        await sqlite_api.client.post(replay, json={"webhook_id": "nope"}), "body", "webhook_id"
    )
    assert_422(
        await sqlite_api.client.post(replay, json={"since": "2026-01-01T00:00:00"}),
        "body",
        "since",
    )
    assert_422(await sqlite_api.client.post(replay, json={"until": "x"}), "body", "until")


# --- operations -------------------------------------------------------------------------------


async def test_healthz_readyz_and_metrics(api: Api) -> None:
    health = await api.client.get("/healthz")
    ready = await api.client.get("/readyz")
    metrics = await api.client.get("/metrics")

    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ok",
        "database": "ok",
        "queue": "ok",
        "loops": {},  # an API-only runtime has no worker or sweeper loop
        "detail": None,
    }
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "# TYPE webhook_delivery_total counter" in metrics.text


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_readyz_is_503_when_the_queue_is_unreachable(sqlite_api: Api) -> None:
    queue = RedisQueue.from_url(f"redis://127.0.0.1:{_closed_port()}/0")
    broken = dataclasses.replace(sqlite_api.runtime, queue=queue)
    try:
        async with client_for(broken) as api:
            response = await api.client.get("/readyz")
    finally:
        await queue.close()

    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["database"], body["queue"]) == ("unavailable", "ok", "unavailable")
    assert body["detail"].startswith("queue:")


async def test_a_database_outage_is_503_not_500(sqlite_api: Api) -> None:
    engine = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/none")
    runtime = sqlite_api.runtime
    endpoints = EndpointService(
        sessions=create_session_factory(engine),
        queue=runtime.queue,
        clock=runtime.clock,
        settings=runtime.settings,
    )
    broken = dataclasses.replace(runtime, engine=engine, endpoints=endpoints)
    try:
        async with client_for(broken) as api:
            ready = await api.client.get("/readyz")
            listing = await api.client.get("/webhooks")
    finally:
        await engine.dispose()

    assert ready.status_code == 503
    assert (ready.json()["database"], ready.json()["queue"]) == ("unavailable", "ok")
    assert_error(listing, 503)
    assert listing.headers["retry-after"] == "5"
