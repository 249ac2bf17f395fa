"""The HTTP client that delivers one webhook request and reports what happened.

``Sender.send`` never raises for anything the network or the subscriber does: every failure becomes
a ``SendResult`` with an ``AttemptError``. Exceptions that reach the caller are programming errors
(sending before ``start()``) and cancellation.

Foreign errors are mapped here, at the seam (``describe_failure``):

    BlockedAddress (raw, or inside ClientConnectorError.os_error / __cause__)  → blocked_address
    ssl.SSLError, ClientSSLError, ServerFingerprintMismatch                    → tls
    TimeoutError (asyncio's, ServerTimeoutError, ConnectionTimeoutError)       → timeout
    ClientConnectorError (refused, DNS failure), ServerDisconnectedError,
      ClientConnectionResetError, any other ClientConnectionError or OSError   → connect
    ClientResponseError (bad status line, bad header), ClientPayloadError      → invalid_response
    InvalidURL, NonHttpUrlClientError, a request header with control
      characters (nothing can be sent; retrying cannot help)                   → invalid_url

A 3xx is a normal result (``status_code`` set, ``error`` None): redirects are never followed and the
domain classifier decides what a 3xx means. The sender neither signs nor classifies.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Self

import aiohttp
from aiohttp.abc import AbstractResolver
from multidict import CIMultiDict
from yarl import URL

from hookline.clock import Clock
from hookline.domain.outcome import AttemptError
from hookline.sender.address_guard import AddressGuard, BlockedAddress, IPNetwork, parse_address
from hookline.sender.resolver import GuardedResolver

RESPONSE_BODY_LIMIT_BYTES: Final = 4096
"""How much of a subscriber's answer is read and kept; the rest is never read."""

DNS_CACHE_TTL_S: Final = 10
"""How long vetted addresses are reused; a vetted address is what gets dialled until then."""

ERROR_DETAIL_MAX_CHARS: Final = 200
"""``error_detail`` is a short human message, not a dump."""

_MAX_CAUSE_DEPTH: Final = 8


@dataclass(frozen=True, slots=True)
class OutboundRequest:
    """One POST to a subscriber: the URL, the exact body bytes and the headers to send."""

    url: str
    body: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class SendResult:
    """What happened to one POST.

    ``status_code`` is set whenever a status line arrived (then ``error`` is None, even if the
    body could not be read completely: ``error_detail`` then says why). Without a response
    ``status_code`` is None and ``error`` says why. ``response_body`` is at most the first 4 KiB,
    UTF-8 decoded with replacement characters (NUL stays: ``DeliveryService`` makes the excerpt
    storable where it stores it); ``retry_after`` is the raw ``Retry-After`` header.
    """

    status_code: int | None
    error: AttemptError | None
    error_detail: str | None
    response_body: str | None
    retry_after: str | None
    duration_ms: int


