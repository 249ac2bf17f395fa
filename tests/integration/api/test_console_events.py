"""The console's events pages: ``/ui/events`` (list, search by type, pattern, time and id, cursor
paging) and ``/ui/events/{id}`` (payload, deliveries, live refresh), read as a browser would
(httpx + BeautifulSoup, no JavaScript), on SQLite and PostgreSQL through the ``console`` fixture;
the 503 pages against a PostgreSQL address where nothing listens.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from bs4 import BeautifulSoup, Tag
from sqlalchemy import update
from structlog.testing import capture_logs

from hookline import ids
from hookline.api.console import events as events_page
from hookline.clock import ManualClock
from hookline.runtime import open_runtime
from hookline.storage.models import Delivery, Event
from tests.integration.api.conftest import make_settings
from tests.integration.api.console_helpers import (
    XSS,
    Console,
    assert_page_is_safe,
    assert_security_headers,
    console_for,
    soup,
)
from tests.integration.api.helpers import Api, FakeDns

UNKNOWN_EVENT = "evt_00000000000000000000000000"


# helpers -----------------------------------------------------------------------------------


async def publish(api: Api, event_type: str, payload: Any = None, **body: Any) -> str:
    """Publish through the API (the clock then moves one second on); the event's id."""
    response = await api.client.post(
        "/events", json={"event_type": event_type, "payload": payload or {"n": 1}, **body}
    )
    assert response.status_code == 202, response.text
    api.clock.advance(1)
    return str(response.json()["id"])


async def stored_event(api: Api, event_id: str) -> Event:
    async with api.runtime.sessions() as session:
        event = await session.get(Event, event_id)
    assert event is not None
    return event


def rows(page: BeautifulSoup) -> list[dict[str, str]]:
    """The list's rows: id, type, created (its ``datetime``), age and delivery count."""
    found = []
    for row in page.select("table.events-table tbody tr"):
        link = row.select_one("a.event-id")
        created = row.find("time")
        assert isinstance(link, Tag)
        assert isinstance(created, Tag)
        found.append(
            {
                "id": link.get_text(strip=True),
                "href": str(link["href"]),
                "type": row.select_one(".event-type").get_text(),  # type: ignore[union-attr]
                "created": str(created["datetime"]),
                "shown": created.get_text(strip=True),
                "age": row.select_one(".ago").get_text(strip=True),  # type: ignore[union-attr]
                "deliveries": row.select_one("[data-stat=deliveries]").get_text(strip=True),  # type: ignore[union-attr]
            }
        )
    return found


def ids_of(response: httpx.Response) -> list[str]:
    return [row["id"] for row in rows(soup(response))]


def field_error(page: BeautifulSoup, name: str) -> str | None:
    """The error tied to the field named ``name`` (through aria-describedby), or None; checks
    that the error sits in the field's own block."""
    field = page.find("input", attrs={"name": name})
    assert isinstance(field, Tag), name
    if field.get("aria-invalid") != "true":
        return None
    described = str(field.get("aria-describedby", "")).split()
    errors = [page.find(id=ref) for ref in described]
    texts = [e for e in errors if isinstance(e, Tag) and "field-error" in (e.get("class") or [])]
    assert len(texts) == 1, (name, described)
    assert texts[0].find_parent(class_="field") is field.find_parent(class_="field")
    return " ".join(texts[0].get_text().split())


def next_link(page: BeautifulSoup) -> str | None:
    link = page.find("a", rel="next")
    return str(link["href"]) if isinstance(link, Tag) else None


# signing in ----------------------------------------------------------------------------------


