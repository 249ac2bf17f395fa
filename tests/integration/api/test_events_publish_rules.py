"""POST /events beyond the basics: idempotency conflicts (and their race), event-type patterns.

On SQLite and PostgreSQL (``api``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from hookline.storage.models import Delivery, Event
from hookline.storage.repositories import events as events_repo
from tests.integration.api.helpers import Api, assert_422, assert_error

RACE_TIMEOUT_S = 10
"""Bound on the barrier of the race tests: a bug there fails the test instead of hanging it."""


async def _rows(api: Api) -> tuple[int, int]:
    """(events, deliveries) in the database."""
    async with api.runtime.sessions() as session:
        events = (await session.execute(select(func.count()).select_from(Event))).scalar_one()
        deliveries = (
            await session.execute(select(func.count()).select_from(Delivery))
        ).scalar_one()
    return events, deliveries


# --- idempotency --------------------------------------------------------------------------------


async def test_the_same_key_and_content_is_200_whatever_the_key_order_and_spacing(
    api: Api,
) -> None:
    # Given an event published with a key
    await api.create_webhook()
    first = await api.client.post(
        "/events",
        json={
            "event_type": "order.created",
            "payload": {"a": 1, "b": [1.5, {"x": True, "y": None}]},
            "idempotency_key": "k-1",
        },
    )
    assert first.status_code == 202

    # When the same content comes again, keys reordered and spaced differently
    raw = (
        b'{ "idempotency_key": "k-1", "payload": { "b": [ 1.50, {"y": null, "x": true} ],'
        b' "a": 1 },\n "event_type": "order.created" }'
    )
    repeat = await api.client.post(
        "/events", content=raw, headers={"content-type": "application/json"}
    )

    # Then it is the first event, and nothing was created
    assert repeat.status_code == 200, repeat.text
    assert repeat.json() == first.json()
    assert await _rows(api) == (1, 1)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"event_type": "order.paid"}, "event_type"),
        ({"payload": {"n": 2}}, "payload"),
        ({"payload": {"n": 1, "extra": None}}, "payload"),
        ({"payload": {"n": 1.0}}, "payload"),  # 1 and 1.0 are sent as different bytes
        ({"payload": {"n": True}}, "payload"),  # true is not 1 (Python's True == 1 is not JSON)
        ({"event_type": "order.paid", "payload": [1]}, "event_type and payload"),
    ],
)
async def test_the_same_key_with_other_content_is_409_naming_what_differs(
    api: Api, change: dict[str, Any], named: str
) -> None:
    # Given an event published with a key
    await api.create_webhook()
    body = {"event_type": "order.created", "payload": {"n": 1}, "idempotency_key": "k-1"}
    first = await api.client.post("/events", json=body)
    assert first.status_code == 202

    # When the key comes again with other content
    response = await api.client.post("/events", json={**body, **change})

    # Then it is refused, naming what differs, and nothing is written
    detail = assert_error(response, 409)
    assert f"with a different {named};" in detail
    assert "k-1" in detail
    assert first.json()["id"] in detail
    assert await _rows(api) == (1, 1)
    event = (await api.client.get(f"/events/{first.json()['id']}")).json()
    assert (event["event_type"], event["payload"]) == ("order.created", {"n": 1})


async def _race(
    api: Api, monkeypatch: pytest.MonkeyPatch, bodies: list[dict[str, Any]]
) -> list[Any]:
    """Publish ``bodies`` at once, every one of them past the idempotency look-up (finding
    nothing) before any inserts: all but one lose on the unique constraint."""
    lookup = events_repo.find_by_idempotency_key
    barrier = asyncio.Barrier(len(bodies))
    first_lookups = 0

    async def look_up_then_wait(session: Any, *, idempotency_key: str) -> Any:
        nonlocal first_lookups
        found = await lookup(session, idempotency_key=idempotency_key)
        first_lookups += 1
        if first_lookups <= len(bodies):  # the look-ups before the insert, not the ones after
            await asyncio.wait_for(barrier.wait(), RACE_TIMEOUT_S)
        return found

    monkeypatch.setattr(events_repo, "find_by_idempotency_key", look_up_then_wait)
    return await asyncio.gather(*(api.client.post("/events", json=body) for body in bodies))


async def test_concurrent_first_requests_with_the_same_content_end_200_for_the_losers(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    await api.create_webhook()
    body = {"event_type": "order.created", "payload": {"n": 1}, "idempotency_key": "k-race"}

    responses = await _race(api, monkeypatch, [body, body, body])

    assert sorted(r.status_code for r in responses) == [200, 200, 202], [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert await _rows(api) == (1, 1)


async def test_concurrent_first_requests_with_other_content_end_409_for_the_loser(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    await api.create_webhook()
    body = {"event_type": "order.created", "payload": {"n": 1}, "idempotency_key": "k-race"}
    bodies = [body, {**body, "payload": {"n": 2}}]

    responses = await _race(api, monkeypatch, bodies)

    assert sorted(r.status_code for r in responses) == [202, 409], [r.text for r in responses]
    won = next(i for i, r in enumerate(responses) if r.status_code == 202)
    winner = responses[won].json()
    assert winner["id"] in assert_error(responses[1 - won], 409)
    event = (await api.client.get(f"/events/{winner['id']}")).json()
    assert event["payload"] == bodies[won]["payload"]
    assert await _rows(api) == (1, 1)


async def test_a_repeat_is_compared_with_the_stored_compact_json(api: Api) -> None:
    # The stored payload is the exact compact JSON that is signed: the comparison reads it back
    await api.create_webhook()
    body = {"event_type": "e", "payload": {"s": "é\u2028"}, "idempotency_key": "k-utf8"}
    first = await api.client.post("/events", json=body)
    assert first.status_code == 202
    async with api.runtime.sessions() as session:
        stored = (await session.execute(select(Event.payload))).scalar_one()
    assert stored == orjson.dumps(body["payload"]).decode()

    assert (await api.client.post("/events", json=body)).status_code == 200


# --- event-type patterns ------------------------------------------------------------------------


async def test_publish_reaches_exactly_the_webhooks_whose_patterns_match(api: Api) -> None:
    # Given webhooks subscribed with patterns, exact types and nothing (= all)
    star = await api.create_webhook(event_types=["order.*"])
    exact = await api.create_webhook(event_types=["order.created"])
    await api.create_webhook(event_types=["invoice.*"])
    everything = await api.create_webhook(event_types=[])
    versioned = await api.create_webhook(event_types=["order.created.*"])
    leading = await api.create_webhook(event_types=["invoice.paid", "*.created"])
    await api.create_webhook(event_types=["*"])

    # When order.created is published
    response = await api.client.post("/events", json={"event_type": "order.created", "payload": {}})

    # Then exactly the matching ones get a delivery
    assert response.status_code == 202
    assert sorted(d["webhook_id"] for d in response.json()["deliveries"]) == sorted(
        [star["id"], exact["id"], everything["id"], leading["id"]]
    )
    # and a type with one more segment reaches the catch-all and the three-segment pattern
    deeper = await api.client.post(
        "/events", json={"event_type": "order.created.v2", "payload": {}}
    )
    assert sorted(d["webhook_id"] for d in deeper.json()["deliveries"]) == sorted(
        [everything["id"], versioned["id"]]
    )


@pytest.mark.parametrize("pattern", ["ord*", "order.cre*", "**", "order.**", "*order"])
async def test_a_partial_wildcard_is_422_on_event_types(sqlite_api: Api, pattern: str) -> None:
    created = await sqlite_api.client.post(
        "/webhooks", json={"url": "https://example.com/hook", "event_types": ["a.b", pattern]}
    )
    assert_422(created, "body", "event_types", 1)
    assert "one dot-separated segment" in created.json()["detail"][0]["msg"]
    assert (await sqlite_api.client.get("/webhooks")).json()["data"] == []

    webhook = await sqlite_api.create_webhook(event_types=["order.*"])
    patched = await sqlite_api.client.patch(
        f"/webhooks/{webhook['id']}", json={"event_types": [pattern]}
    )
    assert_422(patched, "body", "event_types", 0)
    assert (await sqlite_api.client.get(f"/webhooks/{webhook['id']}")).json()["event_types"] == [
        "order.*"
    ]


async def test_patterns_are_kept_as_written(sqlite_api: Api) -> None:
    webhook = await sqlite_api.create_webhook(event_types=["order.*", "*.created", "*"])
    assert webhook["event_types"] == ["order.*", "*.created", "*"]


@pytest.mark.parametrize("event_type", ["order.*", "*", "ord*"])
async def test_a_published_event_type_with_a_star_is_422(sqlite_api: Api, event_type: str) -> None:
    await sqlite_api.create_webhook()
    response = await sqlite_api.client.post(
        "/events", json={"event_type": event_type, "payload": {}}
    )
    assert_422(response, "body", "event_type")
    assert await _rows(sqlite_api) == (0, 0)
