"""The console in a real browser: headless Chromium (Debian's ``chromium`` + ``chromedriver``,
driven by selenium) against a real ``hookline serve`` and a loopback receiver, used as a person
would: fields found by their labels, buttons and links by their words.

``test_sign_in_overview_and_events``: sign in, watch the overview's figures update themselves
(htmx, under the console's CSP), search the events by pattern with the keyboard, see a refused
pattern explained next to its field, open an event by id, read its payload and deliveries, and
check the pages at 390 px.

``test_retry_dead_letter_and_replay_in_the_browser``: the issue's whole flow: sign in, create a
webhook whose receiver fails (max_retries 1, base_delay 1, jitter none), publish an event through
the JSON API (the console has no publish form), watch its delivery retrying, then in the dead
letters, fix the receiver, replay it from the dead-letters page and see it succeed. The failing
receiver answers ``Retry-After: RETRY_AFTER_S`` so the delivery stays ``retrying`` long enough
for a loaded machine's browser to see it (the second failure then dead-letters it).

Each step leaves a screenshot (and the page's HTML when it fails) in the artifact folder:
``$HOOKLINE_BROWSER_ARTIFACTS/<test>`` or a temporary one, printed at the start; a failing step
fails the test naming its screenshot. A missing ``chromium`` or ``chromedriver`` is a failure,
not a skip. The browser, chromedriver, the server and the receiver are stopped on every path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from tests.e2e.api_server import API_TOKEN, STARTUP_TIMEOUT_S, HooklineServer, running_hookline
from tests.receiver import Receiver, RecordedRequest

pytestmark = pytest.mark.e2e

T = TypeVar("T")

PAGE_WAIT_S: Final = 90.0
"""Longest a page, or something on it, may take to show (a loaded 2-core machine)."""
DELIVERY_WAIT_S: Final = 180.0
"""Longest the server may take to move a delivery on (attempts, retries, a replay)."""
LIVE_WAIT_S: Final = 90.0
"""Longest the overview's self-refreshing figures may take to show a new delivery (it polls
every 10 s; the figures may be cached a little longer)."""
RETRY_AFTER_S: Final = 45
"""How long the failing receiver asks to wait before the retry: the delivery is ``retrying``
that long, long enough for the browser to see it."""
REFRESH_EVERY_S: Final = 2.0
"""How often a wait that reloads the page reloads it."""
TEST_TIMEOUT_S: Final = STARTUP_TIMEOUT_S + 720
"""Start-up, then every wait of the longer test with room to spare."""
WIDE: Final = (1280, 1000)
PHONE: Final = (390, 844)
CHROMIUM_FLAGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--force-device-scale-factor=1",
    # Nothing but the loopback server and receiver resolves: the console needs no internet.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
)
SERVER_ENV: Final = {
    "ALLOWED_NETWORKS": "127.0.0.1/32",  # the receiver lives on loopback
    "RETRY_WORKER_POLL_INTERVAL": "0.2",
}
QUICK_RETRIES: Final = {"Max retries": "1", "Base delay": "1"}
QUICK_JITTER: Final = "none"


# tools -----------------------------------------------------------------------------------------


def required_tool(name: str, package: str) -> str:
    """The path of ``name``; a failure (never a skip) when it is not installed."""
    path = shutil.which(name)
    assert path, (
        f"{name} is missing; the console's browser tests need Debian's {package}: "
        f"apt-get install -y --no-install-recommends {package}"
    )
    return path


def artifacts_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """Where screenshots go: ``$HOOKLINE_BROWSER_ARTIFACTS/<test>`` or under ``tmp_path``."""
    root = os.environ.get("HOOKLINE_BROWSER_ARTIFACTS")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    folder = Path(root) / name if root else tmp_path / "browser-artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nbrowser artifacts of {request.node.name}: {folder}")
    return folder


@contextlib.contextmanager
def chromium(folder: Path, *, size: tuple[int, int] = WIDE) -> Iterator[WebDriver]:
    """A headless Chromium with a fresh profile, driven through chromedriver; quit (browser and
    chromedriver stopped) on every way out."""
    options = Options()
    options.binary_location = required_tool("chromium", "chromium")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={folder / 'chromium-profile'}")
    options.add_argument(f"--window-size={size[0]},{size[1]}")
    service = Service(
        executable_path=required_tool("chromedriver", "chromium-driver"),
        log_output=str(folder / "chromedriver.log"),
    )
    driver = webdriver.Chrome(options=options, service=service)  # quits itself if this fails
    try:
        driver.set_page_load_timeout(PAGE_WAIT_S)
        driver.set_script_timeout(PAGE_WAIT_S)
        yield driver
    finally:
        driver.quit()


class ThreadedReceiver:
    """``tests.receiver.Receiver`` on an event loop in a thread of its own, so it answers the
    server while selenium blocks this thread. Every call goes through that loop."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="receiver", daemon=True)
        self._receiver: Receiver | None = None

    def __enter__(self) -> ThreadedReceiver:
        self._thread.start()
        try:
            self._receiver = self._run(self._start())
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._receiver is not None:
                self._run(self._receiver.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            if not self._thread.is_alive():
                self._loop.close()

    async def _start(self) -> Receiver:
        receiver = Receiver()
        await receiver.start()
        return receiver

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout_s: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout_s)

    @property
    def receiver(self) -> Receiver:
        assert self._receiver is not None
        return self._receiver

    def url_for(self, path: str) -> str:
        return self.receiver.url_for(path)

    def on(self, path: str, **behaviour: Any) -> None:
        async def set_it() -> None:
            self.receiver.on(path, **behaviour)

        self._run(set_it())

    def requests_to(self, path: str) -> list[RecordedRequest]:
        async def read() -> list[RecordedRequest]:
            return self.receiver.requests_to(path)

        return self._run(read())


