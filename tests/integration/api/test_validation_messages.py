"""Every 422 says what is wrong in words a person reads: lengths of text in characters, of lists
in items and of objects in entries; a pattern by the rule it states, not the regex; a refusal's
reason without "Value error, "; the field still named in ``loc``; and a ``ctx`` (when there is
one) of strings and numbers only, never the ``{}`` an exception object becomes in JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.api.helpers import Api, assert_422

URL = "https://example.com/hook"
WEBHOOK = "/webhooks"
EVENTS = "/events"

CASES: list[tuple[str, str, dict[str, Any], tuple[str | int, ...], str]] = [
    # (method, path, body, loc after "body", message)
    ("POST", WEBHOOK, {"url": URL + "/" + "a" * 2048}, ("url",),
     "String should have at most 2048 characters"),
    ("POST", WEBHOOK, {"url": URL, "description": "d" * 1001}, ("description",),
     "String should have at most 1000 characters, not 1001"),
    ("POST", WEBHOOK, {"url": URL, "description": "nul\x00"}, ("description",),
     "Must not contain NUL characters"),
    ("POST", WEBHOOK, {"url": URL, "event_types": ["t"] * 101}, ("event_types",),
     "List should have at most 100 items, not 101"),
    ("POST", WEBHOOK, {"url": URL, "headers": {f"X-{n}": "v" for n in range(21)}}, ("headers",),
     "Object should have at most 20 entries"),
    ("POST", WEBHOOK, {"url": URL, "headers": {"X-A": "v" * 1025}}, ("headers", "X-A"),
     "String should have at most 1024 characters"),
    ("POST", WEBHOOK, {"url": URL, "headers": {"X-A": "a\r\nb"}}, ("headers", "X-A"),
     "Must not contain NUL, CR or LF characters"),
    ("POST", WEBHOOK, {"url": URL, "headers": {"X A": "v"}}, ("headers", "X A", "[key]"),
     "Must be a header name: letters, digits and !#$%&'*+-.^_`|~ only"),
    ("POST", WEBHOOK, {"url": URL, "headers": {"Host": "v"}}, ("headers",),
     "'Host' is set by hookline and cannot be overridden"),
    ("POST", WEBHOOK, {"url": URL, "secret": "whsec_abc"}, ("secret",),
     "String should have at least 38 characters"),
    ("POST", WEBHOOK, {"url": URL, "secret": "whsec_" + "!" * 40}, ("secret",),
     "Must be whsec_ followed by the padded base64 of 24 to 64 random bytes"),
    ("POST", WEBHOOK, {"url": "ftp://example.com/"}, ("url",),
     "Must be an absolute http:// or https:// URL whose host is a DNS name, an IPv4 address or "
     "an [IPv6] address, with an optional port 0-65535, and only printable ASCII after it "
     "(percent-encode anything else)"),
    ("POST", WEBHOOK, {"url": "https://u:p@example.com/"}, ("url",),
     'Must not carry credentials (user:password@ or user@): put them in headers instead, '
     'e.g. "headers": {"Authorization": "Basic …"}'),
    ("POST", WEBHOOK, {}, ("url",), "Field required"),
    ("POST", WEBHOOK, {"url": URL, "bogus": 1}, ("bogus",), "Extra inputs are not permitted"),
    ("POST", WEBHOOK, {"url": URL, "retry_config": {"max_retries": 11}},
     ("retry_config", "max_retries"), "Input should be less than or equal to 10"),
    ("POST", EVENTS, {"event_type": "", "payload": 1}, ("event_type",),
     "String should have at least 1 character, not 0"),
    ("POST", EVENTS, {"event_type": "e" * 256, "payload": 1}, ("event_type",),
     "String should have at most 255 characters, not 256"),
    ("POST", EVENTS, {"event_type": "a", "payload": 1, "idempotency_key": "k" * 256},
     ("idempotency_key",), "String should have at most 255 characters, not 256"),
    ("POST", EVENTS, {"event_type": "a\x00", "payload": 1}, ("event_type",),
     "Must not contain NUL characters"),
    ("POST", EVENTS, {"payload": 1}, ("event_type",), "Field required"),
]  # fmt: skip


def assert_plain(body: dict[str, Any]) -> None:
    """No ctx value is an object or list (an exception shows as ``{}``): strings and numbers."""
    assert '"error":{}' not in json.dumps(body, separators=(",", ":"))
    for error in body["detail"]:
        assert isinstance(error["msg"], str)
        assert error["msg"]
        assert not error["msg"].startswith("Value error")
        assert " items after validation" not in error["msg"]
        if "ctx" in error:
            assert error["ctx"], error
            for value in error["ctx"].values():
                assert value is None or isinstance(value, str | int | float), error


@pytest.mark.parametrize(
    ("method", "path", "body", "loc", "message"),
    CASES,
    ids=[f"{path}:{'.'.join(map(str, loc))}:{n}" for n, (_, path, _, loc, _) in enumerate(CASES)],
)
async def test_each_422_says_what_is_wrong_in_words(
    sqlite_api: Api,
    method: str,
    path: str,
    body: dict[str, Any],
    loc: tuple[str | int, ...],
    message: str,
) -> None:
    response = await sqlite_api.client.request(method, path, json=body)

    assert_422(response, "body", *loc)
    messages = [e["msg"] for e in response.json()["detail"] if e["loc"] == ["body", *loc]]
    assert message in messages
    assert_plain(response.json())


async def test_patch_and_query_422s_are_readable_too(sqlite_api: Api) -> None:
    created = await sqlite_api.create_webhook()
    responses = [
        await sqlite_api.client.patch(f"/webhooks/{created['id']}", json={"description": None}),
        await sqlite_api.client.patch(f"/webhooks/{created['id']}", json={"headers": {"Te": "x"}}),
        await sqlite_api.client.get("/webhooks", params={"limit": 0}),
        await sqlite_api.client.get("/webhooks", params={"cursor": "not-a-cursor"}),
        await sqlite_api.client.get("/deliveries", params={"webhook_id": "wh_short"}),
        await sqlite_api.client.post(
            "/webhooks", content=b"{not json", headers={"content-type": "application/json"}
        ),
        await sqlite_api.client.post("/events", json={"event_type": "a", "payload": _deep()}),
    ]
    for response in responses:
        assert response.status_code == 422, response.text
        assert_plain(response.json())
    id_error = responses[4].json()["detail"][0]
    assert id_error["loc"] == ["query", "webhook_id"]
    assert id_error["msg"] == ("Must be a wh_ id: the prefix and 26 Crockford base32 characters")
    deep_error = responses[6].json()["detail"][0]
    assert deep_error["msg"] == "Must not nest arrays/objects deeper than 64 levels"


def _deep() -> Any:
    value: Any = 1
    for _ in range(70):
        value = [value]
    return value