async def test_the_events_pages_need_a_session(console: Console) -> None:
    # Given no session, each events page sends the visitor to sign in, remembering the page
    for path in [
        "/ui/events",
        "/ui/events?event_type=order.created",
        f"/ui/events?id={UNKNOWN_EVENT}",
        f"/ui/events/{UNKNOWN_EVENT}",
    ]:
        response = await console.client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/ui/login?next=%2Fui%2Fevents"), path
        assert_security_headers(response)
    # and htmx polling of an event's deliveries is told where to go
    fragment = await console.client.get(
        f"/ui/events/{UNKNOWN_EVENT}/deliveries", headers={"HX-Request": "true"}
    )
    assert fragment.status_code == 401
    assert fragment.headers["HX-Redirect"].startswith("/ui/login")


# the list ------------------------------------------------------------------------------------


async def test_with_no_events_the_list_says_how_to_publish_one(console: Console) -> None:
    await console.signed_in()

    response = await console.client.get("/ui/events")

    assert response.status_code == 200
    assert_page_is_safe(response)
    page = soup(response)
    current = page.select_one("nav a[aria-current=page]")
    assert isinstance(current, Tag)
    assert current.get_text() == "Events"
    assert page.find("table") is None
    text = " ".join(page.get_text().split())
    assert "No events yet" in text
    assert "curl -X POST http://hookline.test/events" in text
    # every field of both forms is labelled (assert_page_is_safe) with the words a person reads
    labels = [label.get_text(strip=True) for label in page.find_all("label")]
    assert labels == ["Event type", "Since", "Until", "Event id"]
    buttons = [button.get_text(strip=True) for button in page.find_all("button")]
    assert {"Search", "Open event"} <= set(buttons)


async def test_the_list_shows_each_event_newest_first_with_its_delivery_count(
    api: Api, console: Console
) -> None:
    # Given two webhooks, one for order.* and one for everything, and three events
    await api.create_webhook(event_types=["order.*"])
    await api.create_webhook()
    first = await publish(api, "order.created")  # 2 deliveries
    second = await publish(api, "invoice.paid")  # 1
    api.clock.advance(119)
    third = await publish(api, "order.created.v2")  # 1 (order.* is one segment)
    api.clock.advance(59)
    await console.signed_in()

    # When the list is read
    response = await console.client.get("/ui/events")

    # Then each event is a row, newest first, with its id linking to its page, its type, its
    # creation time in UTC (with how long ago) and how many deliveries it has
    assert response.status_code == 200
    assert_page_is_safe(response)
    found = rows(soup(response))
    assert [row["id"] for row in found] == [third, second, first]
    assert found[2] == {
        "id": first,
        "href": f"/ui/events/{first}",
        "type": "order.created",
        "created": "2026-01-01T00:00:00.002000Z",  # after two webhooks made 1 ms apart
        "shown": "2026-01-01 00:00:00 UTC",
        "age": "3 min 1 s ago",
        "deliveries": "2",
    }
    assert [row["deliveries"] for row in found] == ["1", "1", "2"]
    assert found[0]["age"] == "1 min ago"
    # one page: no pager
    assert next_link(soup(response)) is None


async def test_filters_by_exact_type_pattern_and_time_range(api: Api, console: Console) -> None:
    # Given events a minute apart from 2026-01-01 00:00
    published = {}
    for event_type in ["order.created", "order.created.v2", "order.paid", "Order.created", "x"]:
        published[event_type] = await publish(api, event_type)
        api.clock.advance(59)
    await console.signed_in()

    async def listed(**params: str) -> list[str]:
        response = await console.client.get("/ui/events", params=params)
        assert response.status_code == 200, response.text
        assert_page_is_safe(response)
        # the form shows what was asked for
        page = soup(response)
        for name, value in params.items():
            field = page.find("input", attrs={"name": name})
            assert isinstance(field, Tag)
            assert field["value"] == value
        return ids_of(response)

    # Then an exact type is matched exactly (case counts), a pattern segment by segment
    assert await listed(event_type="order.created") == [published["order.created"]]
    assert await listed(event_type="order.*") == [
        published["order.paid"],
        published["order.created"],
    ]
    assert await listed(event_type="*.created") == [
        published["Order.created"],
        published["order.created"],
    ]
    # and since (at or after) / until (before) bound the creation time; a time without an
    # offset is UTC, one with an offset is converted
    assert await listed(since="2026-01-01 00:01", until="2026-01-01T00:03:00Z") == [
        published["order.paid"],
        published["order.created.v2"],
    ]
    assert await listed(since="2026-01-01T01:03:00+01:00") == [
        published["x"],
        published["Order.created"],
    ]
    assert await listed(until="2026-01-01") == []
    # every filter at once
    assert await listed(event_type="order.*", since="2026-01-01T00:01") == [published["order.paid"]]
    # a filter matching nothing says so, with the way back to every event
    response = await console.client.get("/ui/events", params={"event_type": "nothing.here"})
    text = " ".join(soup(response).get_text().split())
    assert "No event matches" in text
    assert soup(response).find("a", string="Show every event") is not None