# a person at the browser -------------------------------------------------------------------------


class StepFailed(AssertionError):
    """A step of a browser test failed; the message names its screenshot."""


class Person:
    """A person using the console in ``driver``: finds things by their words, waits like someone
    who does not give up quickly, and leaves a screenshot after every step."""

    def __init__(self, driver: WebDriver, server: HooklineServer, artifacts: Path) -> None:
        self.driver = driver
        self.server = server
        self.artifacts = artifacts
        self.steps_done: list[str] = []
        self.screenshots: list[Path] = []

    # steps

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """One step: a screenshot after it; if it fails, a screenshot and the page's HTML, and a
        failure naming them, the steps that passed and the server's log tail."""
        number = len(self.steps_done) + 1
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        try:
            yield
        except Exception as exc:
            shot = self.screenshot(f"{number:02d}-{slug}-FAILED")
            html = self.artifacts / f"{number:02d}-{slug}-FAILED.html"
            with contextlib.suppress(WebDriverException):
                html.write_text(self.driver.page_source)
            tail = "\n".join(self.server.log().splitlines()[-30:])
            raise StepFailed(
                f"step {number} {name!r} failed: {type(exc).__name__}: {exc}\n"
                f"screenshot: {shot}\npage: {html} (at {self._url()})\n"
                f"steps that passed: {self.steps_done or 'none'}\n"
                f"artifacts: {self.artifacts}\nserver log tail:\n{tail}"
            ) from exc
        self.screenshot(f"{number:02d}-{slug}")
        self.steps_done.append(name)

    def screenshot(self, name: str) -> Path:
        path = self.artifacts / f"{name}.png"
        with contextlib.suppress(WebDriverException):
            if self.driver.save_screenshot(str(path)):
                self.screenshots.append(path)
        return path

    def _url(self) -> str:
        try:
            return self.driver.current_url
        except WebDriverException:
            return "?"

    # waiting

    def wait_for(
        self, condition: Callable[[WebDriver], T], what: str, *, timeout_s: float = PAGE_WAIT_S
    ) -> T:
        """``condition``'s first truthy answer; a ``TimeoutException`` saying ``what`` after
        ``timeout_s`` (elements missing or replaced meanwhile are waited through)."""
        wait = WebDriverWait(
            self.driver,
            timeout_s,
            poll_frequency=0.25,
            ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
        )
        return wait.until(condition, f"{what} (waited {timeout_s:.0f} s)")

    def wait_reloading(
        self, check: Callable[[WebDriver], T], what: str, *, timeout_s: float = DELIVERY_WAIT_S
    ) -> T:
        """Like ``wait_for``, reloading the page every ``REFRESH_EVERY_S`` while ``check`` is
        not met: for pages that change because the server moved on."""
        last_reload = time.monotonic()

        def reloaded_check(driver: WebDriver) -> T | None:
            nonlocal last_reload
            found: T | None = None
            with contextlib.suppress(NoSuchElementException, StaleElementReferenceException):
                found = check(driver)
            if not found and time.monotonic() - last_reload >= REFRESH_EVERY_S:
                driver.refresh()
                last_reload = time.monotonic()
            return found

        result = self.wait_for(reloaded_check, what, timeout_s=timeout_s)
        assert result is not None
        return result

    def wait_for_heading(self, text: str | re.Pattern[str]) -> None:
        def shown(driver: WebDriver) -> bool:
            heading = " ".join(driver.find_element(By.TAG_NAME, "h1").text.split())
            return heading == text if isinstance(text, str) else bool(text.search(heading))

        self.wait_for(shown, f"a page headed {text!r}")

    # reading the page

    def open(self, path: str) -> None:
        self.driver.get(self.server.base_url + path)

    @property
    def path(self) -> str:
        return urlsplit(self.driver.current_url).path

    def field(self, label: str) -> WebElement:
        """The field whose <label> reads ``label`` (its own words, before a unit in a span)."""
        found = self.driver.find_element(
            By.XPATH,
            f"//label[normalize-space()={_xpath_text(label)} "
            f"or normalize-space(text()[1])={_xpath_text(label)}]",
        )
        target = found.get_attribute("for")
        assert target, f"the label {label!r} names no field"
        return self.driver.find_element(By.ID, target)

    def fill(self, label: str, value: str) -> None:
        element = self.field(label)
        element.clear()
        element.send_keys(value)

    def choose(self, label: str, option: str) -> None:
        Select(self.field(label)).select_by_visible_text(option)

    def button(self, text: str) -> WebElement:
        return self.driver.find_element(
            By.XPATH, f"//main//button[normalize-space()={_xpath_text(text)}]"
        )

    def press(self, text: str) -> None:
        self.button(text).click()

    def nav(self, text: str) -> None:
        """Follow the main navigation's link ``text``."""
        self.driver.find_element(
            By.XPATH, f"//nav[@aria-label='Main']//a[normalize-space()={_xpath_text(text)}]"
        ).click()

    def link(self, text: str) -> WebElement:
        return self.driver.find_element(
            By.XPATH, f"//main//a[normalize-space()={_xpath_text(text)}]"
        )

    def error_of(self, label: str) -> str:
        """The error shown next to the field ``label`` (through its aria-describedby)."""
        element = self.field(label)
        assert element.get_attribute("aria-invalid") == "true", f"{label} is not marked invalid"
        texts = []
        for ref in (element.get_attribute("aria-describedby") or "").split():
            described = self.driver.find_element(By.ID, ref)
            if "field-error" in (described.get_attribute("class") or ""):
                texts.append(described.text)
        return " ".join(texts)

    def main_text(self) -> str:
        return " ".join(self.driver.find_element(By.TAG_NAME, "main").text.split())

    def fits_width(self) -> bool:
        """Whether the page needs no sideways scrolling at the window's width."""
        width = self.driver.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth];"
        )
        return bool(width[0] <= width[1])

    def sign_in(self, token: str = API_TOKEN) -> None:
        self.open("/ui/")
        self.wait_for_heading("Sign in")
        self.fill("API token", token)
        self.press("Sign in")
        self.wait_for_heading("Overview")


