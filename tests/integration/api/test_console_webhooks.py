"""The console's webhook pages: the list, create and edit with the live retry preview, the detail
page and its actions (disable, enable with replay, rotate the secret, delete), read and posted as
a browser would (httpx + BeautifulSoup, no JavaScript), on SQLite and PostgreSQL (``console``).

What a page shows is checked against what the API answers for the same webhook, and what an
action did against the database; rows are seeded with the factories (``api.seed_*``), since the
point here is the page, not the engine.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from bs4 import BeautifulSoup, Tag
from sqlalchemy import event, select
from structlog.testing import capture_logs

from hookline.api.console import webhooks as webhooks_page
from hookline.clock import ManualClock
from hookline.domain.retry_config import RetryConfig
from hookline.domain.schedule import plan_schedule
from hookline.runtime import open_runtime
from hookline.storage.models import Delivery, Endpoint
from tests import factories
from tests.integration.api.conftest import ROTATION_GRACE_S, make_settings
from tests.integration.api.console_helpers import (
    XSS,
    Console,
    assert_no_inline_code,
    assert_page_is_safe,
    assert_security_headers,
    console_for,
    soup,
    stat,
)
from tests.integration.api.helpers import UNKNOWN, Api, FakeDns

ESCAPED_XSS = "&lt;script&gt;alert(1)&lt;/script&gt;"
HTMX = {"HX-Request": "true"}
RETRY_FIELDS = (
    "max_retries",
    "base_delay",
    "max_delay",
    "multiplier",
    "jitter",
    "jitter_ratio",
    "max_retry_duration",
    "respect_retry_after",
    "disable_on_status",
)
EMPTY_RETRY = dict.fromkeys(RETRY_FIELDS, "")
FULL_FORM = {
    "url": "https://example.com/orders",
    "description": "Orders for billing",
    "event_types": "order.created, order.paid\ninvoice.*",
    "headers": "X-Team: billing\nAuthorization: Bearer s3cret-value",
    "max_retries": "4",
    "base_delay": "30",
    "max_delay": "600",
    "multiplier": "3",
    "jitter": "equal",
    "jitter_ratio": "0.25",
    "max_retry_duration": "3600",
    "respect_retry_after": "no",
    "disable_on_status": "404, 410 451",
    "trace_propagation": "off",
}


# helpers -------------------------------------------------------------------------------------


async def seed_webhook(api: Api, **columns: Any) -> Endpoint:
    async with api.runtime.sessions.begin() as session:
        endpoint = await factories.make_endpoint(session, now=api.clock.now(), **columns)
    api.clock.advance(0.001)
    return endpoint


async def seed_attempts(api: Api, webhook_id: str, statuses: list[int | None]) -> None:
    """One delivery per status, each with one attempt started now."""
    for status in statuses:
        delivery = await api.seed_delivery(webhook_id=webhook_id, state="retrying")
        await api.seed_attempt(delivery_id=delivery.id, status_code=status)


async def stored(api: Api, webhook_id: str) -> Endpoint | None:
    async with api.runtime.sessions() as session:
        return await session.get(Endpoint, webhook_id)


async def deliveries_of(api: Api, webhook_id: str) -> list[Delivery]:
    async with api.runtime.sessions() as session:
        rows = await session.execute(select(Delivery).where(Delivery.endpoint_id == webhook_id))
    return list(rows.scalars())


async def webhook_count(api: Api) -> int:
    response = await api.client.get("/webhooks")
    assert response.status_code == 200
    return len(response.json()["data"])


def row_of(page: BeautifulSoup, webhook_id: str) -> Tag:
    row = page.find("tr", attrs={"data-webhook": webhook_id})
    assert isinstance(row, Tag), webhook_id
    return row


def text_of(tag: Tag | None) -> str:
    assert isinstance(tag, Tag)
    return " ".join(tag.get_text().split())


def field_errors(page: BeautifulSoup, name: str) -> str:
    """The errors shown next to form field ``name`` (tied to it by aria-describedby)."""
    field = page.find(id=f"field-{name}")
    assert isinstance(field, Tag), name
    assert field.get("aria-invalid") == "true", name
    described = str(field["aria-describedby"]).split()
    assert f"{name}-error" in described, name
    errors = page.find(id=f"{name}-error")
    assert isinstance(errors, Tag)
    assert errors.find_parent(class_="field") is field.find_parent(class_="field"), name
    return text_of(errors)


def form_values(page: BeautifulSoup) -> dict[str, str]:
    """What the page's webhook form would post (as a browser fills it)."""
    form = page.find("form", class_="wh-form")
    assert isinstance(form, Tag)
    values: dict[str, str] = {}
    for field in form.find_all(["input", "textarea", "select"]):
        name = field.get("name")
        if not name:
            continue
        if field.name == "textarea":
            values[name] = field.get_text()
        elif field.name == "select":
            chosen = field.find("option", selected=True) or field.find("option")
            values[name] = str(chosen.get("value", "")) if isinstance(chosen, Tag) else ""
        else:
            values[name] = str(field.get("value", ""))
    return values


def done_message(response: Any) -> str:
    notice = soup(response).find(class_="wh-notice-done")
    return text_of(notice) if isinstance(notice, Tag) else ""


def timeline_rows(page: BeautifulSoup | Tag) -> list[tuple[str, str, str]]:
    """(starts, waits, note) of each row of the retry timeline table."""
    return [
        (stat(row, "starts"), stat(row, "waits"), stat(row, "note"))
        for row in page.select("table.wh-timeline-table tbody tr")
    ]


def format_duration(seconds: float) -> str:
    """As the console writes durations: the two largest units, whole numbers."""
    total, parts = int(seconds), []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        amount, total = divmod(total, size)
        if amount or (unit == "s" and not parts):
            parts.append(f"{amount} {unit}")
        if len(parts) == 2:
            break
    return " ".join(parts)


# sign-in and CSRF ----------------------------------------------------------------------------