class Sender:
    """Owns the pooled HTTP session (keep-alive, connection limit, guarded DNS) for deliveries.

    Use as ``async with Sender(...) as sender`` or call ``start()`` and ``close()``. ``resolver``
    replaces the system resolver under the guard (tests map fake names with it); ``clock`` gives
    the monotonic time that ``duration_ms`` is measured with.
    """

    def __init__(
        self,
        *,
        connect_timeout_s: float,
        total_timeout_s: float,
        allowed_networks: Sequence[IPNetwork],
        user_agent: str,
        clock: Clock,
        max_connections: int = 100,
        resolver: AbstractResolver | None = None,
        dns_cache_ttl_s: int = DNS_CACHE_TTL_S,
    ) -> None:
        if connect_timeout_s <= 0 or total_timeout_s <= 0:
            raise ValueError("timeouts must be positive")
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._timeout = aiohttp.ClientTimeout(total=total_timeout_s, sock_connect=connect_timeout_s)
        self._guard = AddressGuard(allowed_networks)
        self._user_agent = user_agent
        self._clock = clock
        self._max_connections = max_connections
        self._base_resolver = resolver
        self._dns_cache_ttl_s = dns_cache_ttl_s
        self._resolver: GuardedResolver | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def guard(self) -> AddressGuard:
        return self._guard

    async def start(self) -> None:
        """Open the connection pool. Must run inside the event loop that will send."""
        if self._session is not None:
            return
        self._resolver = GuardedResolver(self._guard, self._base_resolver)
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=0,  # per-endpoint caps are the worker's job
            resolver=self._resolver,
            use_dns_cache=True,
            ttl_dns_cache=self._dns_cache_ttl_s,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            raise_for_status=False,
            auto_decompress=True,
            trust_env=False,  # an environment proxy would bypass the address guard
            cookie_jar=aiohttp.DummyCookieJar(),  # no cookies carried between subscribers
        )

    async def close(self) -> None:
        """Close every pooled connection and the resolver. Safe to call twice."""
        session, self._session = self._session, None
        resolver, self._resolver = self._resolver, None
        if session is not None:
            await session.close()
        if resolver is not None:
            await resolver.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def send(self, request: OutboundRequest) -> SendResult:
        """POST ``request`` once, without following redirects, and report the outcome."""
        session = self._session
        if session is None:
            raise RuntimeError("Sender.send() called before start()")
        started = self._clock.monotonic()

        refusal = self._preflight(request)
        if refusal is not None:
            error, detail = refusal
            return self._failure(error, detail, started)

        headers = CIMultiDict({"content-type": "application/json", "user-agent": self._user_agent})
        headers.update(request.headers)  # replaces case-insensitively: the request's own win
        try:
            async with session.post(
                request.url, data=request.body, headers=headers, allow_redirects=False
            ) as response:
                body, body_problem = await _read_capped(response)
                if not response.content.at_eof():
                    response.close()  # drop the connection rather than drain an unread rest
                return SendResult(
                    status_code=response.status,
                    error=None,
                    error_detail=body_problem,
                    response_body=body.decode("utf-8", errors="replace"),
                    retry_after=response.headers.get("Retry-After"),
                    duration_ms=self._elapsed_ms(started),
                )
        except (aiohttp.ClientError, OSError) as exc:
            error, detail = describe_failure(exc)
            return self._failure(error, detail, started)
        except ValueError:
            # aiohttp's own check for header injection; _preflight normally catches it first.
            return self._failure(AttemptError.INVALID_URL, "invalid request header", started)

    def _preflight(self, request: OutboundRequest) -> tuple[AttemptError, str] | None:
        """Refuse what must not be sent at all: bad URLs, bad headers, refused IP literals."""
        try:
            url = URL(request.url)
        except (ValueError, TypeError):
            return AttemptError.INVALID_URL, "invalid URL"
        if url.scheme not in {"http", "https"} or not url.raw_host:
            return AttemptError.INVALID_URL, "invalid URL: needs http(s) and a host"
        for name, value in request.headers.items():
            if _has_control_characters(name) or _has_control_characters(value):
                return AttemptError.INVALID_URL, f"invalid request header {_safe_name(name)}"
        host = url.host or url.raw_host
        if _looks_like_ip_literal(url.raw_host) or parse_address(host) is not None:
            # aiohttp dials IP literals without asking the resolver: vet them here.
            try:
                self._guard.check(host)
            except BlockedAddress as exc:
                return AttemptError.BLOCKED_ADDRESS, _shorten(str(exc))
        return None

    def _failure(self, error: AttemptError, detail: str, started: float) -> SendResult:
        return SendResult(
            status_code=None,
            error=error,
            error_detail=detail,
            response_body=None,
            retry_after=None,
            duration_ms=self._elapsed_ms(started),
        )

    def _elapsed_ms(self, started: float) -> int:
        return max(0, round((self._clock.monotonic() - started) * 1000))


