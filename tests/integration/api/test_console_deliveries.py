"""The console's deliveries, delivery detail and dead-letter pages, read as a browser would.

``api``/``console``-based tests run on SQLite and PostgreSQL (SQL queue) with seeded rows; the
tests where states matter deliver for real through the engine harness (SQLite + SQL queue,
PostgreSQL + Redis) to the loopback receiver.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from bs4 import BeautifulSoup, Tag
from structlog.testing import capture_logs

from hookline.clock import ManualClock
from hookline.runtime import open_runtime
from hookline.storage.models import Delivery
from tests.integration.api.conftest import make_settings
from tests.integration.api.console_helpers import (
    XSS,
    Console,
    assert_page_is_safe,
    assert_security_headers,
    console_for,
    soup,
    stat,
)
from tests.integration.api.helpers import UNKNOWN, Api, FakeDns, iso
from tests.integration.conftest import Harness

ONE_RETRY = {"max_retries": 1, "base_delay": 60, "max_delay": 60, "jitter": "none"}
"""A retry config with one retry, 60 s after the first attempt."""
ESCAPED_XSS = "&lt;script&gt;alert(1)&lt;/script&gt;"
HTMX = {"HX-Request": "true"}


def text_of(page: Tag) -> str:
    return " ".join(page.get_text().split())


def rows_of(response: httpx.Response) -> list[str]:
    """The delivery ids of a list page's rows, in order."""
    return [str(row["data-delivery"]) for row in soup(response).select("tr[data-delivery]")]


def next_link(response: httpx.Response) -> str | None:
    link = soup(response).find("a", attrs={"rel": "next"})
    return str(link["href"]) if isinstance(link, Tag) else None


def field_error(response: httpx.Response, field_id: str) -> str:
    """The error tied to the field ``field_id`` (by aria-describedby, inside its .field)."""
    page = soup(response)
    field = page.find(id=field_id)
    assert isinstance(field, Tag), field_id
    assert field.get("aria-invalid") == "true", field_id
    described = str(field.get("aria-describedby", "")).split()
    [error] = [page.find(id=name) for name in described if name.endswith("-error")]
    assert isinstance(error, Tag), described
    assert error.find_parent(class_="field") is field.find_parent(class_="field")
    return error.get_text(" ", strip=True)


def live_section(response: httpx.Response) -> Tag:
    section = soup(response).find(id="delivery-live")
    assert isinstance(section, Tag)
    return section


def csrf_of(response: httpx.Response) -> str:
    field = soup(response).select_one("form.sign-out input[name=csrf]")
    assert isinstance(field, Tag)
    return str(field["value"])


