"""The operator console at /ui: sign-in, session cookie, CSRF, security headers, escaping, and
the overview's figures, read as a browser would (httpx + BeautifulSoup, no JavaScript).

``api``-based tests run on SQLite and PostgreSQL (SQL queue); the overview's figures are set up
by really delivering through the engine harness (SQLite + SQL queue, PostgreSQL + Redis); the
503 page runs against a PostgreSQL address where nothing listens.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from bs4 import BeautifulSoup, Tag
from sqlalchemy import event, select
from structlog.testing import capture_logs

from hookline.api.app import create_app
from hookline.api.console.routing import console_router
from hookline.clock import ManualClock
from hookline.errors import NotFound
from hookline.runtime import open_runtime
from hookline.storage.models import Delivery
from tests.integration.api.conftest import make_settings
from tests.integration.api.console_helpers import (
    LOGIN_COOKIE,
    PLACEHOLDER_PAGES,
    SESSION_COOKIE,
    SESSION_TTL_S,
    SLOW_RETRY,
    XSS,
    Console,
    assert_no_inline_code,
    assert_page_is_safe,
    assert_security_headers,
    console_for,
    cookie_header,
    cookies_set,
    mac,
    seed_failing_webhook,
    soup,
    stat,
)
from tests.integration.api.helpers import TOKEN, Api, FakeDns
from tests.integration.conftest import Harness

LIST_PAGES = (
    "/ui/webhooks",
    "/ui/webhooks/new",
    "/ui/deliveries",
    "/ui/dead-letters",
    "/ui/events",
)
"""Pages every signed-in person can open with no id (each also has its own test module)."""


# signing in ----------------------------------------------------------------------------------


async def test_every_page_sends_a_visitor_without_a_session_to_sign_in(console: Console) -> None:
    # Given no session, when any console page is asked for, it answers 303 to the sign-in page,
    # remembering the page asked for
    for path in ["/ui/", *PLACEHOLDER_PAGES, "/ui/webhooks/wh_x", "/ui/no-such-page"]:
        response = await console.client.get(path)
        assert response.status_code == 303, path
        expected = "/ui/login" if path == "/ui/" else f"/ui/login?next={path.replace('/', '%2F')}"
        assert response.headers["location"] == expected, path
        assert_security_headers(response)
    # /ui itself leads to the overview (and from there to sign in)
    root = await console.client.get("/ui")
    assert (root.status_code, root.headers["location"]) == (303, "/ui/")
    # A form post without a session goes to sign in too (not a 403)
    logout = await console.client.post("/ui/logout", data={"csrf": "x"})
    assert (logout.status_code, logout.headers["location"]) == (303, "/ui/login")
    # htmx polling without a session is told where to go instead of being redirected inside
    # the fragment
    fragment = await console.client.get("/ui/overview/stats", headers={"HX-Request": "true"})
    assert fragment.status_code == 401
    assert fragment.headers["HX-Redirect"] == "/ui/login"


async def test_the_sign_in_page_is_a_labelled_form_with_its_nonce_cookie(console: Console) -> None:
    response = await console.client.get("/ui/login")

    assert response.status_code == 200
    assert_page_is_safe(response)
    page = soup(response)
    field = page.find("input", attrs={"name": "token"})
    assert isinstance(field, Tag)
    assert field["type"] == "password"
    label = page.find("label", attrs={"for": field["id"]})
    assert isinstance(label, Tag)
    assert label.get_text(strip=True) == "API token"
    assert page.find("nav") is None  # no navigation before signing in
    nonce = cookies_set(response)[LOGIN_COOKIE]
    assert {"httponly", "samesite=strict", "path=/ui", "max-age=900"} <= nonce["flags"]
    form_nonce = page.find("input", attrs={"name": "csrf"})
    assert isinstance(form_nonce, Tag)
    assert form_nonce["value"] == nonce["value"]
    # A second visit keeps the same nonce (two open sign-in tabs both work)
    again = await console.client.get("/ui/login")
    assert cookies_set(again)[LOGIN_COOKIE]["value"] == nonce["value"]


async def test_a_wrong_token_is_refused_next_to_the_field_and_sets_no_session(
    console: Console,
) -> None:
    wrong = "not-the-token-0123456789"
    with capture_logs() as logs:
        response = await console.sign_in(wrong)

    # Then the form comes back with 401 and the error tied to the field
    assert response.status_code == 401
    assert_page_is_safe(response)
    page = soup(response)
    field = page.find("input", attrs={"name": "token"})
    assert isinstance(field, Tag)
    assert field.get("aria-invalid") == "true"
    error = page.find(id=field["aria-describedby"])
    assert isinstance(error, Tag)
    assert "not one of this server's API tokens" in error.get_text()
    assert error.find_parent(class_="field") is field.find_parent(class_="field")
    # The token is not echoed back, not logged, and no session cookie is set
    assert wrong not in response.text
    assert not field.get("value")
    assert wrong not in repr(logs)
    assert SESSION_COOKIE not in cookies_set(response)
    assert console.session_cookie is None
    assert (await console.client.get("/ui/")).status_code == 303
    # An empty field is refused the same way, with its own words
    empty = await console.sign_in("")
    assert empty.status_code == 401
    assert "Enter an API token" in empty.text


async def test_the_right_token_sets_an_httponly_strict_session_cookie(console: Console) -> None:
    with capture_logs() as logs:
        response = await console.sign_in()

    assert response.status_code == 303
    assert response.headers["location"] == "/ui/"
    assert_security_headers(response)
    cookies = cookies_set(response)
    session = cookies[SESSION_COOKIE]
    assert {"httponly", "samesite=strict", "path=/ui", f"max-age={SESSION_TTL_S}"} <= set(
        session["flags"]
    )
    assert "secure" not in session["flags"]  # plain http here
    # value = <expiry>.<HMAC-SHA256(token, "hookline-console:" + expiry)>, expiry 12 h ahead
    expiry, signature = session["value"].split(".")
    assert int(expiry) == int(console.clock.now().timestamp()) + SESSION_TTL_S
    assert signature == mac(TOKEN, f"hookline-console:{expiry}")
    assert TOKEN not in response.headers.get("set-cookie", "")
    assert TOKEN not in repr(logs)
    # the sign-in nonce is cleared, and the overview opens
    assert cookies[LOGIN_COOKIE]["flags"] >= {"max-age=0"}
    overview = await console.client.get("/ui/")
    assert overview.status_code == 200
    assert soup(overview).find("h1").get_text(strip=True) == "Overview"  # type: ignore[union-attr]


async def test_the_session_cookie_is_secure_when_the_request_came_over_https(api: Api) -> None:
    async with console_for(api.runtime, base_url="https://hookline.test") as console:
        login = await console.client.get("/ui/login")
        assert "secure" in cookies_set(login)[LOGIN_COOKIE]["flags"]
        response = await console.sign_in()

        assert response.status_code == 303
        assert "secure" in cookies_set(response)[SESSION_COOKIE]["flags"]
        assert (await console.client.get("/ui/")).status_code == 200


async def test_signing_in_returns_to_the_page_asked_for_but_never_to_another_site(
    console: Console,
) -> None:
    nonce = await console.login_form()
    cases = {
        "/ui/webhooks": "/ui/webhooks",
        "/ui/deliveries?state=failed": "/ui/deliveries?state=failed",
        "/ui/events?event_type=order.*": "/ui/events?event_type=order.*",  # a pattern search
        "https://evil.test/ui/": "/ui/",
        "//evil.test/ui/": "/ui/",
        "/ui//evil.test": "/ui/",
        "/\\evil.test": "/ui/",
        "/docs": "/ui/",  # not a console page
        "javascript:alert(1)": "/ui/",
    }
    for next_page, expected in cases.items():
        console.client.cookies.delete(SESSION_COOKIE)
        response = await console.client.post(
            "/ui/login", data={"csrf": nonce, "token": TOKEN, "next": next_page}
        )
        assert response.status_code == 303, next_page
        assert response.headers["location"] == expected, next_page
        console.client.cookies.set(LOGIN_COOKIE, nonce, domain="hookline.test", path="/ui")


async def test_the_sign_in_form_needs_its_own_nonce(console: Console) -> None:
    nonce = await console.login_form()

    # Without the nonce cookie (a cross-site post cannot send it), with a field that differs,
    # or without the field: a 403 page, and no session
    console.client.cookies.delete(LOGIN_COOKIE)
    no_cookie = await console.client.post("/ui/login", data={"csrf": nonce, "token": TOKEN})
    nonce = await console.login_form()
    mismatched = await console.client.post("/ui/login", data={"csrf": nonce[::-1], "token": TOKEN})
    no_field = await console.client.post("/ui/login", data={"token": TOKEN})

    for response in (no_cookie, mismatched, no_field):
        assert response.status_code == 403
        assert_page_is_safe(response)
        assert "sign-in form has expired" in response.text
        assert SESSION_COOKIE not in cookies_set(response)
    assert (await console.client.get("/ui/")).status_code == 303


async def test_forged_tampered_and_expired_session_cookies_are_refused(console: Console) -> None:
    # Given a real session cookie
    await console.signed_in()
    real = console.session_cookie
    assert real is not None
    console.client.cookies.clear()
    expiry, signature = real.split(".")
    later = str(int(expiry) + 3600)
    other_token = "another-token-0123456789"
    forged = {
        "signed with another token": f"{expiry}.{mac(other_token, f'hookline-console:{expiry}')}",
        "expiry moved": f"{later}.{signature}",
        "signature altered": f"{expiry}.{signature[:-1]}{'0' if signature[-1] != '0' else '1'}",
        "a bare MAC of the token": f"{expiry}.{mac(TOKEN, expiry)}",
        "not a session at all": "admin",
        "the token itself": TOKEN,
    }
    # When each is presented, the page sends the visitor to sign in
    for why, value in forged.items():
        response = await console.client.get("/ui/", headers=cookie_header(value))
        assert response.status_code == 303, why
    # The real one works until its 12 hours are up, not a second longer
    assert (await console.client.get("/ui/", headers=cookie_header(real))).status_code == 200
    console.clock.advance(SESSION_TTL_S - 1)
    assert (await console.client.get("/ui/", headers=cookie_header(real))).status_code == 200
    console.clock.advance(1)
    expired = await console.client.get("/ui/", headers=cookie_header(real))
    assert expired.status_code == 303


async def test_a_session_signed_by_any_configured_token_is_accepted(
    database_url: str, runtime_factory: Callable[[str], Any]
) -> None:
    other = "second-token-0123456789abcdef"
    async with (
        runtime_factory(database_url)(HOOKLINE_API_TOKENS=[TOKEN, other]) as runtime,
        console_for(runtime) as console,
    ):
        response = await console.sign_in(other)
        assert response.status_code == 303
        value = console.session_cookie
        assert value is not None
        expiry = value.split(".")[0]
        assert value == f"{expiry}.{mac(other, f'hookline-console:{expiry}')}"
        assert (await console.client.get("/ui/")).status_code == 200


# CSRF and signing out ------------------------------------------------------------------------


async def test_a_form_post_needs_the_sessions_csrf_token(console: Console) -> None:
    # Given a signed-in browser
    csrf = await console.signed_in()

    # When it posts the sign-out form without the token, or with a wrong one, it is refused
    # with a 403 page, and the session stays
    missing = await console.client.post("/ui/logout", data={})
    wrong = await console.client.post("/ui/logout", data={"csrf": "0" * 64})
    for response in (missing, wrong):
        assert response.status_code == 403
        assert_page_is_safe(response)
        assert "Form refused" in response.text
        assert SESSION_COOKIE not in cookies_set(response)
    assert (await console.client.get("/ui/")).status_code == 200

    # A token of another session (the same token, signed in an hour later) does not pass
    console.clock.advance(3600)
    async with console_for(console.runtime) as other:
        other_csrf = await other.signed_in()
    assert other_csrf != csrf
    stale = await console.client.post("/ui/logout", data={"csrf": other_csrf})
    assert stale.status_code == 403

    # With the right one it works: the cookie is cleared and the next page asks to sign in
    response = await console.client.post("/ui/logout", data={"csrf": csrf})
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login"
    cleared = cookies_set(response)[SESSION_COOKIE]
    assert cleared["value"] == ""
    assert {"max-age=0", "path=/ui", "httponly", "samesite=strict"} <= cleared["flags"]
    assert console.session_cookie is None
    assert (await console.client.get("/ui/")).status_code == 303


async def test_htmx_posts_may_send_the_csrf_token_as_a_header(console: Console) -> None:
    csrf = await console.signed_in()

    wrong = await console.client.post("/ui/logout", headers={"X-CSRF-Token": "nope"})
    right = await console.client.post("/ui/logout", headers={"X-CSRF-Token": csrf})

    assert wrong.status_code == 403
    assert right.status_code == 303


# headers, markup, escaping -------------------------------------------------------------------


async def test_every_page_has_the_policy_headers_and_no_inline_script_or_style(
    api: Api, console: Console
) -> None:
    # Given a signed-in browser and some data, so the overview shows its tables and chart
    await seed_failing_webhook(api, description="a webhook")
    csrf = await console.signed_in()
    htmx = {"HX-Request": "true"}

    # When every page is opened (and the error pages provoked), each has the headers, no
    # inline code, labelled fields and CSRF in every post form
    pages = [
        await console.client.get("/ui/"),
        await console.client.get("/ui/overview/stats", headers=htmx),
        *[await console.client.get(path) for path in (*PLACEHOLDER_PAGES, *LIST_PAGES)],
        await console.client.get("/ui/webhooks/wh_x"),
        await console.client.get("/ui/no-such-page"),
        await console.client.post("/ui/logout", data={"csrf": "wrong"}),
    ]
    expected = [200, 200, *[200] * (len(PLACEHOLDER_PAGES) + len(LIST_PAGES)), 404, 404, 403]
    assert [page.status_code for page in pages] == expected
    for page in pages:
        assert_page_is_safe(page)
    # The framework's own answers under /ui carry the headers too
    assert_security_headers(await console.client.put("/ui/login"))
    # Signing out keeps them; the sign-in page after it too
    out = await console.client.post("/ui/logout", data={"csrf": csrf})
    assert_security_headers(out)
    assert_page_is_safe(await console.client.get("/ui/login"))
    # Outside /ui nothing changes
    assert "content-security-policy" not in (await api.client.get("/webhooks")).headers


async def test_a_script_in_a_webhook_renders_as_text(api: Api, console: Console) -> None:
    # Given a failing webhook whose URL path and description hold a script
    endpoint = await seed_failing_webhook(
        api, url=f"https://example.com/{XSS}", description=f"orders {XSS}"
    )
    await console.signed_in()

    # When the overview (and its fragment) is rendered
    for response in (
        await console.client.get("/ui/"),
        await console.client.get("/ui/overview/stats"),
    ):
        # Then the script is text: escaped in the markup, never an element
        assert response.status_code == 200
        assert XSS not in response.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
        page = soup(response)
        assert [script.get("src") for script in page.find_all("script")] in (
            [],
            ["/static/console/htmx.min.js"],
        )
        row = page.find("tr", attrs={"data-webhook": endpoint.id})
        assert isinstance(row, Tag)
        link = row.find("a", class_="webhook-url")
        assert isinstance(link, Tag)
        assert link.get_text() == f"https://example.com/{XSS}"
        assert link["href"] == f"/ui/webhooks/{endpoint.id}"
        description = row.find(class_="description")
        assert isinstance(description, Tag)
        assert description.get_text() == f"orders {XSS}"
        assert_no_inline_code(response.text, "overview")


async def test_the_vendored_assets_are_served_from_the_package(console: Console) -> None:
    for path, kind in {
        "/static/console/htmx.min.js": "javascript",
        "/static/console/console.css": "text/css",
    }.items():
        response = await console.client.get(path)
        assert response.status_code == 200, path
        assert kind in response.headers["content-type"], path
    css = (await console.client.get("/static/console/console.css")).text
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", css), "the stylesheet loads nothing remote"
    page = await console.client.get("/ui/login")
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text), "pages load nothing remote"


# the overview --------------------------------------------------------------------------------


async def test_a_fresh_install_shows_the_empty_state_with_how_to_start(
    api: Api, console: Console
) -> None:
    await console.signed_in()

    # Given no webhook and no delivery, the overview says so and how to create a webhook
    response = await console.client.get("/ui/")
    assert response.status_code == 200
    assert_page_is_safe(response)
    page = soup(response)
    empty = page.find("section", class_="empty-state")
    assert isinstance(empty, Tag)
    text = " ".join(empty.get_text().split())
    assert "No deliveries yet" in text
    assert "no webhook yet" in text
    assert "curl -X POST http://hookline.test/webhooks" in text
    assert page.find("table") is None
    assert page.find("svg") is None

    # Given a webhook but still no delivery, it says to publish an event
    await api.create_webhook()
    text = " ".join(soup(await console.client.get("/ui/overview/stats")).get_text().split())
    assert "No deliveries yet" in text
    assert "1 webhook wait for events" in text
    assert "POST /events" in text


async def test_the_page_polls_its_figures_and_the_fragment_is_the_figures_alone(
    api: Api, console: Console
) -> None:
    await seed_failing_webhook(api)
    await console.signed_in()

    page = soup(await console.client.get("/ui/"))
    container = page.find(id="overview-stats")
    assert isinstance(container, Tag)
    assert container["hx-get"] == "/ui/overview/stats"
    assert container["hx-trigger"] == "every 10s"
    assert container.find(attrs={"data-stat": "failed-24h"}) is not None  # there without JS
    assert page.find("script", attrs={"src": "/static/console/htmx.min.js"}) is not None
    config = page.find("meta", attrs={"name": "htmx-config"})
    assert isinstance(config, Tag)
    assert '"includeIndicatorStyles":false' in str(config["content"])

    fragment = await console.client.get("/ui/overview/stats", headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert_security_headers(fragment)
    assert "<html" not in fragment.text
    assert "<nav" not in fragment.text
    assert stat(BeautifulSoup(fragment.text, "html.parser"), "retrying-24h") == "1"


async def test_the_overview_shows_what_the_engine_did(harness: Harness) -> None:
    # Given webhooks on the loopback receiver: one that accepts, two that are unavailable
    # (retried; the slow one waits 10 h between attempts), one that refuses (dead letter) and
    # one that is gone (dead letter, webhook disabled)
    clock, receiver = harness.clock, harness.receiver
    for path, status in {
        "/ok": 200,
        "/flaky": 503,
        "/slow": 503,
        "/bad": 400,
        "/gone": 410,
    }.items():
        receiver.on(path, statuses=[status])
    ok = await harness.add_endpoint("/ok", event_types=["a.ok"])
    flaky = await harness.add_endpoint("/flaky", event_types=["b.flaky"], description="flaky")
    slow = await harness.add_endpoint("/slow", event_types=["e.slow"], retry_config=SLOW_RETRY)
    bad = await harness.add_endpoint("/bad", event_types=["c.bad"], description="refuses")
    gone = await harness.add_endpoint("/gone", event_types=["d.gone"])
    assert ok

    # When, 3 h 40 min ago, two events succeed, one is refused and one is retried (in 10 h)
    start = clock.now()
    for event_type in ("a.ok", "a.ok", "c.bad", "e.slow"):
        await harness.publish(event_type)
    assert await harness.run() == 4
    clock.advance(3 * 3600 + 30 * 60)
    # and 10 min ago one succeeds, one is retried, two are refused and one meets a gone endpoint
    for event_type in ("a.ok", "b.flaky", "c.bad", "c.bad", "d.gone"):
        await harness.publish(event_type)
    assert await harness.run() == 5
    clock.advance(10 * 60)  # the retry is due by now (base delay 120 s, jitter up to half)
    [retrying] = [
        d for d in await _deliveries(harness) if d.state == "retrying" and d.endpoint_id == flaky
    ]
    assert retrying.next_attempt_at is not None
    assert retrying.next_attempt_at <= clock.now()

    # Then the overview shows exactly that
    async with console_for(harness.runtime) as console:
        await console.signed_in()
        response = await console.client.get("/ui/")
    assert response.status_code == 200
    assert_page_is_safe(response)
    page = soup(response)
    figures = {
        name: stat(page, name)
        for name in [
            *(f"{outcome}-{window}" for outcome in ("succeeded", "retrying", "failed")
              for window in ("1h", "24h")),
            "success-rate-1h", "success-rate-24h", "queue-depth", "due", "oldest-due-age",
            "dead-letters", "disabled",
        ]
    }  # fmt: skip
    waited = int((clock.now() - retrying.next_attempt_at).total_seconds())
    minutes, seconds = divmod(waited, 60)
    assert figures == {
        "succeeded-1h": "1",
        "succeeded-24h": "3",
        "retrying-1h": "1",
        "retrying-24h": "2",
        "failed-1h": "3",
        "failed-24h": "4",
        "success-rate-1h": "25.0%",
        "success-rate-24h": "42.9%",
        "queue-depth": "2",
        "due": "1",
        "oldest-due-age": f"{minutes} min" + (f" {seconds} s" if seconds else ""),
        "dead-letters": "4",
        "disabled": "1 gone (410)",
    }
    # the webhooks failing most: the refusing one first, then those with one failure each
    rows = page.select("table.failing tbody tr")
    assert [row["data-webhook"] for row in rows] == [bad, *sorted([flaky, slow, gone])]
    assert [stat(row, "failed-attempts") for row in rows] == ["3", "1", "1", "1"]
    assert "refuses" in rows[0].get_text()
    statuses = {row["data-webhook"]: " ".join(row.get_text().split()) for row in rows}
    assert "disabled: gone (410)" in statuses[gone]
    assert "failing since" in statuses[flaky]
    # and the chart: one bar per hour counted back from now, the events of 3 h 40 min ago in
    # the 21st (from now - 4 h to now - 3 h), the last hour's in the last
    bars = page.select("svg g.bar")
    assert len(bars) == 24
    titles = [bar.title.get_text() if bar.title else "" for bar in bars]
    now = clock.now()
    assert now - start == timedelta(hours=3, minutes=40)
    hour_20 = f"{now - timedelta(hours=4):%H:%M}\u2013{now - timedelta(hours=3):%H:%M} UTC"
    assert titles[20] == f"{hour_20}: 2 succeeded, 1 failed"
    assert titles[23].endswith(": 1 succeeded, 3 failed"), titles[23]
    assert all(title.endswith(": 0 succeeded, 0 failed") for title in titles[:20] + titles[21:23])
    assert bars[20].find("rect", class_="bar-failed") is not None
    assert bars[0].find("rect") is None  # an empty hour draws nothing


async def _deliveries(harness: Harness) -> list[Delivery]:
    async with harness.runtime.sessions() as session:
        return list((await session.execute(select(Delivery))).scalars())


async def test_the_overview_costs_the_same_statements_however_much_data(api: Api) -> None:
    # Given a database with one delivery, then with many more deliveries and attempts
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    async def count_statements() -> int:
        statements.clear()
        event.listen(api.runtime.engine.sync_engine, "before_cursor_execute", record)
        try:
            await api.runtime.console.overview()
        finally:
            event.remove(api.runtime.engine.sync_engine, "before_cursor_execute", record)
        return len(statements)

    await seed_failing_webhook(api)
    few = await count_statements()
    for _ in range(3):
        endpoint = await seed_failing_webhook(api)
        for state in ("succeeded", "failed", "retrying"):
            delivery = await api.seed_delivery(
                webhook_id=endpoint.id, state=state, completed_at=api.clock.now()
            )
            await api.seed_attempt(delivery_id=delivery.id, status_code=502)

    # When the overview is read, it runs the same fixed number of statements
    assert await count_statements() == few
    assert few <= 9, statements  # 8 reads + the SQL queue's depth


async def test_the_overview_answers_503_when_the_database_is_gone(tmp_path: Path) -> None:
    # Given a runtime whose PostgreSQL does not answer (nothing listens on port 1)
    settings = make_settings("postgresql://postgres@127.0.0.1:1/nothing", tmp_path / "data")
    async with (
        open_runtime(settings, clock=ManualClock(), resolver=FakeDns()) as runtime,
        console_for(runtime) as console,
    ):
        # signing in needs no database
        assert (await console.sign_in()).status_code == 303

        # When the overview is opened, it says the database is unavailable: 503, not 500
        with capture_logs():
            page = await console.client.get("/ui/")
            fragment = await console.client.get(
                "/ui/overview/stats", headers={"HX-Request": "true"}
            )
        assert page.status_code == 503
        assert page.headers["Retry-After"] == "5"
        assert_page_is_safe(page)
        parsed = soup(page)
        assert parsed.find("nav") is not None  # still the console's layout, signed in
        assert "Database unavailable" in parsed.get_text()
        assert parsed.find(id="overview-stats") is not None  # polling goes on
        # and the fragment is the notice alone (htmx swaps a 503 in)
        assert fragment.status_code == 503
        assert_security_headers(fragment)
        assert "Database unavailable" in fragment.text
        assert "<nav" not in fragment.text


async def test_console_routes_turn_outages_and_unknown_ids_into_pages(api: Api) -> None:
    # Given console routes (as later pages add them) that raise what services raise
    app = create_app(api.runtime)
    router = console_router()

    async def outage() -> None:
        raise ConnectionRefusedError("database refused the connection")

    async def unknown() -> None:
        raise NotFound("webhook", "wh_00000000000000000000000000")

    async def bug() -> None:
        raise RuntimeError("a bug")

    for path, handler in {"/outage": outage, "/unknown": unknown, "/bug": bug}.items():
        router.add_api_route(path, handler, methods=["POST"])
    app.include_router(router, prefix="/ui", include_in_schema=False)

    async with console_for(api.runtime, app=app) as console:
        with capture_logs():
            outage_page = await console.client.post("/ui/outage")
            unknown_page = await console.client.post("/ui/unknown")
            bug_page = await console.client.post("/ui/bug")
        notice = await console.client.post("/ui/outage", headers={"HX-Request": "true"})

    # Then an outage is the 503 page, an unknown id the 404 page, a bug stays a 500
    assert outage_page.status_code == 503
    assert outage_page.headers["Retry-After"] == "5"
    assert "Database unavailable" in outage_page.text
    assert unknown_page.status_code == 404
    assert "wh_00000000000000000000000000" in unknown_page.text
    for page in (outage_page, unknown_page):
        assert_page_is_safe(page)
    assert bug_page.status_code == 500
    # (an htmx request gets the notice alone)
    assert notice.status_code == 503
    assert "<html" not in notice.text
    assert_no_inline_code(notice.text, "notice")
