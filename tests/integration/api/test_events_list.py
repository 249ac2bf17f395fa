"""``GET /events`` (API.md "Events and deliveries"), on SQLite and PostgreSQL: newest first by
``(created_at, id)``, paged with an opaque cursor, filtered by event type or pattern (matched in
SQL exactly as ``hookline.domain.event_types`` matches) and by ``since``/``until``; bad input is a
422 naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hookline import ids
from hookline.domain.event_types import matches
from hookline.service.pagination import encode_cursor
from hookline.service.queries import encode_event_cursor
from tests import factories
from tests.integration.api.helpers import Api, assert_422, is_id, is_utc, iso

A_TIME = datetime(2026, 1, 1, tzinfo=UTC)
EVENT_SUMMARY_FIELDS = {
    "id",
    "event_type",
    "payload",
    "idempotency_key",
    "created_at",
    "delivery_count",
}
TRICKY_TYPES = [
    "order.created",
    "order.created.v2",
    "order",
    "order.",
    "Order.Created",
    "or_er.x",
    "orXer.x",
    "100%.x",
    "1000.x",
    "a\\b.c",
    "ab.c",
    "a?.c",
    "a[b].c",
    "a..c",
    "a.b.c",
]
TRICKY_FILTERS = [
    "order.*",
    "*.created",
    "*",
    "*.*",
    "*.*.*",
    "order.*.v2",
    "or_er.*",
    "100%.*",
    "a\\b.*",
    "a?.*",
    "a[b].*",
    "a.*.c",
    "Order.*",
    "order.created",
    "or_er.x",
    "100%.x",
    "nothing.*",
]


async def publish(api: Api, event_type: str = "order.created", **body: Any) -> dict[str, Any]:
    body.setdefault("payload", {"n": 1})
    response = await api.client.post("/events", json={"event_type": event_type, **body})
    assert response.status_code == 202, response.text
    published: dict[str, Any] = response.json()
    return published


async def listed(api: Api, **params: Any) -> dict[str, Any]:
    response = await api.client.get("/events", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"data", "next_cursor"}
    return body


async def every_page(api: Api, **params: Any) -> tuple[list[str], int]:
    """The ids of every page, in order, following ``next_cursor``; and how many pages."""
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        body = await listed(api, **params, **({"cursor": cursor} if cursor else {}))
        seen.extend(item["id"] for item in body["data"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return seen, pages
        assert cursor not in seen  # opaque: not an id
        assert pages < 20


async def test_paging_through_120_events_returns_each_once_newest_first(api: Api) -> None:
    # Given 120 events, three at each instant: a page boundary (50) falls inside a group that
    # shares its created_at, where the id alone orders them
    published = []
    for n in range(120):
        published.append((await publish(api, payload={"n": n}))["id"])
        if n % 3 == 2:
            api.clock.advance(1)

    # When they are listed 50 at a time
    first = await listed(api, limit=50)
    seen, pages = await every_page(api, limit=50)

    # Then each comes once, newest first, in three pages of 50, 50 and 20
    assert seen == list(reversed(published))
    assert pages == 3
    assert len(first["data"]) == 50
    assert all(set(item) == EVENT_SUMMARY_FIELDS for item in first["data"])
    assert first["data"][0]["payload"] == {"n": 119}
    assert all(is_id(item["id"], "evt") and is_utc(item["created_at"]) for item in first["data"])
    assert (await listed(api))["data"] == first["data"]  # the default limit is 50


async def test_newest_first_means_created_at_then_id(api: Api) -> None:
    # Given an event written later (a later id) but created earlier (a clock that was behind)
    on_time = await publish(api)
    api.clock.advance(1)
    async with api.runtime.sessions.begin() as session:
        late = await factories.make_event(
            session, now=api.clock.now() - timedelta(minutes=5), id=ids.new_id(ids.EVENT)
        )
    newest = await publish(api)

    # When the events are listed one per page
    seen, _ = await every_page(api, limit=1)

    # Then created_at decides, and paging follows the same order
    assert late.id > on_time["id"]
    assert seen == [newest["id"], on_time["id"], late.id]


async def test_an_item_is_the_event_with_its_delivery_count(api: Api) -> None:
    await api.create_webhook(event_types=["order.*"])
    await api.create_webhook()
    order = await publish(api, payload={"order_id": 7}, idempotency_key="order-7")
    lonely = await publish(api, "user.created", payload=[1, "two", None])
    await api.create_webhook(event_types=["user.deleted"])

    items = (await listed(api))["data"]

    assert items == [
        {
            "id": lonely["id"],
            "event_type": "user.created",
            "payload": [1, "two", None],
            "idempotency_key": None,
            "created_at": lonely["created_at"],
            "delivery_count": 1,
        },
        {
            "id": order["id"],
            "event_type": "order.created",
            "payload": {"order_id": 7},
            "idempotency_key": "order-7",
            "created_at": order["created_at"],
            "delivery_count": 2,
        },
    ]
    one = (await api.client.get(f"/events/{order['id']}")).json()
    assert {k: v for k, v in one.items() if k != "deliveries"} == {
        k: v for k, v in items[1].items() if k != "delivery_count"
    }
    assert len(one["deliveries"]) == items[1]["delivery_count"]


async def test_type_and_pattern_filters_match_in_sql_as_the_domain_does(api: Api) -> None:
    # Given events whose types hold what LIKE and GLOB read as wildcards, and other cases
    by_type = {event_type: (await publish(api, event_type))["id"] for event_type in TRICKY_TYPES}

    for event_type in TRICKY_FILTERS:
        # When the list is filtered by an exact type or a pattern
        seen, _ = await every_page(api, event_type=event_type, limit=2)

        # Then it holds exactly the events the domain says match, newest first
        expected = [by_type[t] for t in reversed(TRICKY_TYPES) if matches(event_type, t)]
        assert seen == expected, event_type
    assert (await listed(api, event_type="or_er.*"))["data"][0]["event_type"] == "or_er.x"


async def test_since_and_until_bound_created_at(api: Api) -> None:
    start = api.clock.now()
    at = {}
    for offset_s in (0, 10, 20):
        at[offset_s] = (await publish(api))["id"]
        api.clock.advance(10)

    def window(**bounds: int) -> dict[str, str]:
        return {name: iso(start + timedelta(seconds=s)) for name, s in bounds.items()}

    assert (await every_page(api, **window(since=10)))[0] == [at[20], at[10]]
    assert (await every_page(api, **window(until=10)))[0] == [at[0]]  # until is exclusive
    assert (await every_page(api, **window(since=10, until=20)))[0] == [at[10]]
    assert (await every_page(api, **window(since=10, until=10)))[0] == []
    assert (await every_page(api, **window(since=0, until=30), limit=1))[0] == [
        at[20],
        at[10],
        at[0],
    ]
    # 10 s after start written in +02:00 is 2 h earlier: all three
    in_plus_two = (start + timedelta(seconds=10)).strftime("%Y-%m-%dT%H:%M:%S+02:00")
    assert (await every_page(api, since=in_plus_two))[0] == [at[20], at[10], at[0]]


async def test_filters_combine_and_the_cursor_keeps_them(api: Api) -> None:
    start = api.clock.now()
    expected = []
    for n in range(9):
        event_type = ("order.created", "order.paid", "user.created")[n % 3]
        published = (await publish(api, event_type, payload={"n": n}))["id"]
        if event_type.startswith("order.") and 2 <= n < 8:
            expected.append(published)
        api.clock.advance(1)

    seen, pages = await every_page(
        api,
        event_type="order.*",
        since=iso(start + timedelta(seconds=2)),
        until=iso(start + timedelta(seconds=8)),
        limit=2,
    )

    assert seen == list(reversed(expected))
    assert len(expected) == 4
    assert pages == 2


async def test_the_cursor_is_stable_under_concurrent_publishes(api: Api) -> None:
    first = [(await publish(api))["id"] for _ in range(4)]
    page1 = await listed(api, limit=2)
    newcomer = (await publish(api))["id"]

    page2 = await listed(api, limit=2, cursor=page1["next_cursor"])

    assert [e["id"] for e in page1["data"]] == [first[3], first[2]]
    assert [e["id"] for e in page2["data"]] == [first[1], first[0]]
    assert page2["next_cursor"] is None
    assert (await listed(api))["data"][0]["id"] == newcomer


async def test_an_empty_list(api: Api) -> None:
    assert await listed(api) == {"data": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"event_type": "ord*"}, "event_type"),
        ({"event_type": "order.**"}, "event_type"),
        ({"event_type": "*order"}, "event_type"),
        ({"event_type": ""}, "event_type"),
        ({"event_type": "x" * 256}, "event_type"),
        ({"event_type": "a\x00b"}, "event_type"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-01-01T00:00:00"}, "since"),  # no offset: whose time?
        ({"since": "1767225600"}, "since"),  # unix time is not a timestamp here
        ({"until": "2026-13-01T00:00:00Z"}, "until"),
        ({"until": "10000-01-01T00:00:00Z"}, "until"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
        # written later, but 00:30Z is before 01:00Z: the instants are compared
        ({"since": "2026-01-01T01:00:00Z", "until": "2026-01-01T01:30:00+01:00"}, "until"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"cursor": "garbage"}, "cursor"),
        ({"cursor": "x" * 200}, "cursor"),
        ({"cursor": encode_cursor("evt_" + "0" * 26)}, "cursor"),  # an id cursor: not this list's
        ({"cursor": encode_event_cursor(A_TIME, "dlv_" + "0" * 26)}, "cursor"),
    ],
)
async def test_bad_input_is_422_naming_the_field(
    sqlite_api: Api, params: dict[str, Any], loc: str
) -> None:
    assert_422(await sqlite_api.client.get("/events", params=params), "query", loc)


async def test_until_before_since_says_so(sqlite_api: Api) -> None:
    response = await sqlite_api.client.get(
        "/events", params={"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}
    )

    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "value_error",
                "loc": ["query", "until"],
                "msg": "Must not be before since",
                "input": "2026-01-01T00:00:00Z",
            }
        ]
    }