async def _read_capped(response: aiohttp.ClientResponse) -> tuple[bytes, str | None]:
    """At most ``RESPONSE_BODY_LIMIT_BYTES`` of the body, and why it stopped early if it failed.

    A failure here does not undo the status that already arrived: the subscriber has answered.
    """
    chunks: list[bytes] = []
    size = 0
    try:
        while size < RESPONSE_BODY_LIMIT_BYTES:
            chunk = await response.content.read(RESPONSE_BODY_LIMIT_BYTES - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except (aiohttp.ClientError, OSError) as exc:
        response.close()
        _, detail = describe_failure(exc)
        return b"".join(chunks), _shorten(f"response body incomplete: {detail}")
    return b"".join(chunks), None


def describe_failure(exc: BaseException) -> tuple[AttemptError, str]:
    """The ``AttemptError`` and a short, header-free message for an aiohttp or socket error."""
    blocked = _find_blocked(exc)
    if blocked is not None:
        return AttemptError.BLOCKED_ADDRESS, _shorten(str(blocked))
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError | aiohttp.ServerFingerprintMismatch):
        return AttemptError.TLS, _shorten(f"TLS failure{_where(exc)}: {_ssl_reason(exc)}")
    if isinstance(exc, TimeoutError):
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return AttemptError.TIMEOUT, "timed out while connecting"
        if isinstance(exc, aiohttp.SocketTimeoutError):
            return AttemptError.TIMEOUT, "timed out waiting for data"
        return AttemptError.TIMEOUT, "timed out"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return AttemptError.CONNECT, _shorten(
            f"cannot resolve {exc.host}: {_os_reason(exc.os_error)}"
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return AttemptError.CONNECT, _shorten(
            f"cannot connect{_where(exc)}: {_os_reason(exc.os_error)}"
        )
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return AttemptError.CONNECT, "server closed the connection without a complete response"
    if isinstance(exc, aiohttp.ClientResponseError):
        first_line = exc.message.strip().splitlines()[0] if exc.message.strip() else "?"
        return AttemptError.INVALID_RESPONSE, _shorten(f"malformed response: {first_line}")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return AttemptError.INVALID_RESPONSE, "malformed response body"
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return AttemptError.INVALID_URL, "invalid URL"
    if isinstance(exc, aiohttp.ClientConnectionError | OSError):
        reason = _os_reason(exc) if isinstance(exc, OSError) else type(exc).__name__
        return AttemptError.CONNECT, _shorten(f"connection failed: {reason}")
    return AttemptError.CONNECT, _shorten(f"HTTP client error: {type(exc).__name__}")


def _find_blocked(exc: BaseException) -> BlockedAddress | None:
    """A ``BlockedAddress`` anywhere in ``exc``'s wrapping (``os_error``, cause, context)."""
    current: BaseException | None = exc
    for _ in range(_MAX_CAUSE_DEPTH):
        if current is None:
            return None
        if isinstance(current, BlockedAddress):
            return current
        if isinstance(current, aiohttp.ClientConnectorError) and isinstance(
            current.os_error, BlockedAddress
        ):
            return current.os_error
        current = current.__cause__ or current.__context__
    return None


def _where(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f" to {exc.host}:{exc.port}"
    return ""


def _ssl_reason(exc: BaseException) -> str:
    inner: BaseException = exc
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        inner = exc.certificate_error
    elif isinstance(exc, aiohttp.ClientConnectorError):
        inner = exc.os_error
    # ``verify_message`` and ``reason`` are set by the ssl module, not by every constructor.
    if verify_message := getattr(inner, "verify_message", None):
        return f"certificate verify failed: {verify_message}"
    if reason := getattr(inner, "reason", None):
        return str(reason)
    if isinstance(inner, OSError) and inner.strerror:
        return inner.strerror
    return type(inner).__name__


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _looks_like_ip_literal(host: str) -> bool:
    # aiohttp's own test for "do not resolve": a colon (IPv6) or only digits and dots.
    return ":" in host or host.replace(".", "").isdigit()


_CONTROL_CHARACTER: Final = re.compile("[\x00-\x08\x0a-\x1f\x7f]")
"""A control character other than TAB: never valid in a header name or value."""


def _has_control_characters(text: str) -> bool:
    return _CONTROL_CHARACTER.search(text) is not None


def _safe_name(name: str) -> str:
    return repr(name[:40])


def _shorten(text: str) -> str:
    if len(text) <= ERROR_DETAIL_MAX_CHARS:
        return text
    return text[: ERROR_DETAIL_MAX_CHARS - 1] + "…"