async def test_pages_follow_the_api_cursor_and_keep_the_filters(
    api: Api, console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given pages of two, five order events and others in between
    monkeypatch.setattr(events_page, "PAGE_SIZE", 2)
    orders = []
    for number in range(5):
        orders.append(await publish(api, "order.created", {"n": number}))
        await publish(api, "invoice.paid")
    await console.signed_in()

    # When the order.* list is read page after page through its "Next page" links
    seen: list[list[str]] = []
    url: str | None = "/ui/events?event_type=order.%2A"
    while url is not None:
        response = await console.client.get(url)
        assert response.status_code == 200
        assert_page_is_safe(response)
        page = soup(response)
        seen.append(ids_of(response))
        url = next_link(page)
        if url is not None:
            query = parse_qs(urlsplit(url).query)
            assert query["event_type"] == ["order.*"]  # the filter goes on
            assert len(query["cursor"]) == 1
        if len(seen) > 1:  # a later page leads back to the first
            first = page.find("a", string="First page")
            assert isinstance(first, Tag)
            assert first["href"] == "/ui/events?event_type=order.%2A"
        assert len(seen) <= 3, seen

    # Then each order event shows once, newest first, two a page
    assert seen == [orders[4:2:-1], orders[2:0:-1], orders[:1]]


async def test_invalid_filters_are_shown_next_to_their_field_in_words(
    api: Api, console: Console
) -> None:
    await publish(api, "order.created")
    await console.signed_in()

    async def refused(**params: str) -> BeautifulSoup:
        response = await console.client.get("/ui/events", params=params)
        assert response.status_code == 422, response.text
        assert_page_is_safe(response)  # an HTML page, not the API's JSON
        page = soup(response)
        assert page.find("table") is None  # nothing listed under a filter that was refused
        assert "marked above" in page.get_text()
        return page

    # A pattern with `*` inside a segment: the API's rule, next to the type field
    page = await refused(event_type="ord*.created")
    error = field_error(page, "event_type")
    assert error is not None
    assert error == (
        "Event type: 'ord*.created': segment 'ord*' mixes * with other characters; * stands for "
        "one whole segment, as in order.* or *.created."
    )
    assert field_error(page, "since") is None
    field = page.find("input", attrs={"name": "event_type"})
    assert isinstance(field, Tag)
    assert field["value"] == "ord*.created"
    # A type longer than the API allows
    page = await refused(event_type="a" * 256)
    assert field_error(page, "event_type") == "Event type: must be at most 255 characters long."
    # Times that are not times
    page = await refused(since="yesterday", until="2026-13-01")
    for name, label in (("since", "Since"), ("until", "Until")):
        assert field_error(page, name) == (
            f"{label} must be a date and time such as 2026-01-31 14:30 or 2026-01-31T14:30:00Z "
            "(read as UTC unless it ends with an offset like +02:00), between 1970-01-01 and "
            "9999-12-31."
        )
    # Until before since: said next to until
    page = await refused(since="2026-01-02", until="2026-01-01T23:59:59Z")
    assert field_error(page, "until") == "Until must not be before Since."
    assert field_error(page, "since") is None
    # A cursor this console did not hand out
    response = await console.client.get("/ui/events", params={"cursor": "bm90LWEtY3Vyc29y"})
    assert response.status_code == 422
    assert_page_is_safe(response)
    alert = soup(response).find(attrs={"role": "alert"})
    assert isinstance(alert, Tag)
    assert "not one this console handed out" in alert.get_text()
    assert alert.find("a", string="First page") is not None


async def test_the_id_box_opens_the_event_or_says_there_is_none(api: Api, console: Console) -> None:
    event_id = await publish(api, "order.created")
    await console.signed_in()

    # An existing id (spaces around it are fine) goes straight to the event's page
    found = await console.client.get("/ui/events", params={"id": f"  {event_id} "})
    assert found.status_code == 303
    assert found.headers["location"] == f"/ui/events/{event_id}"

    # An unknown one is said next to the field, with the list still below
    for wanted in [UNKNOWN_EVENT, "not-an-id", XSS]:
        response = await console.client.get("/ui/events", params={"id": wanted})
        assert response.status_code == 404
        assert_page_is_safe(response)
        page = soup(response)
        assert field_error(page, "id") == "No event with that id."
        field = page.find("input", attrs={"name": "id"})
        assert isinstance(field, Tag)
        assert field["value"] == wanted
        assert ids_of(response) == [event_id]
    assert "<script>alert(1)" not in response.text

    # A delivery's id is recognised, with a link to its page
    delivery_id = ids.new_id(ids.DELIVERY)
    response = await console.client.get("/ui/events", params={"id": delivery_id})
    page = soup(response)
    assert field_error(page, "id") == (
        "No event with that id. It is the id of a delivery: open the delivery."
    )
    link = page.find("a", string="open the delivery")
    assert isinstance(link, Tag)
    assert link["href"] == f"/ui/deliveries/{delivery_id}"


async def test_user_data_in_the_list_renders_as_text(api: Api, console: Console) -> None:
    # Given an event whose type is markup (a literal type may hold any text but `*`)
    await publish(api, XSS)
    await console.signed_in()

    for params in ({}, {"event_type": XSS}):
        response = await console.client.get("/ui/events", params=params)
        assert response.status_code == 200
        assert_page_is_safe(response)  # no <script> element but htmx's
        assert XSS not in response.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
        assert [row["type"] for row in rows(soup(response))] == [XSS]


# one event -----------------------------------------------------------------------------------


async def test_an_events_page_shows_its_payload_and_its_deliveries(
    api: Api, console: Console
) -> None:
    # Given an event with markup in its payload, delivered to three webhooks: one succeeded,
    # one retrying after a 500, one dead-lettered with an error holding markup
    payload = {"note": XSS, "items": [1, {"sku": "ü-1"}], "ok": True}
    hooks = [
        (await api.create_webhook(url=f"https://example.com/{name}"))["id"]
        for name in ("ok", "flaky", "bad")
    ]
    event_id = await publish(api, "order.created", payload, idempotency_key="key-<b>1</b>")
    event = await stored_event(api, event_id)
    async with api.runtime.sessions.begin() as session:
        await session.execute(
            update(Delivery).where(Delivery.event_id == event_id).values(state="cancelled")
        )
    done = await api.seed_delivery(
        webhook_id=hooks[0],
        event=event,
        state="succeeded",
        attempt_number=1,
        last_status_code=200,
        completed_at=api.clock.now(),
        next_attempt_at=None,
    )
    retrying = await api.seed_delivery(
        webhook_id=hooks[1],
        event=event,
        state="retrying",
        attempt_number=2,
        last_status_code=500,
        last_error="HTTP 500",  # the status said again: shown once
        next_attempt_at=api.clock.advance(60),
    )
    dead = await api.seed_delivery(
        webhook_id=hooks[2],
        event=event,
        state="failed",
        attempt_number=1,
        last_error=XSS,
        completed_at=api.clock.now(),
        next_attempt_at=None,
    )
    await console.signed_in()

    # When its page is opened
    response = await console.client.get(f"/ui/events/{event_id}")

    # Then it shows the event's facts and its payload as indented JSON, as text
    assert response.status_code == 200
    assert_page_is_safe(response)
    assert XSS not in response.text
    page = soup(response)
    current = page.select_one("nav a[aria-current=page]")
    assert isinstance(current, Tag)
    assert current.get_text() == "Events"
    heading = page.find("h1")
    assert isinstance(heading, Tag)
    assert event_id in heading.get_text()
    facts = " ".join(page.select_one("dl.facts").get_text().split())  # type: ignore[union-attr]
    assert "Type order.created" in facts
    assert "Created (UTC) 2026-01-01 00:00:00 UTC 1 min 1 s ago" in facts
    assert "key-<b>1</b>" in facts
    type_link = page.find("a", href="/ui/events?event_type=order.created")
    assert isinstance(type_link, Tag)
    shown = page.select_one("pre.payload")
    assert isinstance(shown, Tag)
    assert shown.get_text() == json.dumps(payload, indent=2, ensure_ascii=False)
    assert json.loads(shown.get_text()) == payload

    # and each delivery with its webhook, a state badge linking to the delivery, its attempts,
    # its last answer and when it goes on or finished (newest delivery first)
    section = page.find(id="event-deliveries")
    assert isinstance(section, Tag)
    lines = section.select("tbody tr")
    by_id = {str(line["data-delivery"]): line for line in lines}
    assert [str(line["data-delivery"]) for line in lines][:3] == [dead.id, retrying.id, done.id]
    expected = {
        done.id: (hooks[0], "succeeded", "succeeded", "1", "HTTP 200", "finished"),
        retrying.id: (hooks[1], "retrying", "retrying", "2", "HTTP 500", "next"),
        dead.id: (hooks[2], "failed", "failed (dead letter)", "1", XSS, "finished"),
    }
    for delivery_id, (hook, state, label, attempts, answer, when) in expected.items():
        cells = by_id[delivery_id].find_all("td")
        link = cells[0].find("a")
        assert link["href"] == f"/ui/deliveries/{delivery_id}"
        assert cells[1].find("a")["href"] == f"/ui/webhooks/{hook}"
        badge = cells[2].find("a", class_="badge")
        assert (badge["data-state"], badge.get_text(strip=True)) == (state, label)
        assert badge["href"] == f"/ui/deliveries/{delivery_id}"
        assert cells[3].get_text(strip=True) == attempts
        assert cells[4].get_text(strip=True) == answer
        assert cells[5].get_text(strip=True).startswith(when)
    assert "next 2026-01-01 00:01:01 UTC" in by_id[retrying.id].get_text(" ", strip=True)
    # one delivery can still change: the section refreshes itself
    assert section["hx-get"] == f"/ui/events/{event_id}/deliveries"
    assert section["hx-trigger"] == "every 5s"
    assert section["hx-swap"] == "outerHTML"


async def test_the_deliveries_section_polls_until_every_delivery_has_finished(
    api: Api, console: Console
) -> None:
    # Given an event with one pending delivery
    await api.create_webhook()
    event_id = await publish(api, "order.created")
    await console.signed_in()
    htmx = {"HX-Request": "true"}

    # When htmx asks for the section, it is the section alone, still polling
    fragment = await console.client.get(f"/ui/events/{event_id}/deliveries", headers=htmx)
    assert fragment.status_code == 200
    assert_security_headers(fragment)
    assert "<nav" not in fragment.text
    section = BeautifulSoup(fragment.text, "html.parser").find(id="event-deliveries")
    assert isinstance(section, Tag)
    assert section.get("hx-trigger") == "every 5s"
    badge = section.find(class_="badge")
    assert isinstance(badge, Tag)
    assert badge["data-state"] == "pending"

    # and once the delivery succeeded, the section comes without a trigger: polling stops
    async with api.runtime.sessions.begin() as session:
        await session.execute(
            update(Delivery)
            .where(Delivery.event_id == event_id)
            .values(state="succeeded", completed_at=api.clock.now(), next_attempt_at=None)
        )
    fragment = await console.client.get(f"/ui/events/{event_id}/deliveries", headers=htmx)
    section = BeautifulSoup(fragment.text, "html.parser").find(id="event-deliveries")
    assert isinstance(section, Tag)
    assert section.get("hx-trigger") is None
    assert section.get("hx-get") is None
    badge = section.find(class_="badge")
    assert isinstance(badge, Tag)
    assert badge["data-state"] == "succeeded"
    page = await console.client.get(f"/ui/events/{event_id}")
    assert soup(page).find(attrs={"hx-trigger": True, "id": "event-deliveries"}) is None


async def test_an_event_without_deliveries_says_why(api: Api, console: Console) -> None:
    event_id = await publish(api, "nobody.listens")  # no webhook at all
    await console.signed_in()

    response = await console.client.get(f"/ui/events/{event_id}")

    assert response.status_code == 200
    assert_page_is_safe(response)
    page = soup(response)
    empty = page.find(attrs={"data-empty": "deliveries"})
    assert isinstance(empty, Tag)
    assert "no active webhook was subscribed to its type" in " ".join(empty.get_text().split())
    section = page.find(id="event-deliveries")
    assert isinstance(section, Tag)
    assert section.get("hx-trigger") is None


async def test_unknown_and_malformed_event_ids_are_404_pages(console: Console) -> None:
    await console.signed_in()

    for path in [
        f"/ui/events/{UNKNOWN_EVENT}",
        "/ui/events/not-an-id",
        f"/ui/events/{ids.new_id(ids.DELIVERY)}",
        f"/ui/events/{UNKNOWN_EVENT}/deliveries",
    ]:
        response = await console.client.get(path)
        assert response.status_code == 404, path
        assert_page_is_safe(response)
        assert "not found" in response.text, path


async def test_the_events_pages_answer_503_when_the_database_is_gone(tmp_path: Path) -> None:
    # Given a runtime whose PostgreSQL does not answer (nothing listens on port 1)
    settings = make_settings("postgresql://postgres@127.0.0.1:1/nothing", tmp_path / "data")
    async with (
        open_runtime(settings, clock=ManualClock(), resolver=FakeDns()) as runtime,
        console_for(runtime) as console,
    ):
        assert (await console.sign_in()).status_code == 303
        other_event = ids.new_id(ids.EVENT)

        with capture_logs():
            pages = [
                await console.client.get("/ui/events"),
                await console.client.get("/ui/events", params={"id": other_event}),
                await console.client.get(f"/ui/events/{other_event}"),
            ]
            fragment = await console.client.get(
                f"/ui/events/{other_event}/deliveries", headers={"HX-Request": "true"}
            )

    # Then the pages say the database is unavailable in the console's layout: 503, not 500
    for page in pages:
        assert page.status_code == 503, page.request.url
        assert page.headers["Retry-After"] == "5"
        assert_page_is_safe(page)
        assert "Database unavailable" in page.text
        assert soup(page).find("nav") is not None
    # and the polled section keeps polling with the notice inside
    assert fragment.status_code == 503
    assert fragment.headers["Retry-After"] == "5"
    section = BeautifulSoup(fragment.text, "html.parser").find(id="event-deliveries")
    assert isinstance(section, Tag)
    assert "Database unavailable" in section.get_text()
    assert section.get("hx-trigger") == "every 5s"