async def test_every_webhook_page_and_action_needs_a_session(api: Api, console: Console) -> None:
    endpoint = await seed_webhook(api)
    pages = [
        "/ui/webhooks",
        "/ui/webhooks?status=active",
        "/ui/webhooks/new",
        f"/ui/webhooks/{endpoint.id}",
        f"/ui/webhooks/{endpoint.id}/edit",
        f"/ui/webhooks/{endpoint.id}/rotate-secret",
        f"/ui/webhooks/{endpoint.id}/delete",
    ]
    # Given no session, every page leads to the sign-in page, remembering the page
    for path in pages:
        response = await console.client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/ui/login?next="), path
        assert parse_qs(urlsplit(response.headers["location"]).query)["next"] == [path]
    # every action too, and nothing happens
    for action in ("new", *(f"{endpoint.id}/{verb}" for verb in ("edit", "disable", "delete"))):
        response = await console.client.post(f"/ui/webhooks/{action}", data=FULL_FORM)
        assert (response.status_code, response.headers["location"]) == (303, "/ui/login"), action
    assert await webhook_count(api) == 1
    after = await stored(api, endpoint.id)
    assert after is not None
    assert (after.status, after.url, after.deleted_at) == ("active", endpoint.url, None)
    # and the preview asked for by htmx is told where to sign in
    preview = await console.client.get("/ui/webhooks/retry-preview", headers=HTMX)
    assert (preview.status_code, preview.headers["HX-Redirect"]) == (401, "/ui/login")


async def test_every_webhook_action_needs_the_csrf_token(api: Api, console: Console) -> None:
    # Given a signed-in browser and a webhook with a delivery waiting
    endpoint = await seed_webhook(api, description="before")
    await api.seed_delivery(webhook_id=endpoint.id)
    csrf = await console.signed_in()
    secret_before = endpoint.secret
    posts = {
        "/ui/webhooks/new": FULL_FORM,
        f"/ui/webhooks/{endpoint.id}/edit": {**FULL_FORM, "description": "after"},
        f"/ui/webhooks/{endpoint.id}/disable": {},
        f"/ui/webhooks/{endpoint.id}/enable": {"replay_cancelled": "yes"},
        f"/ui/webhooks/{endpoint.id}/rotate-secret": {},
        f"/ui/webhooks/{endpoint.id}/delete": {},
    }
    # When each is posted without the token, or with a wrong one
    for path, data in posts.items():
        for token in (None, "0" * 64):
            form = data if token is None else {**data, "csrf": token}
            response = await console.client.post(path, data=form)
            # Then it is refused with the 403 page
            assert response.status_code == 403, path
            assert_page_is_safe(response)
            assert "Form refused" in response.text
    # and nothing changed
    assert await webhook_count(api) == 1
    after = await stored(api, endpoint.id)
    assert after is not None
    assert (after.description, after.status, after.secret) == ("before", "active", secret_before)
    assert after.deleted_at is None
    assert [d.state for d in await deliveries_of(api, endpoint.id)] == ["pending"]
    # The X-CSRF-Token header (htmx) works as the field does
    by_header = await console.client.post(
        f"/ui/webhooks/{endpoint.id}/disable", headers={"X-CSRF-Token": csrf}
    )
    assert by_header.status_code == 303


# the list ------------------------------------------------------------------------------------


async def test_with_no_webhook_the_list_offers_to_create_one(console: Console) -> None:
    await console.signed_in()

    response = await console.client.get("/ui/webhooks")

    assert response.status_code == 200
    assert_page_is_safe(response)
    page = soup(response)
    empty = page.find("section", class_="empty-state")
    assert isinstance(empty, Tag)
    assert "No webhooks yet" in text_of(empty)
    link = empty.find("a", string="Create a webhook")
    assert isinstance(link, Tag)
    assert link["href"] == "/ui/webhooks/new"
    assert page.find("table") is None
    nav = page.find("a", attrs={"aria-current": "page"})
    assert text_of(nav) == "Webhooks"


async def test_the_list_shows_health_last_success_and_24_hour_failure_rate(
    api: Api, console: Console
) -> None:
    # Given a healthy webhook (3 of 4 attempts answered 2xx; an older failure is outside the
    # window), one failing for 2 hours, one disabled as gone and one never attempted
    now = api.clock.now()
    healthy = await seed_webhook(
        api, description="healthy", last_success_at=now - timedelta(minutes=5)
    )
    await seed_attempts(api, healthy.id, [500])
    api.clock.advance(25 * 3600)
    now = api.clock.now()
    await seed_attempts(api, healthy.id, [200, 204, 200, 503])
    failing = await seed_webhook(api, failing_since=now - timedelta(hours=2))
    await seed_attempts(api, failing.id, [500, None])
    gone = await seed_webhook(
        api, status="disabled", disabled_reason="gone", disabled_at=now - timedelta(hours=1)
    )
    idle = await seed_webhook(api, event_types=["order.created", "invoice.*"])
    await console.signed_in()

    # When the list is opened
    response = await console.client.get("/ui/webhooks")

    # Then each row shows its health, last success and failure rate, newest first
    assert response.status_code == 200
    assert_page_is_safe(response)
    page = soup(response)
    rows = page.select("table.wh-list tbody tr")
    assert [row["data-webhook"] for row in rows] == [idle.id, gone.id, failing.id, healthy.id]
    healthy_row = row_of(page, healthy.id)
    assert stat(healthy_row, "health") == "active"
    assert stat(healthy_row, "last-success") == (
        f"{now - timedelta(hours=25, minutes=5):%Y-%m-%d %H:%M:%S} UTC (1 d 1 h ago)"
    )
    assert stat(healthy_row, "failure-rate") == "25.0% (1 of 4 attempts failed)"
    link = healthy_row.find("a", class_="webhook-url")
    assert isinstance(link, Tag)
    assert (link.get_text(), link["href"]) == (healthy.url, f"/ui/webhooks/{healthy.id}")
    assert "healthy" in text_of(healthy_row)
    failing_row = row_of(page, failing.id)
    since = now - timedelta(hours=2)
    assert stat(failing_row, "health") == (f"failing since {since:%Y-%m-%d %H:%M:%S} UTC (2 h ago)")
    assert stat(failing_row, "failure-rate") == "100.0% (2 of 2 attempts failed)"
    assert stat(failing_row, "last-success") == "never"
    gone_row = row_of(page, gone.id)
    assert stat(gone_row, "health").startswith("disabled: gone (410) since ")
    idle_row = row_of(page, idle.id)
    assert stat(idle_row, "failure-rate") == "\u2013 (0 of 0 attempts failed)"
    assert "order.created, invoice.*" in text_of(idle_row)
    # the figures are the API's own per-webhook stats
    for endpoint in (healthy, failing):
        api_stats = (await api.client.get(f"/webhooks/{endpoint.id}/stats")).json()
        shown = stat(row_of(page, endpoint.id), "failure-rate")
        failed, total = api_stats["attempts"]["failed"], api_stats["attempts"]["total"]
        assert f"({failed} of {total} attempts failed)" in shown

    # When filtered by status, only those are listed (the select keeps the choice)
    disabled = soup(await console.client.get("/ui/webhooks?status=disabled"))
    assert [r["data-webhook"] for r in disabled.select("table.wh-list tbody tr")] == [gone.id]
    chosen = disabled.select_one("#status-filter option[selected]")
    assert isinstance(chosen, Tag)
    assert chosen["value"] == "disabled"
    active = soup(await console.client.get("/ui/webhooks?status=active"))
    assert len(active.select("table.wh-list tbody tr")) == 3


