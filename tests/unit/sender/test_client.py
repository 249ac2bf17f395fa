"""The sender's error mapping and its data types (no network: see tests/integration/sender)."""

from __future__ import annotations

import socket
import ssl
from dataclasses import FrozenInstanceError

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey, RequestInfo
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from hookline.domain.outcome import AttemptError
from hookline.sender import BlockedAddress, OutboundRequest, Sender, SendResult, describe_failure
from hookline.sender.client import ERROR_DETAIL_MAX_CHARS

SECRET = "v1,c2VjcmV0LXNpZ25hdHVyZS12YWx1ZQ=="
KEY = ConnectionKey("hook.test", 443, True, True, None, None, None)
REQUEST_INFO = RequestInfo(
    URL("https://hook.test/x"),
    "POST",
    CIMultiDictProxy(CIMultiDict({"webhook-signature": SECRET})),
    URL("https://hook.test/x"),
)


def wrapped_by_aiohttp(error: OSError) -> aiohttp.ClientConnectorDNSError:
    """What aiohttp's connector raises when the resolver raised ``error``."""
    try:
        try:
            raise error
        except OSError as exc:
            raise aiohttp.ClientConnectorDNSError(KEY, exc) from exc
    except aiohttp.ClientConnectorDNSError as wrapped:
        return wrapped


def cert_error() -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "self-signed certificate"
    return error


CASES: list[tuple[str, BaseException, AttemptError, str]] = [
    (
        "raw block",
        BlockedAddress("10.0.0.1", host="evil.test"),
        AttemptError.BLOCKED_ADDRESS,
        "10.0.0.1",
    ),
    (
        "block wrapped by the connector",
        wrapped_by_aiohttp(BlockedAddress("10.0.0.1", host="e.test")),
        AttemptError.BLOCKED_ADDRESS,
        "e.test",
    ),
    (
        "DNS failure",
        wrapped_by_aiohttp(socket.gaierror(socket.EAI_NONAME, "Name unknown")),
        AttemptError.CONNECT,
        "cannot resolve hook.test",
    ),
    (
        "refused",
        aiohttp.ClientConnectorError(KEY, ConnectionRefusedError(111, "Connect refused")),
        AttemptError.CONNECT,
        "hook.test:443",
    ),
    ("asyncio timeout", TimeoutError(), AttemptError.TIMEOUT, "timed out"),
    ("connect timeout", aiohttp.ConnectionTimeoutError(), AttemptError.TIMEOUT, "connecting"),
    ("read timeout", aiohttp.SocketTimeoutError(), AttemptError.TIMEOUT, "waiting for data"),
    ("server timeout", aiohttp.ServerTimeoutError(), AttemptError.TIMEOUT, "timed out"),
    (
        "certificate",
        aiohttp.ClientConnectorCertificateError(KEY, cert_error()),
        AttemptError.TLS,
        "self-signed certificate",
    ),
    (
        "ssl handshake",
        aiohttp.ClientConnectorSSLError(KEY, ssl.SSLError(1, "WRONG_VERSION")),
        AttemptError.TLS,
        "TLS failure to hook.test:443",
    ),
    ("raw ssl error", ssl.SSLError(1, "bad record"), AttemptError.TLS, "TLS failure"),
    (
        "disconnected",
        aiohttp.ServerDisconnectedError(),
        AttemptError.CONNECT,
        "closed the connection",
    ),
    (
        "reset",
        aiohttp.ClientConnectionResetError("reset"),
        AttemptError.CONNECT,
        "connection failed",
    ),
    (
        "os error",
        ConnectionResetError(104, "Connection reset by peer"),
        AttemptError.CONNECT,
        "Connection reset by peer",
    ),
    (
        "bad status line",
        aiohttp.ClientResponseError(
            REQUEST_INFO, (), status=400, message="Bad status line:\n  Expected HTTP/"
        ),
        AttemptError.INVALID_RESPONSE,
        "malformed response: Bad status line:",
    ),
    (
        "bad body",
        aiohttp.ClientPayloadError("Response payload is not completed"),
        AttemptError.INVALID_RESPONSE,
        "malformed response body",
    ),
    (
        "invalid url",
        aiohttp.InvalidUrlClientError("http:///x"),
        AttemptError.INVALID_URL,
        "invalid URL",
    ),
    (
        "non-http url",
        aiohttp.NonHttpUrlClientError("ftp://x"),
        AttemptError.INVALID_URL,
        "invalid URL",
    ),
]


@pytest.mark.parametrize(
    ("exc", "error", "detail"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_failures_map_to_attempt_errors(
    exc: BaseException, error: AttemptError, detail: str
) -> None:
    mapped, message = describe_failure(exc)
    assert mapped == error
    assert detail in message
    assert len(message) <= ERROR_DETAIL_MAX_CHARS
    assert SECRET not in message


def test_long_messages_are_shortened() -> None:
    exc = aiohttp.ClientResponseError(REQUEST_INFO, (), status=400, message="x" * 1000)
    error, message = describe_failure(exc)
    assert error == AttemptError.INVALID_RESPONSE
    assert len(message) == ERROR_DETAIL_MAX_CHARS
    assert message.endswith("…")


def test_results_and_requests_are_frozen_values() -> None:
    request = OutboundRequest(url="https://hook.test/", body=b"{}", headers={})
    result = SendResult(
        status_code=200,
        error=None,
        error_detail=None,
        response_body="ok",
        retry_after=None,
        duration_ms=3,
    )
    with pytest.raises(FrozenInstanceError):
        request.url = "https://other.test/"  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        result.status_code = 500  # type: ignore[misc]
    assert result == SendResult(200, None, None, "ok", None, 3)


@pytest.mark.parametrize(
    "kwargs",
    [{"connect_timeout_s": 0}, {"total_timeout_s": -1}, {"max_connections": 0}],
)
def test_nonsense_configuration_is_refused(kwargs: dict[str, float]) -> None:
    from hookline.clock import ManualClock

    options: dict[str, object] = {
        "connect_timeout_s": 1.0,
        "total_timeout_s": 2.0,
        "allowed_networks": [],
        "user_agent": "hookline/test",
        "clock": ManualClock(),
    }
    options.update(kwargs)
    with pytest.raises(ValueError):
        Sender(**options)  # type: ignore[arg-type]


async def test_sending_before_start_is_a_programming_error() -> None:
    from hookline.clock import ManualClock

    sender = Sender(
        connect_timeout_s=1.0,
        total_timeout_s=2.0,
        allowed_networks=[],
        user_agent="hookline/test",
        clock=ManualClock(),
    )
    with pytest.raises(RuntimeError):
        await sender.send(OutboundRequest(url="https://hook.test/", body=b"{}", headers={}))