def _xpath_text(text: str) -> str:
    """``text`` as an XPath string literal."""
    if "'" not in text:
        return f"'{text}'"
    return 'concat("' + '", "\'", "'.join(text.split("'")) + '")'


def badge(driver: WebDriver, delivery_id: str) -> WebElement:
    """The state badge (a link) an event page shows for ``delivery_id``."""
    return driver.find_element(
        By.XPATH,
        f"//tr[.//a[normalize-space()='{delivery_id}']]//a[contains(@class, 'badge')]",
    )


def badge_state(driver: WebDriver, delivery_id: str) -> str:
    """The state an event page's badge shows for ``delivery_id`` (its words)."""
    return " ".join(badge(driver, delivery_id).text.split())


def publish(server: HooklineServer, event_type: str, payload: Any) -> dict[str, Any]:
    """Publish an event with the JSON API and the token (the console has no publish form)."""
    response = httpx.post(
        f"{server.base_url}/events",
        json={"event_type": event_type, "payload": payload},
        headers=server.auth,
        timeout=60,
    )
    assert response.status_code == 202, response.text
    published: dict[str, Any] = response.json()
    return published


@pytest.fixture
def artifacts(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return artifacts_dir(request, tmp_path)


# the tests ---------------------------------------------------------------------------------------


@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_sign_in_overview_and_events(tmp_path: Path, artifacts: Path) -> None:
    required_tool("chromium", "chromium")
    required_tool("chromedriver", "chromium-driver")
    with (
        ThreadedReceiver() as receiver,
        running_hookline(tmp_path, env=SERVER_ENV) as server,
        chromium(artifacts) as driver,
    ):
        person = Person(driver, server, artifacts)
        receiver.on("/ok", statuses=[200])
        created = httpx.post(
            f"{server.base_url}/webhooks",
            json={"url": receiver.url_for("/ok"), "event_types": ["order.*"]},
            headers=server.auth,
            timeout=60,
        )
        assert created.status_code == 201, created.text

        with person.step("sign in"):
            # Given a person who opens the console: they are asked for a token first
            person.open("/ui/events")
            person.wait_for_heading("Sign in")
            person.fill("API token", "not-the-token-0123456789")
            person.press("Sign in")
            person.wait_for(
                lambda d: "not one of this server's API tokens" in person.error_of("API token"),
                "the wrong token refused next to its field",
            )
            person.fill("API token", API_TOKEN)
            person.press("Sign in")
            # and land on the page they asked for
            person.wait_for_heading("Events")
            assert "No events yet" in person.main_text()

        with person.step("overview updates itself"):
            person.nav("Overview")
            person.wait_for_heading("Overview")
            assert "No deliveries yet" in person.main_text()
            # When events are published, the figures change without reloading the page (htmx)
            marker = driver.find_element(By.TAG_NAME, "h1")
            order = publish(server, "order.created", {"order": 7, "note": "<script>x</script>"})
            publish(server, "invoice.paid", {"invoice": 9})
            person.wait_for(
                lambda d: (
                    d.find_element(By.XPATH, "//tr[th[normalize-space()='Succeeded']]/td[1]").text
                    == "1"
                ),
                "the overview's 'Succeeded, last hour' figure to read 1",
                timeout_s=LIVE_WAIT_S,
            )
            assert marker.is_displayed()  # the same page: not reloaded

        with person.step("events list and pattern search by keyboard"):
            person.nav("Events")
            person.wait_for_heading("Events")
            rows = driver.find_elements(By.CSS_SELECTOR, "table tbody tr")
            assert len(rows) == 2, person.main_text()
            # The person tabs to the type field, types a pattern and presses Enter
            body = driver.find_element(By.TAG_NAME, "body")
            body.send_keys(Keys.TAB)
            assert driver.switch_to.active_element.text == "Skip to main content"
            type_field = person.field("Event type")
            for _ in range(30):
                if driver.switch_to.active_element == type_field:
                    break
                driver.switch_to.active_element.send_keys(Keys.TAB)
            assert driver.switch_to.active_element == type_field, "Event type not reachable by Tab"
            type_field.send_keys("order.*", Keys.ENTER)
            person.wait_for(
                lambda d: parse_qs(urlsplit(d.current_url).query).get("event_type") == ["order.*"],
                "the search to be submitted",
            )
            rows = driver.find_elements(By.CSS_SELECTOR, "table tbody tr")
            assert [r.find_element(By.TAG_NAME, "code").text for r in rows] == ["order.created"]
            assert person.field("Event type").get_attribute("value") == "order.*"

        with person.step("a refused pattern is explained next to its field"):
            person.fill("Event type", "ord*")
            person.press("Search")
            person.wait_for(
                lambda d: "mixes * with other characters" in person.error_of("Event type"),
                "the pattern error next to the Event type field",
            )
            assert driver.find_elements(By.CSS_SELECTOR, "table tbody tr") == []

        with person.step("open an event by id"):
            person.fill("Event id", "evt_00000000000000000000000000")
            person.press("Open event")
            person.wait_for(
                lambda d: person.error_of("Event id") == "No event with that id.",
                "'No event with that id.' next to the Event id field",
            )
            person.fill("Event id", order["id"])
            person.press("Open event")
            person.wait_for_heading(f"Event {order['id']}")
            payload = driver.find_element(By.CSS_SELECTOR, "pre.payload").text
            assert json.loads(payload) == {"order": 7, "note": "<script>x</script>"}
            delivery_id = order["deliveries"][0]["id"]
            assert badge_state(driver, delivery_id) == "succeeded"

        with person.step("the pages fit a phone"):
            driver.set_window_size(*PHONE)
            assert driver.execute_script("return window.innerWidth;") <= PHONE[0]
            person.wait_for(lambda d: person.fits_width(), "the event page to fit 390 px")
            person.screenshot("06a-event-390px")
            person.nav("Overview")
            person.wait_for_heading("Overview")
            person.wait_for(lambda d: person.fits_width(), "the overview to fit 390 px")
            person.screenshot("06b-overview-390px")
            person.nav("Events")
            person.wait_for_heading("Events")
            person.wait_for(lambda d: person.fits_width(), "the events list to fit 390 px")

        with person.step("a delivery's badge leads to the delivery"):
            driver.set_window_size(*WIDE)
            person.open(f"/ui/events/{order['id']}")
            person.wait_for_heading(f"Event {order['id']}")
            badge(driver, delivery_id).click()
            person.wait_for(
                lambda d: person.path == f"/ui/deliveries/{delivery_id}",
                "the delivery's page",
            )

        with person.step("sign out"):
            driver.find_element(By.XPATH, "//header//button[normalize-space()='Sign out']").click()
            person.wait_for_heading("Sign in")
            person.open("/ui/events")
            person.wait_for_heading("Sign in")

    assert len(person.steps_done) == 8
    assert len(person.screenshots) == 8 + 2  # a screenshot a step, two more at 390 px


@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_retry_dead_letter_and_replay_in_the_browser(tmp_path: Path, artifacts: Path) -> None:
    required_tool("chromium", "chromium")
    required_tool("chromedriver", "chromium-driver")
    with (
        ThreadedReceiver() as receiver,
        running_hookline(tmp_path, env=SERVER_ENV) as server,
        chromium(artifacts) as driver,
    ):
        person = Person(driver, server, artifacts)
        # A receiver that fails, asking for RETRY_AFTER_S before the retry
        receiver.on("/hook", statuses=[500], headers={"Retry-After": str(RETRY_AFTER_S)})
        hook_url = receiver.url_for("/hook")
        try:
            _retry_flow(person, receiver, hook_url)
        finally:
            print(f"steps that ran: {person.steps_done}")


def _retry_flow(person: Person, receiver: ThreadedReceiver, hook_url: str) -> None:
    server = person.server

    with person.step("sign in"):
        person.sign_in()

    with person.step("create a webhook with quick retries"):
        person.nav("Webhooks")
        person.wait_for_heading("Webhooks")
        person.link("Create a webhook").click()
        person.wait_for_heading("Create a webhook")
        person.fill("URL", hook_url)
        person.fill("Description", "browser test: fails, then recovers")
        for label, value in QUICK_RETRIES.items():
            person.fill(label, value)
        person.choose("Jitter", QUICK_JITTER)
        person.press("Create webhook")
        person.wait_for(
            lambda d: re.fullmatch(r"/ui/webhooks/wh_[0-9A-Z]{26}", person.path),
            "the new webhook's page",
        )
        webhook_id = person.path.rsplit("/", 1)[1]
        assert hook_url in person.main_text()
        stored = httpx.get(
            f"{server.base_url}/webhooks/{webhook_id}", headers=server.auth, timeout=60
        ).json()
        assert stored["url"] == hook_url
        assert {k: stored["retry_config"][k] for k in ("max_retries", "base_delay", "jitter")} == {
            "max_retries": 1,
            "base_delay": 1,
            "jitter": "none",
        }

    with person.step("publish an event with the API"):
        published = publish(server, "order.created", {"order": 42})
        event_id = published["id"]
        (delivery,) = published["deliveries"]
        delivery_id = delivery["id"]
        assert delivery["webhook_id"] == webhook_id

    with person.step("watch the delivery retrying"):
        person.nav("Events")
        person.wait_for_heading("Events")
        person.fill("Event id", event_id)
        person.press("Open event")
        person.wait_for_heading(f"Event {event_id}")
        person.wait_reloading(
            lambda d: badge_state(d, delivery_id) == "retrying",
            f"{delivery_id} shown retrying",
            timeout_s=RETRY_AFTER_S,
        )
        assert "HTTP 500" in person.main_text()

    with person.step("see it in the dead letters"):
        person.nav("Dead letters")
        person.wait_for_heading("Dead letters")
        person.wait_reloading(
            lambda d: person.link(delivery_id),
            f"{delivery_id} listed in the dead letters",
            timeout_s=RETRY_AFTER_S + DELIVERY_WAIT_S,
        )
        assert len(receiver.requests_to("/hook")) == 2  # the first attempt and the one retry

    with person.step("fix the receiver and replay from the dead letters"):
        receiver.on("/hook", statuses=[200])
        tick = person.field(f"Select {delivery_id}")
        if not tick.is_selected():
            tick.click()
        person.press("Replay selected")
        person.wait_for_heading(re.compile(r"^Replay 1 dead letter"))
        person.press("Replay 1 dead letter")
        person.wait_for_heading("Replay done")

    with person.step("see it succeed"):
        person.nav("Events")
        person.wait_for_heading("Events")
        person.fill("Event id", event_id)
        person.press("Open event")
        person.wait_for_heading(f"Event {event_id}")
        person.wait_reloading(
            lambda d: badge_state(d, delivery_id) == "succeeded", f"{delivery_id} succeeded"
        )
        third = receiver.requests_to("/hook")[2]
        assert third.headers["webhook-id"] == event_id
        person.link(delivery_id).click()
        person.wait_for(
            lambda d: person.path == f"/ui/deliveries/{delivery_id}", "the delivery's page"
        )
        person.wait_for(lambda d: "succeeded" in person.main_text(), "the delivery succeeded")
