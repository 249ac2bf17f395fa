"""Sender against real loopback sockets: what arrives, what comes back, what is refused."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from ipaddress import ip_network
from pathlib import Path

import pytest
from aiohttp.abc import ResolveResult

from hookline.clock import ManualClock
from hookline.domain.outcome import AttemptError
from hookline.sender import RESPONSE_BODY_LIMIT_BYTES, OutboundRequest
from tests.integration.sender.conftest import USER_AGENT, ConnectSpy, SenderFactory
from tests.receiver import Receiver, StaticResolver

SECRET = "v1,dGhpcyBpcyB0aGUgc2lnbmF0dXJlIHNlY3JldA=="
BODY = json.dumps({"type": "invoice.paid", "data": {"id": "inv_1", "amount": 4200}}).encode()


def post(url: str, headers: dict[str, str] | None = None, body: bytes = BODY) -> OutboundRequest:
    return OutboundRequest(url=url, body=body, headers=headers or {})


# --- what arrives ----------------------------------------------------------------------------


async def test_the_body_and_headers_arrive_exactly(
    make_sender: SenderFactory, receiver: Receiver
) -> None:
    # Given a receiver that answers 200 with a small body
    receiver.on("/hook", statuses=[200], body=b"thanks")
    sender = await make_sender()
    headers = {
        "webhook-id": "evt_01J0000000000000000000000",
        "webhook-timestamp": "1767225600",
        "webhook-signature": SECRET,
        "X-Tenant": "acme",
    }

    # When one request is sent
    result = await sender.send(post(receiver.url_for("/hook"), headers))

    # Then the receiver got exactly the bytes and headers, and the result reports the answer
    [got] = receiver.requests
    assert got.method == "POST"
    assert got.path == "/hook"
    assert got.body == BODY
    for name, value in headers.items():
        assert got.headers.getall(name) == [value]
    assert got.headers.getall("content-type") == ["application/json"]
    assert got.headers.getall("user-agent") == [USER_AGENT]
    assert got.headers["content-length"] == str(len(BODY))
    assert "cookie" not in got.headers
    assert result.status_code == 200
    assert result.error is None
    assert result.error_detail is None
    assert result.response_body == "thanks"
    assert result.retry_after is None
    assert result.duration_ms >= 0


async def test_request_headers_override_the_defaults_case_insensitively(
    make_sender: SenderFactory, receiver: Receiver
) -> None:
    sender = await make_sender()
    headers = {"Content-Type": "application/cloudevents+json", "USER-AGENT": "custom/1"}

    result = await sender.send(post(receiver.url_for("/ce"), headers))

    assert result.status_code == 200
    [got] = receiver.requests
    assert got.headers.getall("content-type") == ["application/cloudevents+json"]
    assert got.headers.getall("user-agent") == ["custom/1"]


async def test_status_retry_after_and_body_are_reported_raw(
    make_sender: SenderFactory, receiver: Receiver
) -> None:
    receiver.on(
        "/busy",
        statuses=[503, 429],
        headers={"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"},
        body=b"\xff\xfe busy",
    )
    sender = await make_sender()

    first = await sender.send(post(receiver.url_for("/busy")))
    second = await sender.send(post(receiver.url_for("/busy")))

    assert (first.status_code, second.status_code) == (503, 429)
    assert first.error is None
    assert first.retry_after == "Wed, 21 Oct 2026 07:28:00 GMT"
    assert first.response_body == "\ufffd\ufffd busy"  # invalid UTF-8 replaced, not an error


async def test_the_response_body_is_capped_at_4_kib_of_a_10_mb_answer(
    make_sender: SenderFactory, receiver: Receiver
) -> None:
    receiver.on("/big", stream_bytes=10 * 1024 * 1024)
    sender = await make_sender()

    result = await sender.send(post(receiver.url_for("/big")))

    assert result.status_code == 200
    assert result.error is None
    assert result.error_detail is None
    assert result.response_body == "x" * RESPONSE_BODY_LIMIT_BYTES


async def test_an_endless_body_is_not_read_to_its_end(
    make_sender: SenderFactory, receiver: Receiver
) -> None:
    # Given a subscriber whose answer never ends
    receiver.on("/endless", stream_endless=True)
    sender = await make_sender(total_timeout_s=5.0)

    # When the sender reads it
    started = time.monotonic()
    result = await sender.send(post(receiver.url_for("/endless")))

    # Then it stops after 4 KiB instead of waiting for the total timeout
    assert time.monotonic() - started < 4.0
    assert result.status_code == 200
    assert result.error_detail is None
    assert result.response_body == "x" * RESPONSE_BODY_LIMIT_BYTES


async def test_a_body_shorter_than_the_cap_keeps_the_connection(
    make_sender: SenderFactory, receiver: Receiver
) -> None:
    receiver.on("/small", body=b"y" * 100)
    receiver.on("/big", stream_bytes=1024 * 1024)
    sender = await make_sender()

    for path in ["/small", "/small", "/big", "/small"]:
        result = await sender.send(post(receiver.url_for(path)))
        assert result.status_code == 200

    # the unread rest of /big is dropped with its connection; the small answers share one
    numbers = [request.connection_number for request in receiver.requests]
    assert numbers[0] == numbers[1] == numbers[2]
    assert numbers[3] != numbers[2]


async def test_cookies_are_not_carried_between_requests(
    make_sender: SenderFactory, receiver: Receiver
) -> None:
    # (a name, not an IP literal: aiohttp's default jar ignores cookies from IP hosts)
    receiver.on("/cookie", headers={"Set-Cookie": "session=abc; Path=/"})
    sender = await make_sender(resolver=StaticResolver({"hook.test": ["127.0.0.1"]}))

    await sender.send(post(receiver.url_for("/cookie", host="hook.test")))
    await sender.send(post(receiver.url_for("/cookie", host="hook.test")))

    assert [r.headers.get("cookie") for r in receiver.requests] == [None, None]


# --- redirects ---------------------------------------------------------------------------------


async def test_a_redirect_is_reported_not_followed(
    make_sender: SenderFactory, receiver: Receiver, other_receiver: Receiver
) -> None:
    # Given a subscriber that redirects to a second server
    receiver.on("/moved", statuses=[302], location=other_receiver.url_for("/elsewhere"))
    sender = await make_sender()

    # When one request is sent
    result = await sender.send(post(receiver.url_for("/moved")))

    # Then the 302 is the result and nothing reached the second server
    assert result.status_code == 302
    assert result.error is None
    assert len(receiver.requests) == 1
    assert other_receiver.requests == []
    assert other_receiver.connections_accepted == 0


# --- the address guard -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://[::ffff:10.0.0.1]/",
        "http://[::ffff:169.254.169.254]:8080/",
        "http://[fd00:ec2::254]/",
        "http://[64:ff9b::a00:1]/",
        "http://0.0.0.0:80/",
        "http://127.1/",
    ],
)
async def test_refused_ip_literals_are_never_dialled(
    make_sender: SenderFactory, connect_spy: ConnectSpy, url: str
) -> None:
    sender = await make_sender(total_timeout_s=5.0, allowed_networks=[])

    started = time.monotonic()
    result = await sender.send(post(url, {"webhook-signature": SECRET}))

    assert result.error == AttemptError.BLOCKED_ADDRESS
    assert result.status_code is None
    assert result.error_detail is not None
    assert SECRET not in result.error_detail
    assert connect_spy.addresses == []
    assert time.monotonic() - started < 1.0  # answered at once, not after a connect timeout


async def test_the_connect_spy_sees_real_connections(
    make_sender: SenderFactory, receiver: Receiver, connect_spy: ConnectSpy
) -> None:
    # the positive control for the "never dialled" tests: an allowed send is seen
    sender = await make_sender()

    result = await sender.send(post(receiver.url_for("/")))

    assert result.status_code == 200
    assert connect_spy.addresses == [("127.0.0.1", receiver.port)]


async def test_a_name_resolving_to_a_private_address_is_blocked(
    make_sender: SenderFactory, connect_spy: ConnectSpy
) -> None:
    resolver = StaticResolver({"evil.test": ["10.0.0.1"]})
    sender = await make_sender(resolver=resolver, total_timeout_s=5.0)

    result = await sender.send(post("http://evil.test/hook", {"webhook-signature": SECRET}))

    assert result.error == AttemptError.BLOCKED_ADDRESS
    assert result.error_detail is not None
    assert "evil.test" in result.error_detail
    assert "ALLOWED_NETWORKS" in result.error_detail  # says how to allow it
    assert SECRET not in result.error_detail
    assert resolver.lookups == ["evil.test"]
    assert connect_spy.addresses == []


async def test_a_blocked_attempt_names_allowed_networks_even_for_a_long_name(
    make_sender: SenderFactory, connect_spy: ConnectSpy
) -> None:
    # Given a 250-character name that resolves to a private address
    name = ".".join(["a" * 60] * 4) + ".test"
    sender = await make_sender(resolver=StaticResolver({name: ["10.0.0.1"]}))

    # When an attempt is made, and one to a private IP literal
    by_name = await sender.send(post(f"http://{name}/hook"))
    literal = await sender.send(post("http://10.0.0.1/hook"))

    # Then both are blocked, and the short message (200 characters at most) still says how
    for result in (by_name, literal):
        assert result.error == AttemptError.BLOCKED_ADDRESS
        assert result.error_detail is not None
        assert len(result.error_detail) <= 200
        assert result.error_detail.endswith("add its network to ALLOWED_NETWORKS)")
        assert "10.0.0.1" in result.error_detail
    assert connect_spy.addresses == []


async def test_only_the_allowed_addresses_of_a_name_are_dialled(
    make_sender: SenderFactory, receiver: Receiver, connect_spy: ConnectSpy
) -> None:
    # a name with a refused address first: the refused one is dropped before any connect
    resolver = StaticResolver({"mixed.test": ["10.0.0.1", "127.0.0.1"]})
    sender = await make_sender(resolver=resolver)

    result = await sender.send(post(receiver.url_for("/", host="mixed.test")))

    assert result.status_code == 200
    assert connect_spy.addresses == [("127.0.0.1", receiver.port)]


async def test_a_name_resolving_to_an_allowed_address_is_delivered(
    make_sender: SenderFactory, receiver: Receiver
) -> None:
    resolver = StaticResolver({"hook.test": ["127.0.0.1"]})
    sender = await make_sender(resolver=resolver, allowed_networks=[ip_network("127.0.0.1/32")])

    result = await sender.send(post(receiver.url_for("/named", host="hook.test")))

    assert result.status_code == 200
    [got] = receiver.requests
    assert got.path == "/named"
    assert got.headers["host"] == f"hook.test:{receiver.port}"
    assert got.body == BODY


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_loopback_is_blocked_without_the_allow_list(
    make_sender: SenderFactory, receiver: Receiver, host: str
) -> None:
    # localhost goes through the real system resolver (/etc/hosts), not a fake one
    sender = await make_sender(allowed_networks=[])

    result = await sender.send(post(receiver.url_for("/", host=host)))

    assert result.error == AttemptError.BLOCKED_ADDRESS
    assert receiver.connections_accepted == 0
    assert receiver.requests == []


async def test_the_allow_list_does_not_open_other_private_ranges(
    make_sender: SenderFactory, connect_spy: ConnectSpy
) -> None:
    resolver = StaticResolver({"meta.test": ["169.254.169.254"]})
    sender = await make_sender(resolver=resolver)  # 127.0.0.1/32 allowed

    result = await sender.send(post("http://meta.test/"))

    assert result.error == AttemptError.BLOCKED_ADDRESS
    assert connect_spy.addresses == []


# --- network failures --------------------------------------------------------------------------


async def test_a_held_request_times_out(make_sender: SenderFactory, receiver: Receiver) -> None:
    # Given a subscriber that never answers (a real, short client timeout: 0.2 s)
    receiver.on("/slow", hold=asyncio.Event())
    sender = await make_sender(connect_timeout_s=0.2, total_timeout_s=0.2)

    # When a request is sent
    result = await sender.send(post(receiver.url_for("/slow")))

    # Then it is a timeout after about 0.2 s, and the request did arrive
    assert result.error == AttemptError.TIMEOUT
    assert result.status_code is None
    assert result.response_body is None
    assert 150 <= result.duration_ms < 2000
    assert len(receiver.requests_to("/slow")) == 1


async def test_a_refused_connection_is_a_connect_error(
    make_sender: SenderFactory, closed_port: int
) -> None:
    sender = await make_sender()

    result = await sender.send(post(f"http://127.0.0.1:{closed_port}/"))

    assert result.error == AttemptError.CONNECT
    assert result.status_code is None
    assert result.error_detail is not None
    assert f"127.0.0.1:{closed_port}" in result.error_detail


async def test_an_unknown_name_is_a_connect_error(make_sender: SenderFactory) -> None:
    sender = await make_sender(resolver=StaticResolver({}))

    result = await sender.send(post("http://nowhere.test/"))

    assert result.error == AttemptError.CONNECT
    assert result.error_detail is not None
    assert "nowhere.test" in result.error_detail


@asynccontextmanager
async def raw_server(reply: bytes) -> AsyncIterator[int]:
    """A TCP server that reads the request head and answers ``reply`` verbatim, then closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (b"garbage\r\n\r\n", AttemptError.INVALID_RESPONSE),
        (b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n", AttemptError.INVALID_RESPONSE),
        (b"HTTP/1.1 2000 Odd\r\nContent-Length: 0\r\n\r\n", AttemptError.INVALID_RESPONSE),
        (b"", AttemptError.CONNECT),  # closed without a word
    ],
)
async def test_malformed_answers(
    make_sender: SenderFactory, reply: bytes, error: AttemptError
) -> None:
    sender = await make_sender()
    async with raw_server(reply) as port:
        result = await sender.send(post(f"http://127.0.0.1:{port}/", {"webhook-signature": SECRET}))

    assert result.error == error
    assert result.status_code is None
    assert result.error_detail is not None
    assert SECRET not in result.error_detail