async def test_a_filter_with_no_match_and_a_bad_filter_say_so(api: Api, console: Console) -> None:
    await seed_webhook(api)
    await console.signed_in()

    none_disabled = await console.client.get("/ui/webhooks?status=disabled")
    assert none_disabled.status_code == 200
    assert "No disabled webhook" in text_of(soup(none_disabled).find(class_="empty-state"))

    bogus = await console.client.get(f"/ui/webhooks?status={XSS}")
    assert bogus.status_code == 400
    assert_page_is_safe(bogus)
    assert "no such status" in text_of(soup(bogus).find(class_="notice-error"))
    assert XSS not in bogus.text


async def test_the_list_pages_with_the_api_cursor(
    api: Api, console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given three webhooks and pages of two
    monkeypatch.setattr(webhooks_page, "PAGE_SIZE", 2)
    created = [await seed_webhook(api, status="disabled", disabled_reason="manual")]
    created += [await seed_webhook(api) for _ in range(3)]
    await console.signed_in()

    # When the first page of the active ones is opened, it links to the next with the API's cursor
    first = soup(await console.client.get("/ui/webhooks?status=active"))
    assert [r["data-webhook"] for r in first.select("tbody tr")] == [
        created[3].id,
        created[2].id,
    ]
    api_page = (await api.client.get("/webhooks?status=active&limit=2")).json()
    link = first.find("a", rel="next")
    assert isinstance(link, Tag)
    assert parse_qs(urlsplit(str(link["href"])).query) == {
        "status": ["active"],
        "cursor": [api_page["next_cursor"]],
    }

    # Then the next page holds the rest, and no further link
    second = soup(await console.client.get(str(link["href"])))
    assert [r["data-webhook"] for r in second.select("tbody tr")] == [created[1].id]
    assert second.find("a", rel="next") is None

    # A cursor the console did not make is an error state, not a 500
    bad = await console.client.get("/ui/webhooks?cursor=not-a-cursor")
    assert bad.status_code == 400
    assert_page_is_safe(bad)
    assert "Start again from the first page" in text_of(soup(bad).find(class_="notice-error"))


async def test_the_list_costs_the_same_statements_however_many_webhooks(
    api: Api, console: Console
) -> None:
    # Given a page with one webhook, then a page with eight, all with attempts
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    async def count_statements() -> int:
        statements.clear()
        engine = api.runtime.engine.sync_engine
        event.listen(engine, "before_cursor_execute", record)
        try:
            response = await console.client.get("/ui/webhooks")
        finally:
            event.remove(engine, "before_cursor_execute", record)
        assert response.status_code == 200
        return len(statements)

    await console.signed_in()
    first = await seed_webhook(api)
    await seed_attempts(api, first.id, [500])
    few = await count_statements()
    for _ in range(7):
        endpoint = await seed_webhook(api)
        await seed_attempts(api, endpoint.id, [200, 500])

    # When the list is rendered, it runs the same statements: the page, then two grouped
    # counts, attempts and parked deliveries (no query per row)
    assert await count_statements() == few
    assert few == 3, statements


# create ----------------------------------------------------------------------------------------


async def test_creating_a_webhook_stores_what_the_form_says(api: Api, console: Console) -> None:
    csrf = await console.signed_in()
    form = soup(await console.client.get("/ui/webhooks/new"))
    assert form.find("form", class_="wh-form") is not None

    # When the form is posted with every field filled
    response = await console.client.post("/ui/webhooks/new", data={**FULL_FORM, "csrf": csrf})

    # Then it answers 303 to the new webhook's page, which says it was created
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.endswith("?done=created")
    webhook_id = urlsplit(location).path.rsplit("/", 1)[1]
    page = await console.client.get(location)
    assert page.status_code == 200
    assert done_message(page) == "Webhook created."
    # and the API shows exactly what was typed (the credential masked)
    created = (await api.client.get(f"/webhooks/{webhook_id}")).json()
    assert created["url"] == "https://example.com/orders"
    assert created["description"] == "Orders for billing"
    assert created["event_types"] == ["order.created", "order.paid", "invoice.*"]
    assert created["headers"] == {"X-Team": "billing", "Authorization": "Bearer ********"}
    assert created["trace_propagation"] is False
    assert created["retry_config"] == {
        "max_retries": 4,
        "base_delay": 30.0,
        "max_delay": 600.0,
        "multiplier": 3.0,
        "jitter": "equal",
        "jitter_ratio": 0.25,
        "max_retry_duration": 3600.0,
        "respect_retry_after": False,
        "disable_on_status": [404, 410, 451],
    }
    row = await stored(api, webhook_id)
    assert row is not None
    assert row.headers["Authorization"] == "Bearer s3cret-value"


async def test_empty_retry_fields_mean_the_defaults(api: Api, console: Console) -> None:
    csrf = await console.signed_in()
    data = {"url": "https://example.com/a", "csrf": csrf, **EMPTY_RETRY}
    data["base_delay"] = "8000"  # one field: the rest default (max_delay raised to it)

    partial = await console.client.post("/ui/webhooks/new", data=data)
    plain = await console.client.post(
        "/ui/webhooks/new",
        data={"url": "https://example.com/b", "csrf": csrf, "trace_propagation": ""},
    )

    assert partial.status_code == plain.status_code == 303
    partial_id, plain_id = (
        urlsplit(r.headers["location"]).path.rsplit("/", 1)[1] for r in (partial, plain)
    )
    config = (await api.client.get(f"/webhooks/{partial_id}/retry-config")).json()
    assert (config["source"], config["base_delay"], config["max_delay"]) == (
        "custom",
        8000.0,
        8000.0,
    )
    assert config["max_retries"] == 10
    default = (await api.client.get(f"/webhooks/{plain_id}/retry-config")).json()
    assert default["source"] == "default"
    assert (await api.client.get(f"/webhooks/{plain_id}")).json()["trace_propagation"] is None


async def test_a_refused_form_comes_back_as_typed_with_each_error_next_to_its_field(
    api: Api, console: Console
) -> None:
    csrf = await console.signed_in()
    typed = {
        **FULL_FORM,
        "url": "ftp://example.com/x",
        "description": "kept <b>as typed</b>",
        "event_types": "order.created, order.**",
        "headers": "X-Team: billing\nno colon here\nHost: example.org",
        "max_retries": "2.5",
        "base_delay": "abc",
        "jitter_ratio": "2",
        "disable_on_status": "404, 200",
    }

    response = await console.client.post("/ui/webhooks/new", data={**typed, "csrf": csrf})

    # Then: 422, nothing stored
    assert response.status_code == 422
    assert_page_is_safe(response)
    assert await webhook_count(api) == 0
    page = soup(response)
    # each error next to its field, in the API's words
    assert "Must be an absolute http:// or https:// URL" in field_errors(page, "url")
    assert field_errors(page, "event_types").startswith("'order.**': segment '**' mixes")
    headers = field_errors(page, "headers")
    assert "Line 2: write each header as Name: value." in headers
    assert "Input should be a valid integer" in field_errors(page, "max_retries")
    assert "Input should be a valid number" in field_errors(page, "base_delay")
    # (the API checks JSON types before bounds, so the other retry errors wait for those)
    # the summary links to each field
    summary = page.find(attrs={"data-errors": "summary"})
    assert isinstance(summary, Tag)
    hrefs = [a["href"] for a in summary.find_all("a")]
    assert hrefs == [
        "#field-url",
        "#field-event_types",
        "#field-headers",
        "#field-max_retries",
        "#field-base_delay",
    ]
    # and every value comes back as typed
    values = form_values(page)
    for name, value in typed.items():
        assert values[name] == value, name

    # With the types right, the bounds and the header rules are named the same way
    again = await console.client.post(
        "/ui/webhooks/new",
        data={
            **typed,
            "csrf": csrf,
            "url": "https://example.com/x",
            "event_types": "",
            "headers": "Host: example.org",
            "max_retries": "11",
            "base_delay": "100",
            "max_delay": "50",
            "jitter_ratio": "2",
        },
    )
    assert again.status_code == 422
    page = soup(again)
    assert "Input should be less than or equal to 10" in field_errors(page, "max_retries")
    assert "Must be at least base_delay (100)" in field_errors(page, "max_delay")
    assert "Input should be less than or equal to 1" in field_errors(page, "jitter_ratio")
    assert "\u201c200\u201d: Input should be greater than or equal to 400" in field_errors(
        page, "disable_on_status"
    )
    assert "set by hookline and cannot be overridden" in field_errors(page, "headers")
    assert await webhook_count(api) == 0

    # An empty URL says what to enter
    empty = await console.client.post("/ui/webhooks/new", data={"csrf": csrf, "url": " "})
    assert field_errors(soup(empty), "url") == "Enter the URL deliveries are sent to."


async def test_a_url_that_resolves_to_a_blocked_address_is_refused_next_to_the_url(
    api: Api, console: Console, dns: FakeDns
) -> None:
    # Given a name that resolves to a private address (not in ALLOWED_NETWORKS)
    dns.table["internal.example.com"] = ("10.1.2.3",)
    csrf = await console.signed_in()

    response = await console.client.post(
        "/ui/webhooks/new",
        data={**FULL_FORM, "url": "https://internal.example.com/hook", "csrf": csrf},
    )

    assert response.status_code == 422
    assert_page_is_safe(response)
    message = field_errors(soup(response), "url")
    assert "ALLOWED_NETWORKS" in message
    assert "10.1.2.3" in message
    assert form_values(soup(response))["url"] == "https://internal.example.com/hook"
    assert await webhook_count(api) == 0


# edit ------------------------------------------------------------------------------------------


async def test_the_edit_form_masks_credentials_and_a_masked_value_keeps_the_stored_one(
    api: Api, console: Console
) -> None:
    # Given a webhook with a credential header and a retry config of its own
    created = await api.create_webhook(
        url="https://example.com/hook",
        description="first",
        event_types=["order.created"],
        headers={"Authorization": "Bearer top-secret-1", "X-Team": "a"},
        retry_config={"max_retries": 3, "base_delay": 10, "jitter": "none"},
        trace_propagation=True,
    )
    webhook_id = created["id"]
    csrf = await console.signed_in()

    # When its edit form is opened
    response = await console.client.get(f"/ui/webhooks/{webhook_id}/edit")

    # Then it shows the webhook as stored, the credential masked as the API shows it
    assert response.status_code == 200
    assert_page_is_safe(response)
    assert "top-secret-1" not in response.text
    values = form_values(soup(response))
    # (in the order the API shows them: PostgreSQL's JSONB orders keys its own way)
    assert set(values["headers"].splitlines()) == {"Authorization: Bearer ********", "X-Team: a"}
    assert values["event_types"] == "order.created"
    assert values["trace_propagation"] == "on"
    assert (values["max_retries"], values["base_delay"], values["jitter"]) == ("3", "10", "none")
    assert values["disable_on_status"] == "404, 410"

    # When it is posted back with the masked value left as it is and other changes
    values.update(
        csrf=csrf, description="second", headers=values["headers"] + "\nX-New: 1", max_retries="5"
    )
    saved = await console.client.post(f"/ui/webhooks/{webhook_id}/edit", data=values)

    # Then the stored credential is kept, and the rest changed
    assert saved.status_code == 303
    assert saved.headers["location"] == f"/ui/webhooks/{webhook_id}?done=saved"
    row = await stored(api, webhook_id)
    assert row is not None
    assert row.headers == {"Authorization": "Bearer top-secret-1", "X-Team": "a", "X-New": "1"}
    assert row.description == "second"
    shown = (await api.client.get(f"/webhooks/{webhook_id}")).json()
    assert shown["retry_config"]["max_retries"] == 5
    assert done_message(await console.client.get(saved.headers["location"])) == "Changes saved."

    # A masked value that is not the stored one's mask is refused next to the headers
    values["headers"] = "Authorization: Basic ********"
    values["description"] = "third"
    refused = await console.client.post(f"/ui/webhooks/{webhook_id}/edit", data=values)
    assert refused.status_code == 422
    assert "Authorization: ******** is how hookline shows a stored credential" in field_errors(
        soup(refused), "headers"
    )
    unchanged = await stored(api, webhook_id)
    assert unchanged is not None
    assert (unchanged.description, unchanged.headers["Authorization"]) == (
        "second",
        "Bearer top-secret-1",
    )

    # Emptying every retry field goes back to the defaults
    values.update(EMPTY_RETRY, headers="", description="fourth")
    reset = await console.client.post(f"/ui/webhooks/{webhook_id}/edit", data=values)
    assert reset.status_code == 303
    config = (await api.client.get(f"/webhooks/{webhook_id}/retry-config")).json()
    assert config["source"] == "default"


async def test_a_refused_edit_changes_nothing_and_an_unchanged_url_is_not_vetted_again(
    api: Api, console: Console, dns: FakeDns
) -> None:
    # Given a webhook whose URL is a name that resolves publicly, then no longer does
    dns.table["hooks.example.com"] = ("93.184.216.34",)
    created = await api.create_webhook(url="https://hooks.example.com/in", description="old")
    webhook_id = created["id"]
    dns.table["hooks.example.com"] = ("10.0.0.7",)
    csrf = await console.signed_in()
    values = form_values(soup(await console.client.get(f"/ui/webhooks/{webhook_id}/edit")))
    values["csrf"] = csrf

    # An invalid field: 422, nothing stored, the typed value kept
    refused = await console.client.post(
        f"/ui/webhooks/{webhook_id}/edit",
        data={**values, "description": "new", "multiplier": "0.5"},
    )
    assert refused.status_code == 422
    assert "Input should be greater than or equal to 1" in field_errors(soup(refused), "multiplier")
    assert form_values(soup(refused))["description"] == "new"
    row = await stored(api, webhook_id)
    assert row is not None
    assert row.description == "old"

    # Saving other fields does not vet the unchanged URL again; changing it does
    kept = await console.client.post(
        f"/ui/webhooks/{webhook_id}/edit", data={**values, "description": "new"}
    )
    assert kept.status_code == 303
    moved = await console.client.post(
        f"/ui/webhooks/{webhook_id}/edit",
        data={**values, "url": "https://hooks.example.com/other"},
    )
    assert moved.status_code == 422
    assert "ALLOWED_NETWORKS" in field_errors(soup(moved), "url")
    row = await stored(api, webhook_id)
    assert row is not None
    assert (row.url, row.description) == ("https://hooks.example.com/in", "new")


# the retry preview -----------------------------------------------------------------------------


async def test_the_form_asks_htmx_for_the_preview_and_shows_one_without_it(
    api: Api, console: Console
) -> None:
    created = await api.create_webhook(
        retry_config={"max_retries": 2, "base_delay": 60, "jitter": "none"}
    )
    await console.signed_in()

    for path, retries in (
        ("/ui/webhooks/new", 10),  # the defaults
        (f"/ui/webhooks/{created['id']}/edit", 2),  # the saved config
    ):
        page = soup(await console.client.get(path))
        fieldset = page.find("fieldset", class_="wh-retry-fields")
        assert isinstance(fieldset, Tag)
        assert fieldset["hx-get"] == "/ui/webhooks/retry-preview"
        assert fieldset["hx-trigger"] == "change, keyup changed delay:400ms"
        assert fieldset["hx-target"] == "#retry-preview"
        assert fieldset["hx-include"] == "this"
        names = {field["name"] for field in fieldset.find_all(["input", "select"])}
        assert names == set(EMPTY_RETRY)
        preview = page.find(id="retry-preview")
        assert isinstance(preview, Tag)
        assert preview.find("svg") is not None, path
        assert len(timeline_rows(preview)) == retries, path
    edit = soup(await console.client.get(f"/ui/webhooks/{created['id']}/edit"))
    assert timeline_rows(edit) == [("1 min", "1 min", ""), ("3 min", "2 min", "")]


async def test_the_preview_is_the_plan_hookline_schedule_and_the_api_give(
    api: Api, console: Console
) -> None:
    # Given a config whose window cuts the schedule
    config = {
        "max_retries": "6",
        "base_delay": "60",
        "max_delay": "900",
        "multiplier": "3",
        "jitter": "proportional",
        "jitter_ratio": "0.5",
        "max_retry_duration": "2400",
        "respect_retry_after": "",
        "disable_on_status": "",
    }
    created = await api.create_webhook(
        retry_config={
            "max_retries": 6,
            "base_delay": 60,
            "max_delay": 900,
            "multiplier": 3,
            "jitter": "proportional",
            "jitter_ratio": 0.5,
            "max_retry_duration": 2400,
        }
    )
    await console.signed_in()

    # When the preview is asked for as htmx does
    response = await console.client.get("/ui/webhooks/retry-preview", params=config, headers=HTMX)

    # Then it is a fragment, and its rows are the API's schedule for the same config
    assert response.status_code == 200
    assert_security_headers(response)
    assert_no_inline_code(response.text, "preview")
    assert "<html" not in response.text
    assert "<nav" not in response.text
    fragment = BeautifulSoup(response.text, "html.parser")
    schedule = (await api.client.get(f"/webhooks/{created['id']}/retry-config/schedule")).json()
    expected = []
    for row in schedule["retries"]:
        starts = format_duration(row["earliest_at_s"])
        if row["latest_at_s"] is None:
            starts += " at the earliest"
        elif row["latest_at_s"] != row["earliest_at_s"]:
            starts += f" \u2013 {format_duration(row['latest_at_s'])}"
        waits = format_duration(row["earliest_delay_s"])
        if row["latest_delay_s"] not in (None, row["earliest_delay_s"]):
            waits += f" \u2013 {format_duration(row['latest_delay_s'])}"
        note = ""
        if row["latest_at_s"] is None:
            note = "may not happen"
        elif row["cut_by_window"]:
            note = "at the window's end"
        expected.append((starts, waits, note))
    assert timeline_rows(fragment) == expected
    assert any(note for _, _, note in expected)  # the window does cut
    plan = plan_schedule(RetryConfig.model_validate(schedule["config"]))
    assert len(fragment.select("svg g.wh-retry")) == plan.total_retries
    summary = stat(fragment, "timeline-summary")
    assert f"window cuts at retry {plan.window_cut_retry}" in summary
    # and the chart marks where the window ends
    assert fragment.select_one("svg line.wh-window-end") is not None


async def test_the_preview_shows_what_is_wrong_instead_of_a_timeline(console: Console) -> None:
    await console.signed_in()

    response = await console.client.get(
        "/ui/webhooks/retry-preview",
        params={"base_delay": "0", "jitter": "sometimes", "max_retries": "3"},
        headers=HTMX,
    )

    # 200, so htmx swaps it in
    assert response.status_code == 200
    fragment = BeautifulSoup(response.text, "html.parser")
    assert fragment.find("svg") is None
    invalid = fragment.find(attrs={"data-preview": "invalid"})
    messages = [text_of(item) for item in invalid.find_all("li")] if invalid else []
    assert "Base delay: Input should be greater than or equal to 1" in messages
    assert any(m.startswith("Jitter: Input should be 'none', 'full'") for m in messages)
    # Text where a number goes is named too, and no retries is a sentence, not an empty chart
    text = await console.client.get("/ui/webhooks/retry-preview", params={"base_delay": XSS})
    assert XSS not in text.text
    assert "Base delay: Input should be a valid number" in text.text
    none = await console.client.get("/ui/webhooks/retry-preview", params={"max_retries": "0"})
    assert "No retries: one attempt only" in none.text
    assert "<svg" not in none.text


# the detail page -------------------------------------------------------------------------------


async def test_the_detail_page_shows_stats_health_timeline_and_latest_deliveries(
    api: Api, console: Console
) -> None:
    # Given a failing webhook with its own retry config and 21 deliveries, 3 of them attempted
    created = await api.create_webhook(
        description="billing",
        event_types=["order.created"],
        headers={"X-Api-Key": "key-123456", "X-Team": "billing"},
        retry_config={"max_retries": 3, "base_delay": 30, "jitter": "none"},
    )
    webhook_id = created["id"]
    async with api.runtime.sessions.begin() as session:
        row = await session.get(Endpoint, webhook_id)
        assert row is not None
        row.failing_since = api.clock.now()
    await seed_attempts(api, webhook_id, [200, 500, None])
    for _ in range(18):
        await api.seed_delivery(webhook_id=webhook_id)
    await console.signed_in()

    response = await console.client.get(f"/ui/webhooks/{webhook_id}")

    assert response.status_code == 200
    assert_page_is_safe(response)
    page = soup(response)
    assert "key-123456" not in response.text
    assert stat(page, "url") == created["url"]
    assert stat(page, "health").startswith("failing since ")
    shown_headers = {text_of(item) for item in page.select("[data-stat=headers] li")}
    assert shown_headers == {"X-Api-Key: ********", "X-Team: billing"}
    # the 24-hour stats are the API's
    api_stats = (await api.client.get(f"/webhooks/{webhook_id}/stats")).json()
    assert stat(page, "attempts") == str(api_stats["attempts"]["total"]) == "3"
    assert stat(page, "attempts-failed") == str(api_stats["attempts"]["failed"]) == "2"
    assert stat(page, "failure-rate") == "66.7%"
    for state, count in api_stats["deliveries"].items():
        assert stat(page, f"deliveries-{state}") == str(count), state
    # the retry timeline of its own config
    assert "This webhook's own retry config" in stat(page, "retry-source")
    assert timeline_rows(page) == [
        ("30 s", "30 s", ""),
        ("1 min 30 s", "1 min", ""),
        ("3 min 30 s", "2 min", ""),
    ]
    # the latest 20 deliveries, newest first, each linking to its page, and a link to the rest
    listed = page.select("table.wh-deliveries tbody tr")
    api_list = (await api.client.get(f"/deliveries?webhook_id={webhook_id}&limit=20")).json()
    assert [r["data-delivery"] for r in listed] == [d["id"] for d in api_list["data"]]
    first = listed[0].find("a")
    assert isinstance(first, Tag)
    assert first["href"] == f"/ui/deliveries/{api_list['data'][0]['id']}"
    more = page.find("a", string="All deliveries of this webhook")
    assert isinstance(more, Tag)
    assert more["href"] == f"/ui/deliveries?webhook_id={webhook_id}"
    # actions: edit, disable (active), rotate, delete; each post form carries the CSRF token
    actions = {str(form["action"]) for form in page.select("section.wh-actions form")}
    assert actions == {
        f"/ui/webhooks/{webhook_id}/disable",
        f"/ui/webhooks/{webhook_id}/rotate-secret",
    }


async def test_a_new_webhook_has_an_empty_detail_page(api: Api, console: Console) -> None:
    created = await api.create_webhook()
    await console.signed_in()

    response = await console.client.get(f"/ui/webhooks/{created['id']}")

    assert response.status_code == 200
    page = soup(response)
    assert page.find(attrs={"data-empty": "deliveries"}) is not None
    assert stat(page, "attempts") == "0"
    assert stat(page, "failure-rate") == "\u2013"
    assert stat(page, "last-success") == "never"
    assert stat(page, "health") == "active"
    assert "The server's default retry config" in stat(page, "retry-source")
    assert len(timeline_rows(page)) == 10


async def test_a_stored_retry_config_that_cannot_be_read_is_said_and_can_be_replaced(
    api: Api, console: Console
) -> None:
    # Given a webhook whose stored retry config is out of bounds (old data, a hand edit)
    endpoint = await seed_webhook(api, retry_config={"max_retries": 99})
    csrf = await console.signed_in()

    # Its page says so and shows the defaults' timeline (what a reset gives)
    detail = soup(await console.client.get(f"/ui/webhooks/{endpoint.id}"))
    assert "cannot be read" in stat(detail, "retry-source")
    assert len(timeline_rows(detail)) == 10
    # its form says so too, with the retry fields empty; saving it replaces the config
    edit = soup(await console.client.get(f"/ui/webhooks/{endpoint.id}/edit"))
    fieldset = edit.find("fieldset", class_="wh-retry-fields")
    assert "cannot be read" in text_of(fieldset)  # type: ignore[arg-type]
    values = form_values(edit)
    assert all(values[name] == "" for name in RETRY_FIELDS)
    saved = await console.client.post(
        f"/ui/webhooks/{endpoint.id}/edit", data={**values, "csrf": csrf}
    )
    assert saved.status_code == 303
    config = (await api.client.get(f"/webhooks/{endpoint.id}/retry-config")).json()
    assert config["source"] == "default"


async def test_unknown_and_deleted_webhooks_are_the_404_page(api: Api, console: Console) -> None:
    deleted = await api.create_webhook()
    assert (await api.client.delete(f"/webhooks/{deleted['id']}")).status_code == 204
    csrf = await console.signed_in()

    for webhook_id in (UNKNOWN["wh"], deleted["id"], "wh_x", "dlv_00000000000000000000000000"):
        for suffix in ("", "/edit", "/rotate-secret", "/delete"):
            response = await console.client.get(f"/ui/webhooks/{webhook_id}{suffix}")
            assert response.status_code == 404, (webhook_id, suffix)
            assert_page_is_safe(response)
            assert "Not found" in response.text
        for action in ("disable", "enable", "rotate-secret", "delete", "edit"):
            posted = await console.client.post(
                f"/ui/webhooks/{webhook_id}/{action}", data={**FULL_FORM, "csrf": csrf}
            )
            assert posted.status_code == 404, (webhook_id, action)
    assert await webhook_count(api) == 0


# actions ---------------------------------------------------------------------------------------


async def test_disable_then_enable_with_replay_says_how_many_were_replayed(
    api: Api, console: Console
) -> None:
    # Given an active webhook with two deliveries waiting and one that already succeeded
    endpoint = await seed_webhook(api)
    waiting = [await api.seed_delivery(webhook_id=endpoint.id) for _ in range(2)]
    await api.seed_delivery(
        webhook_id=endpoint.id,
        state="succeeded",
        next_attempt_at=None,
        completed_at=api.clock.now(),
    )
    csrf = await console.signed_in()

    # When it is disabled
    disabled = await console.client.post(f"/ui/webhooks/{endpoint.id}/disable", data={"csrf": csrf})

    # Then 303 back to its page, which says so; it is disabled by hand, its waiting deliveries
    # parked (and counted on the page)
    assert disabled.status_code == 303
    assert disabled.headers["location"] == f"/ui/webhooks/{endpoint.id}?done=disabled"
    page = await console.client.get(disabled.headers["location"])
    assert done_message(page).startswith("Webhook disabled")
    assert stat(soup(page), "health").startswith("disabled: disabled by hand since ")
    assert stat(soup(page), "parked") == "2 parked"
    row = await stored(api, endpoint.id)
    assert row is not None
    assert (row.status, row.disabled_reason) == ("disabled", "manual")
    states = {d.id: d.state for d in await deliveries_of(api, endpoint.id)}
    assert [states[d.id] for d in waiting] == ["parked", "parked"]
    # the page now offers to enable, with the replay box
    enable_form = soup(page).find("form", action=f"/ui/webhooks/{endpoint.id}/enable")
    assert isinstance(enable_form, Tag)
    box = enable_form.find("input", attrs={"type": "checkbox"})
    assert isinstance(box, Tag)
    assert box["name"] == "replay_cancelled"
    # and one cancelled by that disable (as a 410 Gone disable does) waits for the replay box
    cancelled = await api.seed_delivery(
        webhook_id=endpoint.id,
        state="cancelled",
        next_attempt_at=None,
        completed_at=api.clock.now(),
        last_error="endpoint_disabled",
    )

    # When it is enabled with the box ticked
    api.clock.advance(30)
    enabled = await console.client.post(
        f"/ui/webhooks/{endpoint.id}/enable", data={"csrf": csrf, "replay_cancelled": "yes"}
    )

    # Then the cancelled one is queued again, the parked ones wait for the slow start, and the
    # page says both
    assert enabled.status_code == 303
    assert (
        enabled.headers["location"]
        == f"/ui/webhooks/{endpoint.id}?done=enabled&replayed=1&parked=2"
    )
    page = await console.client.get(enabled.headers["location"])
    assert done_message(page) == (
        "Webhook enabled: 2 parked deliveries are being released, oldest first, at a pace that "
        "rises while it answers 2xx. 1 delivery that disabling had cancelled queued again."
    )
    assert stat(soup(page), "health").startswith("recovering")
    assert (await api.delivery(cancelled.id))["state"] == "pending"
    for delivery in waiting:
        assert (await api.delivery(delivery.id))["state"] == "parked"
    row = await stored(api, endpoint.id)
    assert row is not None
    assert row.status == "recovering"


async def test_the_done_message_comes_from_a_fixed_set(api: Api, console: Console) -> None:
    endpoint = await seed_webhook(api)
    await console.signed_in()

    for query, expected in {
        "done=deleted": "Webhook deleted",
        "done=enabled&replayed=1": "Webhook enabled. 1 delivery that",
        "done=enabled&replayed=0": "Webhook enabled. Disabling it had cancelled no delivery",
        "done=enabled&parked=3": "Webhook enabled: 3 parked deliveries are being released",
        f"done=enabled&parked={XSS}": "Webhook enabled.",
        f"done=enabled&replayed={XSS}": "Webhook enabled.",
        "done=enabled&replayed=%EF%BC%93": "Webhook enabled.",  # a full-width digit
        f"done={XSS}": "",
        "done=": "",
    }.items():
        for path in (f"/ui/webhooks/{endpoint.id}", "/ui/webhooks"):
            response = await console.client.get(f"{path}?{query}")
            assert response.status_code == 200
            assert XSS not in response.text
            assert ESCAPED_XSS not in response.text, "nothing from the query is echoed"
            if path == "/ui/webhooks" and "enabled" in query:
                continue
            assert done_message(response).startswith(expected), (path, query)
            if not expected:
                assert done_message(response) == ""


async def test_rotating_the_secret_shows_the_new_one_once(api: Api, console: Console) -> None:
    created = await api.create_webhook()
    webhook_id = created["id"]
    old = (await api.client.get(f"/webhooks/{webhook_id}/secret")).json()["secret"]
    csrf = await console.signed_in()

    # When the rotation is posted with the field empty
    response = await console.client.post(
        f"/ui/webhooks/{webhook_id}/rotate-secret", data={"csrf": csrf, "secret": ""}
    )

    # Then the page shows the new secret (the API's), with the warning and the grace period
    assert response.status_code == 200
    assert_page_is_safe(response)
    page = soup(response)
    current = (await api.client.get(f"/webhooks/{webhook_id}/secret")).json()
    assert current["secret"] != old
    assert stat(page, "secret") == current["secret"]
    assert "This is the only time the console shows this secret" in text_of(
        page.find(class_="wh-notice-warning")
    )
    until = api.clock.now() + timedelta(seconds=ROTATION_GRACE_S)
    assert f"{until:%Y-%m-%d %H:%M:%S} UTC" in stat(page, "previous-secret")
    # and no other page shows it
    for path in ("", "/edit", "/rotate-secret"):
        other = await console.client.get(f"/ui/webhooks/{webhook_id}{path}")
        assert current["secret"] not in other.text, path

    # A secret of the wrong shape is refused next to the field, not echoed, nothing changes
    bad = "whsec_" + "not-base64!" * 4
    refused = await console.client.post(
        f"/ui/webhooks/{webhook_id}/rotate-secret", data={"csrf": csrf, "secret": bad}
    )
    assert refused.status_code == 422
    assert_page_is_safe(refused)
    assert bad not in refused.text
    assert "whsec_ followed by the padded base64" in field_errors(soup(refused), "secret")
    # the current secret given again is a conflict, said in words
    same = await console.client.post(
        f"/ui/webhooks/{webhook_id}/rotate-secret",
        data={"csrf": csrf, "secret": current["secret"]},
    )
    assert same.status_code == 409
    assert "This is the current secret" in field_errors(soup(same), "secret")
    after = (await api.client.get(f"/webhooks/{webhook_id}/secret")).json()
    assert after["secret"] == current["secret"]
    # a valid one of the person's own is used
    own = "whsec_" + "A" * 32
    chosen = await console.client.post(
        f"/ui/webhooks/{webhook_id}/rotate-secret", data={"csrf": csrf, "secret": own}
    )
    assert chosen.status_code == 200
    assert (await api.client.get(f"/webhooks/{webhook_id}/secret")).json()["secret"] == own


async def test_deleting_asks_first_then_deletes_and_cancels(api: Api, console: Console) -> None:
    endpoint = await seed_webhook(api, description="to delete")
    waiting = await api.seed_delivery(webhook_id=endpoint.id)
    csrf = await console.signed_in()

    # The detail page links to a confirmation page, which deletes nothing by itself
    detail = soup(await console.client.get(f"/ui/webhooks/{endpoint.id}"))
    link = detail.find("a", href=f"/ui/webhooks/{endpoint.id}/delete")
    assert isinstance(link, Tag)
    confirm = await console.client.get(str(link["href"]))
    assert confirm.status_code == 200
    assert_page_is_safe(confirm)
    page = soup(confirm)
    assert "cannot be undone" in page.get_text()
    form = page.find("form", action=f"/ui/webhooks/{endpoint.id}/delete")
    assert isinstance(form, Tag)
    assert str(form["method"]).lower() == "post"
    assert await webhook_count(api) == 1

    # Posting it deletes the webhook, cancels what waited, and goes back to the list
    response = await console.client.post(str(form["action"]), data={"csrf": csrf})
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/webhooks?done=deleted"
    listing = await console.client.get(response.headers["location"])
    assert done_message(listing).startswith("Webhook deleted")
    assert "No webhooks yet" in listing.text
    assert (await api.client.get(f"/webhooks/{endpoint.id}")).status_code == 404
    assert (await api.delivery(waiting.id))["state"] == "cancelled"
    assert (await console.client.get(f"/ui/webhooks/{endpoint.id}")).status_code == 404


# escaping, markup and outages ------------------------------------------------------------------


async def test_a_script_in_a_webhook_renders_as_text_on_every_page(
    api: Api, console: Console
) -> None:
    endpoint = await seed_webhook(
        api,
        url=f"https://example.com/{XSS}",
        description=f"orders {XSS}",
        headers={"X-Note": XSS},
        event_types=[XSS],
        failing_since=api.clock.now(),
    )
    await seed_attempts(api, endpoint.id, [500])
    await console.signed_in()

    for path in (
        "/ui/webhooks",
        f"/ui/webhooks/{endpoint.id}",
        f"/ui/webhooks/{endpoint.id}/edit",
        f"/ui/webhooks/{endpoint.id}/delete",
        f"/ui/webhooks/{endpoint.id}/rotate-secret",
    ):
        response = await console.client.get(path)
        assert response.status_code == 200, path
        assert XSS not in response.text, path
        assert ESCAPED_XSS in response.text, path
        assert_page_is_safe(response)
        page = soup(response)
        assert [s.get("src") for s in page.find_all("script")] == ["/static/console/htmx.min.js"]
    edit = soup(await console.client.get(f"/ui/webhooks/{endpoint.id}/edit"))
    assert form_values(edit)["description"] == f"orders {XSS}"
    assert form_values(edit)["headers"] == f"X-Note: {XSS}"


async def test_every_webhook_page_is_labelled_and_safe(api: Api, console: Console) -> None:
    endpoint = await seed_webhook(api, status="disabled", disabled_reason="failing")
    active = await seed_webhook(api)
    await seed_attempts(api, active.id, [500])
    await console.signed_in()

    pages = [
        "/ui/webhooks",
        "/ui/webhooks?status=disabled",
        "/ui/webhooks/new",
        f"/ui/webhooks/{endpoint.id}",
        f"/ui/webhooks/{active.id}",
        f"/ui/webhooks/{endpoint.id}/edit",
        f"/ui/webhooks/{endpoint.id}/delete",
        f"/ui/webhooks/{endpoint.id}/rotate-secret",
    ]
    for path in pages:
        response = await console.client.get(path)
        assert response.status_code == 200, path
        assert_page_is_safe(response)
        page = soup(response)
        assert page.find("h1") is not None, path
        nav = page.find("a", attrs={"aria-current": "page"})
        assert text_of(nav) == "Webhooks", path
    preview = await console.client.get("/ui/webhooks/retry-preview", headers=HTMX)
    assert_security_headers(preview)
    assert_no_inline_code(preview.text, "preview")


async def test_the_webhook_pages_answer_503_when_the_database_is_gone(tmp_path: Path) -> None:
    # Given a runtime whose PostgreSQL does not answer (nothing listens on port 1)
    settings = make_settings("postgresql://postgres@127.0.0.1:1/nothing", tmp_path / "data")
    async with (
        open_runtime(settings, clock=ManualClock(), resolver=FakeDns()) as runtime,
        console_for(runtime) as console,
    ):
        csrf = await console.signed_in()
        webhook_id = UNKNOWN["wh"]
        with capture_logs():
            pages = [
                await console.client.get("/ui/webhooks"),
                await console.client.get(f"/ui/webhooks/{webhook_id}"),
                await console.client.get(f"/ui/webhooks/{webhook_id}/edit"),
                await console.client.post(
                    "/ui/webhooks/new",
                    data={**FULL_FORM, "url": "https://93.184.216.34/x", "csrf": csrf},
                ),
                await console.client.post(
                    f"/ui/webhooks/{webhook_id}/disable", data={"csrf": csrf}
                ),
            ]
            # the form and the preview need no database
            form = await console.client.get("/ui/webhooks/new")
            preview = await console.client.get("/ui/webhooks/retry-preview")
    for response in pages:
        assert response.status_code == 503, response.request.url
        assert response.headers["Retry-After"] == "5"
        assert_page_is_safe(response)
        assert "Database unavailable" in response.text
    assert form.status_code == preview.status_code == 200