async def post_form(console: Console, path: str, fields: list[tuple[str, str]]) -> httpx.Response:
    """Post ``fields`` as a browser does, repeated names included."""
    return await console.client.post(
        path,
        content=urlencode(fields),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


def hidden_fields(form: Tag) -> list[tuple[str, str]]:
    return [
        (str(field["name"]), str(field.get("value", "")))
        for field in form.find_all("input", attrs={"type": "hidden"})
    ]


async def _dead_letter(api: Api, webhook_id: str, **over: Any) -> Delivery:
    over.setdefault("completed_at", api.clock.now())
    return await api.seed_delivery(
        webhook_id=webhook_id, state="failed", next_attempt_at=None, attempt_number=1, **over
    )


async def _state(api_or_harness: Api | Harness, delivery_id: str) -> str:
    async with api_or_harness.runtime.sessions() as session:
        found = await session.get(Delivery, delivery_id)
    assert found is not None
    return found.state


# sign-in and CSRF --------------------------------------------------------------------------


async def test_every_page_and_post_needs_a_session(api: Api, console: Console) -> None:
    webhook = await api.create_webhook()
    failed = await _dead_letter(api, webhook["id"])

    # Given no session, every page sends the visitor to sign in, remembering the page
    for path in [
        "/ui/deliveries",
        f"/ui/deliveries/{failed.id}",
        "/ui/dead-letters",
    ]:
        response = await console.client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/ui/login?next="), path
        assert_security_headers(response)
    # the polling fragment is told where to go instead of being redirected inside the page
    live = await console.client.get(f"/ui/deliveries/{failed.id}/live", headers=HTMX)
    assert (live.status_code, live.headers["HX-Redirect"]) == (401, "/ui/login")
    # and every post goes to sign in without doing anything
    for path, data in [
        (f"/ui/deliveries/{failed.id}/retry", {}),
        ("/ui/dead-letters/confirm", {"scope": "all"}),
        ("/ui/dead-letters/replay", {"scope": "all"}),
    ]:
        response = await console.client.post(path, data={"csrf": "x", **data})
        assert (response.status_code, response.headers["location"]) == (303, "/ui/login"), path
    assert await _state(api, failed.id) == "failed"


async def test_every_post_needs_the_csrf_token(api: Api, console: Console) -> None:
    # Given a signed-in browser and a dead letter
    webhook = await api.create_webhook()
    failed = await _dead_letter(api, webhook["id"])
    await console.signed_in()

    # When the retry, confirm and replay forms are posted without the session's token, or with
    # a wrong one, each is refused with the 403 page and nothing is replayed
    for path, data in [
        (f"/ui/deliveries/{failed.id}/retry", {}),
        ("/ui/dead-letters/confirm", {"scope": "selected", "delivery_id": failed.id}),
        ("/ui/dead-letters/replay", {"scope": "selected", "delivery_id": failed.id}),
        ("/ui/dead-letters/replay", {"scope": "all"}),
    ]:
        for token in ({}, {"csrf": "0" * 64}):
            response = await console.client.post(path, data={**data, **token})
            assert response.status_code == 403, (path, token)
            assert_page_is_safe(response)
            assert "Form refused" in response.text
    assert await _state(api, failed.id) == "failed"


# the deliveries list -------------------------------------------------------------------------


async def test_the_lists_empty_states(console: Console) -> None:
    await console.signed_in()

    deliveries = await console.client.get("/ui/deliveries")
    dead = await console.client.get("/ui/dead-letters")

    for response in (deliveries, dead):
        assert response.status_code == 200
        assert_page_is_safe(response)
        assert soup(response).find("table") is None
    assert "No deliveries yet" in text_of(soup(deliveries))
    assert "No dead letters — every delivery either succeeded or is still being retried" in (
        text_of(soup(dead))
    )
    # nav marks the page
    for response, label in ((deliveries, "Deliveries"), (dead, "Dead letters")):
        current = soup(response).select_one("nav a[aria-current=page]")
        assert isinstance(current, Tag)
        assert current.get_text(strip=True) == label


async def test_the_deliveries_list_filters_pages_and_links_like_the_api(
    api: Api, console: Console
) -> None:
    # Given two webhooks; the first has four deliveries in different states, the second one
    first = await api.create_webhook()
    second = await api.create_webhook()
    states = ["succeeded", "retrying", "failed", "pending"]
    mine = [await api.seed_delivery(webhook_id=first["id"], state=state) for state in states]
    other = await api.seed_delivery(webhook_id=second["id"], state="failed")
    await console.signed_in()

    # The list is newest first, every row links to its page and shows its state as a badge
    everything = await console.client.get("/ui/deliveries")
    assert everything.status_code == 200
    assert_page_is_safe(everything)
    assert rows_of(everything) == [other.id, *[d.id for d in reversed(mine)]]
    page = soup(everything)
    row = page.find("tr", attrs={"data-delivery": mine[1].id})
    assert isinstance(row, Tag)
    assert row.find("a", href=f"/ui/deliveries/{mine[1].id}") is not None
    assert row.find("a", href=f"/ui/webhooks/{first['id']}") is not None
    assert row.find("a", href=f"/ui/events/{mine[1].event_id}") is not None
    badge = row.find(class_="badge-state")
    assert isinstance(badge, Tag)
    assert (badge["data-state"], badge.get_text(strip=True)) == ("retrying", "retrying")
    assert "badge-state-retrying" in badge["class"]

    # Filters: the same as GET /deliveries, and the same answers
    for query in [
        {"webhook_id": first["id"]},
        {"state": "failed"},
        {"event_id": mine[2].event_id},
        {"webhook_id": first["id"], "state": "failed"},
        {"webhook_id": UNKNOWN["wh"]},
    ]:
        shown = await console.client.get("/ui/deliveries", params=query)
        assert shown.status_code == 200, query
        by_api = await api.client.get("/deliveries", params=query)
        assert rows_of(shown) == [d["id"] for d in by_api.json()["data"]], query
    filtered = await console.client.get("/ui/deliveries", params={"webhook_id": UNKNOWN["wh"]})
    assert "No delivery matches" in text_of(soup(filtered))
    # the form shows the filters back
    state_filter = await console.client.get("/ui/deliveries", params={"state": "failed"})
    selected = soup(state_filter).select_one("#dlv-state option[selected]")
    assert isinstance(selected, Tag)
    assert selected["value"] == "failed"

    # Paging: the API's cursors, a "Next page" link that keeps the filters
    query = {"webhook_id": first["id"], "limit": "3"}
    one = await console.client.get("/ui/deliveries", params=query)
    assert rows_of(one) == [d.id for d in reversed(mine)][:3]
    link = next_link(one)
    assert link is not None
    params = parse_qs(urlsplit(link).query)
    assert params["webhook_id"] == [first["id"]]
    assert params["limit"] == ["3"]
    two = await console.client.get(link)
    assert rows_of(two) == [mine[0].id]
    assert next_link(two) is None
    api_page = await api.client.get("/deliveries", params=query)
    assert params["cursor"] == [api_page.json()["next_cursor"]]


async def test_a_filter_that_breaks_the_apis_rules_is_shown_next_to_its_field(
    api: Api, console: Console
) -> None:
    await api.seed_delivery(webhook_id=(await api.create_webhook())["id"])
    await console.signed_in()

    response = await console.client.get(
        "/ui/deliveries", params={"webhook_id": "wh_nope", "event_id": XSS, "state": "lost"}
    )

    assert response.status_code == 422
    assert_page_is_safe(response)
    assert "must be a wh_ id" in field_error(response, "dlv-webhook_id")
    assert "must be a evt_ id" in field_error(response, "dlv-event_id")
    assert "'pending'" in field_error(response, "dlv-state")
    assert XSS not in response.text  # shown back as text in the field
    assert soup(response).find("table") is None
    # a cursor this console did not hand out is an error state, not a 500
    bad = await console.client.get("/ui/deliveries", params={"cursor": "bm90LW91cnM"})
    assert bad.status_code == 422
    assert "not one this console handed out" in bad.text
    assert_page_is_safe(bad)


# one delivery --------------------------------------------------------------------------------


async def test_a_delivery_page_shows_its_timeline_escapes_what_came_from_outside_and_polls(
    harness: Harness,
) -> None:
    # Given a webhook that answers 503 with a script in its body, and an event whose payload
    # holds a script
    harness.receiver.on(
        "/hook", statuses=[503], body=f"upstream down {XSS}".encode(), headers={"X": "1"}
    )
    endpoint = await harness.add_endpoint("/hook", retry_config=ONE_RETRY, description=XSS)
    published = await harness.publish(payload={"note": XSS, "nested": {"n": 1}})
    [delivery] = published.deliveries

    # When the first attempt fails
    assert await harness.run() == 1
    retrying = await harness.delivery(delivery.id)
    assert retrying.state == "retrying"
    assert retrying.next_attempt_at is not None

    async with console_for(harness.runtime) as console:
        await console.signed_in()
        page = await console.client.get(f"/ui/deliveries/{delivery.id}")

        # Then the page shows the state, the attempt and what follows, with the scripts as text
        assert page.status_code == 200
        assert_page_is_safe(page)
        parsed = soup(page)
        assert stat(parsed, "state") == "retrying"
        assert stat(parsed, "attempts") == "1"
        assert retrying.next_attempt_at.strftime("%Y-%m-%d %H:%M:%S UTC") in stat(
            parsed, "next-attempt"
        )
        [attempt] = parsed.select("li.dlv-attempt")
        assert stat(attempt, "status") == "HTTP 503"
        assert stat(attempt, "latency").endswith(" ms")
        assert stat(attempt, "then").startswith("retry after 1 min, at ")
        response = attempt.find("pre", class_="dlv-response")
        assert isinstance(response, Tag)
        assert response.get_text() == f"upstream down {XSS}"
        payload = parsed.find("pre", class_="dlv-payload")
        assert isinstance(payload, Tag)
        assert (
            payload.get_text() == '{\n  "note": "' + XSS + '",\n  "nested": {\n    "n": 1\n  }\n}'
        )
        assert XSS not in page.text
        assert ESCAPED_XSS in page.text
        assert [s.get("src") for s in parsed.find_all("script")] == ["/static/console/htmx.min.js"]
        # its webhook and event
        assert parsed.find("a", href=f"/ui/webhooks/{endpoint}") is not None
        assert parsed.find("a", href=f"/ui/events/{published.event.id}") is not None
        assert published.event.id in stat(parsed, "event")
        assert "order.created" in stat(parsed, "event")
        # no Retry now while it is being retried
        assert parsed.find("form", action=f"/ui/deliveries/{delivery.id}/retry") is None

        # And the state and attempts section polls its own fragment every 5 s
        section = live_section(page)
        assert section["hx-get"] == f"/ui/deliveries/{delivery.id}/live"
        assert section["hx-trigger"] == "every 5s"
        assert section["hx-swap"] == "outerHTML"
        fragment = await console.client.get(section["hx-get"], headers=HTMX)
        assert fragment.status_code == 200
        assert_security_headers(fragment)
        assert "<html" not in fragment.text
        assert "<nav" not in fragment.text
        fresh = BeautifulSoup(fragment.text, "html.parser")
        assert stat(fresh, "state") == "retrying"
        refreshed = fresh.find(id="delivery-live")
        assert isinstance(refreshed, Tag)
        assert refreshed["hx-trigger"] == "every 5s"
        assert XSS not in fragment.text

        # When the retry fails too, the delivery is a dead letter: the fragment says so and
        # carries no trigger, so polling stops; the page has none either
        harness.clock.set(retrying.next_attempt_at)
        assert await harness.run() == 1
        assert (await harness.delivery(delivery.id)).state == "failed"
        final = await console.client.get(f"/ui/deliveries/{delivery.id}/live", headers=HTMX)
        final_page = await console.client.get(f"/ui/deliveries/{delivery.id}")
    final_section = BeautifulSoup(final.text, "html.parser").find(id="delivery-live")
    assert isinstance(final_section, Tag)
    for section in (final_section, live_section(final_page)):
        assert not section.has_attr("hx-trigger")
        assert not section.has_attr("hx-get")
        assert stat(section, "state") == "failed (dead letter)"
        assert len(section.select("li.dlv-attempt")) == 2
    second = final_section.select("li.dlv-attempt")[1]
    assert stat(second, "then") == "no retry left"
    # and now it offers Retry now
    assert live_section(final_page).find("form", action=f"/ui/deliveries/{delivery.id}/retry")


async def test_an_unknown_delivery_is_the_console_404_page(console: Console) -> None:
    await console.signed_in()

    for path in [f"/ui/deliveries/{UNKNOWN['dlv']}", "/ui/deliveries/not-an-id"]:
        response = await console.client.get(path)
        assert response.status_code == 404, path
        assert_page_is_safe(response)
        assert "Not found" in response.text
        assert soup(response).find("nav") is not None
    fragment = await console.client.get(f"/ui/deliveries/{UNKNOWN['dlv']}/live", headers=HTMX)
    assert fragment.status_code == 404
    assert "<html" not in fragment.text


async def test_retry_now_sends_a_failed_delivery_again(harness: Harness) -> None:
    # Given a delivery refused with a 400 (a dead letter at once)
    harness.receiver.on("/hook", statuses=[400, 200])
    await harness.add_endpoint("/hook")
    [delivery] = (await harness.publish()).deliveries
    assert (await harness.run_until_settled(delivery.id)).state == "failed"

    async with console_for(harness.runtime) as console:
        await console.signed_in()
        page = await console.client.get(f"/ui/deliveries/{delivery.id}")
        assert_page_is_safe(page)
        form = live_section(page).find("form", action=f"/ui/deliveries/{delivery.id}/retry")
        assert isinstance(form, Tag)
        assert form.find("button", string="Retry now") is not None

        # When Retry now is posted (the form's own fields)
        harness.clock.advance(30)
        response = await console.client.post(form["action"], data=dict(hidden_fields(form)))

        # Then the delivery is pending again, due now, and the page says so and polls again
        assert response.status_code == 303
        assert response.headers["location"] == f"/ui/deliveries/{delivery.id}?retried=1"
        retried = await harness.delivery(delivery.id)
        assert (retried.state, retried.next_attempt_at) == ("pending", harness.clock.now())
        after = await console.client.get(response.headers["location"])
        assert after.status_code == 200
        assert_page_is_safe(after)
        notice = soup(after).find(attrs={"data-notice": "retried"})
        assert isinstance(notice, Tag)
        assert "Queued again" in notice.get_text()
        assert stat(soup(after), "state") == "pending"
        assert live_section(after)["hx-trigger"] == "every 5s"

        # and the worker delivers it (on Redis only the queue tells the worker)
        assert await harness.run() == 1
        assert (await harness.delivery(delivery.id)).state == "succeeded"
        done = await console.client.get(f"/ui/deliveries/{delivery.id}")
    assert stat(soup(done), "state") == "succeeded"
    assert not live_section(done).has_attr("hx-trigger")


async def test_retry_now_refused_by_the_service_is_a_message_on_the_page(
    harness: Harness,
) -> None:
    # Given a delivery that succeeded, and a dead letter whose webhook is then disabled
    harness.receiver.on("/ok", statuses=[200])
    harness.receiver.on("/bad", statuses=[400])
    await harness.add_endpoint("/ok", event_types=["a.ok"])
    bad = await harness.add_endpoint("/bad", event_types=["b.bad"])
    [succeeded] = (await harness.publish("a.ok")).deliveries
    [failed] = (await harness.publish("b.bad")).deliveries
    assert await harness.run() == 2
    await harness.runtime.endpoints.disable(endpoint_id=bad)

    async with console_for(harness.runtime) as console:
        await console.signed_in()
        ok_page = await console.client.get(f"/ui/deliveries/{succeeded.id}")
        # (a succeeded delivery offers no Retry now at all)
        assert live_section(ok_page).find("form") is None
        csrf = csrf_of(ok_page)

        # When Retry now is posted for each anyway (a page opened before they changed)
        refused_ok = await console.client.post(
            f"/ui/deliveries/{succeeded.id}/retry", data={"csrf": csrf}
        )
        refused_disabled = await console.client.post(
            f"/ui/deliveries/{failed.id}/retry", data={"csrf": csrf}
        )

    # Then each is the delivery's own page with the refusal, naming the reason; not an error
    # page, and nothing changed
    for response, delivery_id, reason in [
        (refused_ok, succeeded.id, "is succeeded; only failed or cancelled deliveries can be"),
        (refused_disabled, failed.id, f"Webhook {bad} is disabled; enable it first."),
    ]:
        assert response.status_code == 409
        assert_page_is_safe(response)
        page = soup(response)
        title = page.find("h1")
        assert isinstance(title, Tag)
        assert delivery_id in title.get_text()
        notice = page.find(attrs={"data-notice": "retry-refused"})
        assert isinstance(notice, Tag)
        assert "Not retried" in notice.get_text()
        assert reason in text_of(notice), text_of(notice)
        assert page.find(id="delivery-live") is not None
    assert (await harness.delivery(succeeded.id)).state == "succeeded"
    assert (await harness.delivery(failed.id)).state == "failed"


# dead letters ----------------------------------------------------------------------------------


async def test_a_dead_lettered_delivery_is_replayed_back_to_pending_and_delivered(
    harness: Harness,
) -> None:
    # Given a webhook that answers 503 until it has used its one retry: a dead letter
    harness.receiver.on("/hook", statuses=[503, 503, 200])
    await harness.add_endpoint("/hook", retry_config=ONE_RETRY)
    [delivery] = (await harness.publish()).deliveries
    dead = await harness.run_until_settled(delivery.id)
    assert dead.state == "failed"

    async with console_for(harness.runtime) as console:
        await console.signed_in()
        # The dead letters page lists it with a checkbox
        listed = await console.client.get("/ui/dead-letters")
        assert listed.status_code == 200
        assert_page_is_safe(listed)
        assert rows_of(listed) == [delivery.id]
        row = soup(listed).find("tr", attrs={"data-delivery": delivery.id})
        assert isinstance(row, Tag)
        assert "HTTP 503" in text_of(row)
        assert stat(row, "attempts") == "2"
        box = row.find("input", attrs={"type": "checkbox"})
        assert isinstance(box, Tag)
        assert box["name"] == "delivery_id"
        form = box.find_parent("form")
        assert isinstance(form, Tag)
        assert form["action"] == "/ui/dead-letters/confirm"

        # When it is selected and "Replay selected" pressed, a confirmation asks first
        fields = [*hidden_fields(form), ("delivery_id", delivery.id), ("scope", "selected")]
        confirm = await post_form(console, "/ui/dead-letters/confirm", fields)
        assert confirm.status_code == 200
        assert_page_is_safe(confirm)
        assert stat(soup(confirm), "question") == "Replay 1 dead letter?"
        assert (await harness.delivery(delivery.id)).state == "failed"  # nothing done yet
        replay_form = soup(confirm).find("form", action="/ui/dead-letters/replay")
        assert isinstance(replay_form, Tag)
        carried = hidden_fields(replay_form)
        assert ("delivery_id", delivery.id) in carried
        assert ("scope", "selected") in carried

        # and confirming replays it
        harness.clock.advance(5)
        result = await post_form(console, "/ui/dead-letters/replay", carried)
        assert result.status_code == 200
        assert_page_is_safe(result)
        assert stat(soup(result), "replayed") == (
            "1 dead letter was replayed: it is pending again, due now."
        )
        assert "Nothing was skipped" in result.text

        # Then it is pending, due now, gone from the dead letters, and delivered by a worker
        replayed = await harness.delivery(delivery.id)
        assert (replayed.state, replayed.next_attempt_at) == ("pending", harness.clock.now())
        assert rows_of(await console.client.get("/ui/dead-letters")) == []
        assert await harness.run() == 1
        assert (await harness.delivery(delivery.id)).state == "succeeded"


async def test_replay_all_matching_counts_first_then_reports_what_it_skipped(
    api: Api, console: Console
) -> None:
    # Given dead letters: one old, then three since T of an active webhook and one of a
    # webhook that gets disabled, and one after U
    active = await api.create_webhook()
    disabled = await api.create_webhook()
    old = await _dead_letter(api, active["id"])
    api.clock.advance(3600)
    since = api.clock.now()
    recent = [await _dead_letter(api, active["id"]) for _ in range(2)]
    parked = await _dead_letter(api, disabled["id"])
    api.clock.advance(3600)
    until = api.clock.now()
    later = await _dead_letter(api, active["id"])
    assert (await api.client.post(f"/webhooks/{disabled['id']}/disable")).status_code == 200
    csrf = await console.signed_in()

    # The list filters by when they failed (at or after since, before until)
    window = {"since": iso(since), "until": iso(until)}
    listed = await console.client.get("/ui/dead-letters", params=window)
    assert listed.status_code == 200
    assert_page_is_safe(listed)
    assert rows_of(listed) == [parked.id, *[d.id for d in reversed(recent)]]
    # a time without an offset (what a datetime-local field sends) is read as UTC
    local = {"since": f"{since:%Y-%m-%dT%H:%M:%S}", "until": f"{until:%Y-%m-%dT%H:%M}"}
    assert rows_of(await console.client.get("/ui/dead-letters", params=local)) == rows_of(listed)
    form = soup(listed).find("form", action="/ui/dead-letters/confirm")
    assert isinstance(form, Tag)
    carried = dict(hidden_fields(form))
    assert set(carried) == {"csrf", "since", "until"}

    # When "Replay all matching" is pressed, the confirmation counts every match (a service
    # count, not the page) and says which would be skipped and why
    confirm = await console.client.post(
        "/ui/dead-letters/confirm", data={**carried, "scope": "all"}
    )
    assert confirm.status_code == 200
    assert_page_is_safe(confirm)
    page = soup(confirm)
    assert stat(page, "question") == "Replay 3 dead letters?"
    assert f"at or after {since:%Y-%m-%d %H:%M:%S} UTC" in stat(page, "scope")
    skipped = page.find("li", attrs={"data-reason": "endpoint_disabled"})
    assert isinstance(skipped, Tag)
    assert text_of(skipped) == "1: the webhook is disabled (enable it, then replay again)"
    replay_form = page.find("form", action="/ui/dead-letters/replay")
    assert isinstance(replay_form, Tag)
    button = replay_form.find("button")
    assert isinstance(button, Tag)
    assert button.get_text(strip=True) == "Replay 2 dead letters"
    fields = hidden_fields(replay_form)
    assert ("scope", "all") in fields
    assert ("csrf", csrf) in fields
    assert {name for name, _ in fields} == {"csrf", "scope", "since", "until"}

    # and confirming replays the active webhook's, and reports the skipped one in words
    result = await post_form(console, "/ui/dead-letters/replay", fields)
    assert result.status_code == 200
    assert_page_is_safe(result)
    shown = soup(result)
    assert (
        stat(shown, "replayed") == "2 dead letters were replayed: they are pending again, due now."
    )
    reason = shown.find("li", attrs={"data-reason": "endpoint_disabled"})
    assert isinstance(reason, Tag)
    assert text_of(reason).startswith("1: the webhook is disabled")
    assert shown.find("a", href="/ui/deliveries?state=pending") is not None
    for delivery in recent:
        assert await _state(api, delivery.id) == "pending"
    for delivery in (old, parked, later):
        assert await _state(api, delivery.id) == "failed"


async def test_replay_selected_counts_the_selection_and_skips_what_changed(
    api: Api, console: Console
) -> None:
    # Given three dead letters selected on the page; one is retried by hand meanwhile
    webhook = await api.create_webhook()
    chosen = [await _dead_letter(api, webhook["id"]) for _ in range(3)]
    untouched = await _dead_letter(api, webhook["id"])
    csrf = await console.signed_in()
    selection = [("delivery_id", d.id) for d in chosen]
    confirm = await post_form(
        console, "/ui/dead-letters/confirm", [("csrf", csrf), ("scope", "selected"), *selection]
    )
    assert stat(soup(confirm), "question") == "Replay 3 dead letters?"
    listed = soup(confirm).select(".dead-selection a")
    assert [a.get_text() for a in listed] == [d.id for d in chosen]
    assert (await api.client.post(f"/deliveries/{chosen[0].id}/retry")).status_code == 202

    # When the replay is confirmed
    result = await post_form(
        console, "/ui/dead-letters/replay", [("csrf", csrf), ("scope", "selected"), *selection]
    )

    # Then the two still dead are replayed, the other is reported as no longer a dead letter,
    # and the dead letter that was not selected stays
    assert result.status_code == 200
    page = soup(result)
    assert stat(page, "replayed").startswith("2 dead letters were replayed")
    reason = page.find("li", attrs={"data-reason": "not_dead_letter"})
    assert isinstance(reason, Tag)
    assert text_of(reason) == "1: no longer a dead letter (already replayed or retried meanwhile)"
    assert [await _state(api, d.id) for d in chosen] == ["pending"] * 3
    assert await _state(api, untouched.id) == "failed"


async def test_replay_forms_that_cannot_be_acted_on_come_back_to_the_list(
    api: Api, console: Console
) -> None:
    webhook = await api.create_webhook()
    dead = await _dead_letter(api, webhook["id"])
    csrf = await console.signed_in()

    cases = [
        ({"scope": "selected"}, 422, "Nothing was selected"),
        ({"scope": "selected", "delivery_id": XSS}, 422, "not a delivery id"),
        ({}, 422, "Choose Replay selected or Replay all matching"),
        ({"scope": "all", "since": "yesterday"}, 422, None),
        ({"scope": "all", "webhook_id": UNKNOWN["wh"]}, 404, None),
    ]
    for path in ("/ui/dead-letters/confirm", "/ui/dead-letters/replay"):
        for data, status, message in cases:
            response = await console.client.post(path, data={"csrf": csrf, **data})
            assert response.status_code == status, (path, data)
            assert_page_is_safe(response)
            if message is not None:
                notice = soup(response).find(attrs={"data-notice": "problem"})
                assert isinstance(notice, Tag), (path, data)
                assert message in notice.get_text(), (path, data)
                assert rows_of(response) == [dead.id]  # the list, as it was
            assert XSS not in response.text
    since_error = await console.client.post(
        "/ui/dead-letters/confirm", data={"csrf": csrf, "scope": "all", "since": "yesterday"}
    )
    assert "Failed since must be a date and time" in field_error(since_error, "dead-since")
    unknown = await console.client.post(
        "/ui/dead-letters/confirm", data={"csrf": csrf, "scope": "all", "webhook_id": UNKNOWN["wh"]}
    )
    assert field_error(unknown, "dead-webhook_id") == "Webhook id: no webhook has this id."
    assert await _state(api, dead.id) == "failed"


async def test_the_dead_letter_filter_keeps_the_apis_rules(api: Api, console: Console) -> None:
    webhook = await api.create_webhook()
    for _ in range(3):
        await _dead_letter(api, webhook["id"])
    await console.signed_in()

    # An until before since, a malformed time and id: each error next to its field, no rows
    response = await console.client.get(
        "/ui/dead-letters", params={"since": "2026-02-01T00:00:00Z", "until": "2026-01-01"}
    )
    assert response.status_code == 422
    assert_page_is_safe(response)
    assert field_error(response, "dead-until") == (
        "Failed before must not be earlier than Failed since."
    )
    bad = await console.client.get(
        "/ui/dead-letters", params={"since": "1969-12-31T23:00:00Z", "webhook_id": "nope"}
    )
    assert bad.status_code == 422
    assert "between 1970-01-01 and 9999-12-31" in field_error(bad, "dead-since")
    assert "must be a wh_ id" in field_error(bad, "dead-webhook_id")
    assert rows_of(bad) == []
    # Paging keeps the filter
    first = await console.client.get(
        "/ui/dead-letters", params={"webhook_id": webhook["id"], "limit": "2"}
    )
    link = next_link(first)
    assert link is not None
    assert parse_qs(urlsplit(link).query)["webhook_id"] == [webhook["id"]]
    assert len(rows_of(first)) == 2
    assert len(rows_of(await console.client.get(link))) == 1


async def test_the_pages_say_the_database_is_unavailable(tmp_path: Path) -> None:
    # Given a runtime whose PostgreSQL does not answer (nothing listens on port 1)
    settings = make_settings("postgresql://postgres@127.0.0.1:1/nothing", tmp_path / "data")
    async with (
        open_runtime(settings, clock=ManualClock(), resolver=FakeDns()) as runtime,
        console_for(runtime) as console,
    ):
        assert (await console.sign_in()).status_code == 303
        with capture_logs():
            pages = [
                await console.client.get("/ui/deliveries"),
                await console.client.get(f"/ui/deliveries/{UNKNOWN['dlv']}"),
                await console.client.get("/ui/dead-letters"),
            ]
            fragment = await console.client.get(
                f"/ui/deliveries/{UNKNOWN['dlv']}/live", headers=HTMX
            )
    for page in pages:
        assert page.status_code == 503, page.request.url
        assert page.headers["Retry-After"] == "5"
        assert_page_is_safe(page)
        assert "Database unavailable" in page.text
    # the fragment says so inside a section that keeps polling (the next poll may succeed)
    assert fragment.status_code == 503
    section = BeautifulSoup(fragment.text, "html.parser").find(id="delivery-live")
    assert isinstance(section, Tag)
    assert section["hx-trigger"] == "every 5s"
    assert "Database unavailable" in section.get_text()


def test_times_show_as_utc_with_a_relative_hint() -> None:
    from hookline.api.console.deliveries import relative_to

    now = ManualClock().now()
    ago = relative_to(now)
    assert ago(now - timedelta(minutes=3)) == "3 min ago"
    assert ago(now + timedelta(hours=1, minutes=2)) == "in 1 h 2 min"
    assert ago(now) == "just now"
    assert ago(None) == ""