async def test_a_truncated_body_keeps_the_status(make_sender: SenderFactory) -> None:
    # the subscriber answered 200 and then broke off: its answer was 200
    sender = await make_sender()
    async with raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial") as port:
        result = await sender.send(post(f"http://127.0.0.1:{port}/"))

    assert result.status_code == 200
    assert result.error is None
    assert result.response_body == "partial"
    assert result.error_detail is not None
    assert result.error_detail.startswith("response body incomplete")


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("ftp://127.0.0.1/", {}),
        ("http:///nohost", {}),
        ("not a url", {}),
        ("http://127.0.0.1:1/", {"X-Injected": "a\r\nEvil: 1"}),
    ],
)
async def test_requests_that_cannot_be_sent(
    make_sender: SenderFactory, connect_spy: ConnectSpy, url: str, headers: dict[str, str]
) -> None:
    sender = await make_sender()

    result = await sender.send(post(url, headers))

    assert result.error == AttemptError.INVALID_URL
    assert result.error_detail is not None
    assert "Evil" not in result.error_detail
    assert connect_spy.addresses == []


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server TLS context with a throwaway self-signed certificate for 127.0.0.1."""
    folder: Path = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def test_an_untrusted_certificate_is_a_tls_error(
    make_sender: SenderFactory, self_signed: ssl.SSLContext
) -> None:
    async with Receiver(ssl_context=self_signed) as tls_receiver:
        sender = await make_sender()

        result = await sender.send(post(tls_receiver.url_for("/")))

        assert tls_receiver.url.startswith("https://")
        assert result.error == AttemptError.TLS
        assert result.error_detail is not None
        assert "certificate verify failed" in result.error_detail
        assert tls_receiver.requests == []


async def test_plain_http_to_a_tls_port_is_not_a_success(
    make_sender: SenderFactory, self_signed: ssl.SSLContext
) -> None:
    async with Receiver(ssl_context=self_signed) as tls_receiver:
        sender = await make_sender()

        result = await sender.send(post(f"http://127.0.0.1:{tls_receiver.port}/"))

        assert result.error == AttemptError.CONNECT
        assert result.status_code is None
        assert tls_receiver.requests == []


# --- the pool ----------------------------------------------------------------------------------


async def test_sequential_sends_reuse_a_kept_alive_connection(
    make_sender: SenderFactory, receiver: Receiver
) -> None:
    sender = await make_sender()

    results = [await sender.send(post(receiver.url_for(f"/n/{i}"))) for i in range(50)]

    assert [r.status_code for r in results] == [200] * 50
    assert len(receiver.requests) == 50
    assert receiver.connections_accepted <= 2


async def test_max_connections_bounds_concurrent_requests(
    make_sender: SenderFactory, receiver: Receiver
) -> None:
    # Given a subscriber that holds requests, and a pool of 2
    release = asyncio.Event()
    receiver.on("/held", hold=release)
    sender = await make_sender(max_connections=2)

    # When 6 requests go out at once
    sends = [asyncio.create_task(sender.send(post(receiver.url_for("/held")))) for _ in range(6)]
    await receiver.wait_for(2, timeout_s=5)
    for _ in range(50):  # let the other four try to get through
        await asyncio.sleep(0)

    # Then only 2 are in flight; after the release all 6 finish on those 2 connections
    assert len(receiver.requests) == 2
    release.set()
    results = await asyncio.wait_for(asyncio.gather(*sends), timeout=10)
    assert [r.status_code for r in results] == [200] * 6
    assert receiver.connections_accepted == 2


class SlowResolver(StaticResolver):
    """A resolver that takes 1.5 s of a ManualClock to answer."""

    def __init__(self, clock: ManualClock, table: dict[str, list[str]]) -> None:
        super().__init__(table)
        self._clock = clock

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self._clock.advance(1.5)
        return await super().resolve(host, port, family)


async def test_duration_is_measured_with_the_given_clock(
    make_sender: SenderFactory, receiver: Receiver, clock: ManualClock
) -> None:
    resolver = SlowResolver(clock, {"hook.test": ["127.0.0.1"]})
    sender = await make_sender(resolver=resolver, clock=clock)

    result = await sender.send(post(receiver.url_for("/", host="hook.test")))

    assert result.status_code == 200
    assert result.duration_ms == 1500


async def test_close_is_idempotent_and_start_reopens(
    make_sender: SenderFactory, receiver: Receiver
) -> None:
    sender = await make_sender()
    await sender.close()
    await sender.close()
    with pytest.raises(RuntimeError):
        await sender.send(post(receiver.url_for("/")))
    await sender.start()
    assert (await sender.send(post(receiver.url_for("/")))).status_code == 200
