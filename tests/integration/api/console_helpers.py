"""What the console's tests share: a browser-like client, the checks every page must pass,
and seeds. The ``console`` fixture is in ``conftest.py``."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any

import httpx
from bs4 import BeautifulSoup, Tag
from fastapi import FastAPI

from hookline.api.app import create_app
from hookline.clock import ManualClock
from hookline.runtime import Runtime
from hookline.storage.models import Endpoint
from tests import factories
from tests.integration.api.conftest import BASE_URL
from tests.integration.api.helpers import TOKEN, Api

SESSION_COOKIE = "hookline_console"
LOGIN_COOKIE = "hookline_console_login"
SESSION_TTL_S = 12 * 3600
XSS = "<script>alert(1)</script>"
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
SLOW_RETRY = {
    "base_delay": 36000,
    "max_delay": 36000,
    "max_retry_duration": 86400,
    "jitter": "none",
}
"""A retry config whose first retry comes 10 hours after the first attempt."""
PLACEHOLDER_PAGES: list[str] = []


# helpers -----------------------------------------------------------------------------------


def soup(response: httpx.Response) -> BeautifulSoup:
    return BeautifulSoup(response.text, "html.parser")


def cookies_set(response: httpx.Response) -> dict[str, dict[str, Any]]:
    """Every ``Set-Cookie`` of ``response``: name → {"value": ..., attribute: value}."""
    found: dict[str, dict[str, Any]] = {}
    for header in response.headers.get_list("set-cookie"):
        parsed: SimpleCookie = SimpleCookie()
        parsed.load(header)
        for name, morsel in parsed.items():
            attrs: dict[str, Any] = {"value": morsel.value}
            attrs.update({key: value for key, value in morsel.items() if value})
            attrs["flags"] = {part.strip().lower() for part in header.split(";")[1:]}
            found[name] = attrs
    return found


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (response.request.url, name)


def assert_no_inline_code(html: str, where: str) -> None:
    """No inline script, no inline style, no event-handler attribute anywhere in ``html``."""
    page = BeautifulSoup(html, "html.parser")
    for script in page.find_all("script"):
        assert script.get("src"), f"{where}: inline <script>"
        assert not script.get_text(strip=True), f"{where}: <script src> with a body"
    assert not page.find_all("style"), f"{where}: <style> element"
    for element in page.find_all(True):
        for attribute in element.attrs:
            assert attribute.lower() != "style", f"{where}: style= on <{element.name}>"
            assert not attribute.lower().startswith("on"), (
                f"{where}: {attribute}= on <{element.name}>"
            )
        for attribute in ("href", "src", "action"):
            value = element.get(attribute)
            if isinstance(value, str):
                assert not value.strip().lower().startswith("javascript:"), where


def assert_forms_are_safe(html: str, where: str) -> None:
    """Every field has a label, and every POST form carries a non-empty ``csrf`` field."""
    page = BeautifulSoup(html, "html.parser")
    for field in page.find_all(["input", "select", "textarea"]):
        if field.get("type") == "hidden":
            continue
        field_id = field.get("id")
        assert field_id, f"{where}: a field without an id"
        assert page.find("label", attrs={"for": field_id}), f"{where}: {field_id} has no label"
    for form in page.find_all("form"):
        if str(form.get("method", "get")).lower() == "post":
            csrf = form.find("input", attrs={"name": "csrf", "type": "hidden"})
            assert isinstance(csrf, Tag), f"{where}: POST form without csrf"
            assert csrf.get("value"), f"{where}: POST form with an empty csrf"


def assert_page_is_safe(response: httpx.Response) -> None:
    where = f"{response.request.method} {response.request.url.path}"
    assert_security_headers(response)
    assert response.headers["content-type"].startswith("text/html"), where
    assert_no_inline_code(response.text, where)
    assert_forms_are_safe(response.text, where)


def stat(page: Tag, name: str) -> str:
    cell = page.find(attrs={"data-stat": name})
    assert isinstance(cell, Tag), f"no data-stat={name}"
    return " ".join(cell.get_text().split())


@dataclass
class Console:
    """A browser-like client of the console (no bearer token; cookies kept)."""

    client: httpx.AsyncClient
    runtime: Runtime

    @property
    def clock(self) -> ManualClock:
        assert isinstance(self.runtime.clock, ManualClock)
        return self.runtime.clock

    async def login_form(self) -> str:
        """Open the sign-in page; returns the nonce of its form."""
        response = await self.client.get("/ui/login")
        assert response.status_code == 200, response.text
        field = soup(response).find("input", attrs={"name": "csrf"})
        assert isinstance(field, Tag)
        return str(field["value"])

    async def sign_in(self, token: str = TOKEN, **extra: str) -> httpx.Response:
        nonce = await self.login_form()
        return await self.client.post("/ui/login", data={"csrf": nonce, "token": token, **extra})

    async def signed_in(self) -> str:
        """Sign in with the right token; returns the session's CSRF token."""
        response = await self.sign_in()
        assert response.status_code == 303, response.text
        return await self.csrf()

    async def csrf(self) -> str:
        page = await self.client.get("/ui/")
        assert page.status_code in {200, 503}, page.text
        field = soup(page).select_one("form.sign-out input[name=csrf]")
        assert isinstance(field, Tag)
        return str(field["value"])

    @property
    def session_cookie(self) -> str | None:
        return self.client.cookies.get(SESSION_COOKIE)


@asynccontextmanager
async def console_for(
    runtime: Runtime, *, base_url: str = BASE_URL, app: FastAPI | None = None
) -> AsyncIterator[Console]:
    transport = httpx.ASGITransport(app=app or create_app(runtime), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
        yield Console(client=client, runtime=runtime)


def mac(token: str, message: str) -> str:
    return hmac.new(token.encode(), message.encode(), hashlib.sha256).hexdigest()


def cookie_header(value: str) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={value}"}


async def seed_failing_webhook(api: Api, **columns: Any) -> Endpoint:
    """A webhook with one delivery whose only attempt (now) got a 500."""
    async with api.runtime.sessions.begin() as session:
        endpoint = await factories.make_endpoint(session, now=api.clock.now(), **columns)
    delivery = await api.seed_delivery(webhook_id=endpoint.id, state="retrying", attempt_number=1)
    await api.seed_attempt(delivery_id=delivery.id, status_code=500)
    return endpoint
