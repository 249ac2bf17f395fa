"""A loopback webhook receiver for tests: a real HTTP server on 127.0.0.1 with settable behaviour.

    async with Receiver() as receiver:
        receiver.on("/hook", statuses=[503, 503, 200], headers={"Retry-After": "7"})
        ...  # deliver to receiver.url_for("/hook")
        [first] = await receiver.wait_for(1, timeout_s=5)
        assert first.headers["webhook-id"] == "evt_..."

Every request is recorded (method, path, headers, body, arrival time, which connection carried it)
in ``requests``; every accepted TCP connection is counted in ``connections_accepted``, even one that
never sends a request. Behaviour is set per path with ``on()``; a path without one answers 200 with
an empty body. Waiting is always bounded: ``wait_for`` fails after ``timeout_s`` instead of hanging,
and ``close()`` releases requests that are held.

Also here: ``StaticResolver``, an aiohttp resolver that maps made-up names (``evil.test``) to fixed
addresses, so tests can point a hostname at this receiver without DNS.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.web_protocol import RequestHandler
from multidict import CIMultiDict, CIMultiDictProxy

from hookline.clock import Clock, SystemClock
from hookline.domain.signing import verify

STREAM_CHUNK_BYTES = 64 * 1024
"""Size of each write when a behaviour streams a large or endless body."""

SHUTDOWN_TIMEOUT_S = 2.0
"""How long ``close()`` lets in-flight handlers finish before cancelling them."""


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the receiver saw it.

    ``connection_number`` is 1 for the first TCP connection the receiver accepted, 2 for the
    second, and so on: requests with the same number shared a kept-alive connection.
    """

    method: str
    path: str
    query_string: str
    headers: CIMultiDictProxy[str]
    body: bytes
    received_at: datetime
    received_monotonic_s: float
    peer: tuple[str, int] | None
    connection_number: int

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def signed_by(self, secret: str, *, now_s: float) -> bool:
        """Whether its Standard Webhooks headers carry ``secret``'s signature of its body,
        with a ``webhook-timestamp`` within the tolerance of ``now_s``."""
        return verify(
            secret=secret,
            msg_id=self.headers["webhook-id"],
            timestamp=int(self.headers["webhook-timestamp"]),
            body=self.body,
            signature_header=self.headers["webhook-signature"],
            now_s=now_s,
        )


@dataclass(slots=True)
class Behaviour:
    """How a path answers. Set it with ``Receiver.on``; see there for the fields."""

    statuses: list[int] = field(default_factory=lambda: [200])
    headers: dict[str, str] = field(default_factory=dict)
    location: str | None = None
    body: bytes = b""
    stream_bytes: int | None = None
    stream_endless: bool = False
    hold: asyncio.Event | None = None
    served: int = 0

    def next_status(self) -> int:
        status = self.statuses[min(self.served, len(self.statuses) - 1)]
        self.served += 1
        return status


class _CountingServer(web.Server):
    """aiohttp's low-level server, numbering each accepted connection."""

    def __init__(self, receiver: Receiver, **kwargs: Any) -> None:
        super().__init__(receiver._handle, **kwargs)
        self._receiver = receiver

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self._receiver._on_connection(handler, transport)


class Receiver:
    """A loopback HTTP server that records requests and answers as each test tells it."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        ssl_context: ssl.SSLContext | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._host = host
        self._ssl_context = ssl_context
        self._clock: Clock = clock or SystemClock()
        self._behaviours: dict[str, Behaviour] = {}
        self._runner: web.ServerRunner | None = None
        self._port: int | None = None
        self._arrived = asyncio.Condition()
        self._closing = asyncio.Event()
        self._connection_numbers: dict[RequestHandler, int] = {}
        self.requests: list[RecordedRequest] = []
        self.connections_accepted = 0
        self.connection_peers: list[tuple[str, int]] = []
        self.streamed_bytes = 0
        """Body bytes the streaming behaviours managed to hand to the socket, all paths together."""

    # lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on an ephemeral port of ``host``."""
        server = _CountingServer(self)
        self._runner = web.ServerRunner(server, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, 0, ssl_context=self._ssl_context)
        await site.start()
        self._port = site.port

    async def close(self) -> None:
        """Release held requests and stop the server."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

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

    # addresses ---------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the receiver is not started")
        return self._port

    @property
    def url(self) -> str:
        """The base URL, without a trailing slash: ``http://127.0.0.1:PORT``."""
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{self._host}:{self.port}"

    def url_for(self, path: str = "/", *, host: str | None = None) -> str:
        """The URL of ``path``; ``host`` replaces the address (a name a ``StaticResolver`` maps)."""
        scheme = "https" if self._ssl_context is not None else "http"
        if not path.startswith("/"):
            path = "/" + path
        return f"{scheme}://{host or self._host}:{self.port}{path}"

    # behaviour ---------------------------------------------------------------------------------

    def on(
        self,
        path: str,
        *,
        statuses: Sequence[int] = (200,),
        headers: Mapping[str, str] | None = None,
        location: str | None = None,
        body: bytes = b"",
        stream_bytes: int | None = None,
        stream_endless: bool = False,
        hold: asyncio.Event | None = None,
    ) -> Behaviour:
        """Set how ``path`` answers from now on (query strings are ignored when matching).

        ``statuses`` are answered in turn, the last one repeating ([503, 503, 200]).
        ``headers`` are added to every answer (``Retry-After``...); ``location`` sets ``Location``
        (with a 3xx status: a redirect). ``body`` is the answer's body, unless ``stream_bytes`` asks
        for that many bytes streamed in chunks, or ``stream_endless`` for a body that never ends
        (until the client goes away or the receiver closes). ``hold`` keeps each request open,
        after recording it, until the event is set or the receiver closes.
        """
        if not statuses:
            raise ValueError("statuses needs at least one status code")
        behaviour = Behaviour(
            statuses=list(statuses),
            headers=dict(headers or {}),
            location=location,
            body=body,
            stream_bytes=stream_bytes,
            stream_endless=stream_endless,
            hold=hold,
        )
        self._behaviours[path] = behaviour
        return behaviour

    # what arrived ------------------------------------------------------------------------------

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """The recorded requests whose path is ``path``, in arrival order."""
        return [request for request in self.requests if request.path == path]

    @property
    def connections_used(self) -> int:
        """How many distinct connections carried the recorded requests."""
        return len({request.connection_number for request in self.requests})

    async def wait_for(
        self, count: int, *, timeout_s: float = 5.0, path: str | None = None
    ) -> list[RecordedRequest]:
        """Wait until ``count`` requests (to ``path``, if given) arrived; return the first ones.

        Fails with ``AssertionError`` after ``timeout_s`` seconds, naming what did arrive.
        """

        def matching() -> list[RecordedRequest]:
            return self.requests if path is None else self.requests_to(path)

        try:
            async with asyncio.timeout(timeout_s), self._arrived:
                await self._arrived.wait_for(lambda: len(matching()) >= count)
        except TimeoutError:
            seen = [(r.method, r.path) for r in self.requests]
            raise AssertionError(
                f"expected {count} requests{f' to {path}' if path else ''} within {timeout_s} s; "
                f"got {len(matching())}: {seen}"
            ) from None
        return matching()[:count]

    # internals ---------------------------------------------------------------------------------

    def _on_connection(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        self.connections_accepted += 1
        self._connection_numbers[handler] = self.connections_accepted
        peer = transport.get_extra_info("peername")
        if peer is not None:
            self.connection_peers.append((str(peer[0]), int(peer[1])))

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        body = await request.read()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            query_string=request.query_string,
            headers=CIMultiDictProxy(CIMultiDict(request.headers)),
            body=body,
            received_at=self._clock.now(),
            received_monotonic_s=self._clock.monotonic(),
            peer=(str(peer[0]), int(peer[1])) if peer is not None else None,
            connection_number=self._connection_numbers.get(request.protocol, 0),
        )
        async with self._arrived:
            self.requests.append(recorded)
            self._arrived.notify_all()

        behaviour = self._behaviours.get(request.path) or Behaviour()
        status = behaviour.next_status()
        if behaviour.hold is not None:
            await self._wait_any(behaviour.hold, self._closing)

        headers = CIMultiDict(behaviour.headers)
        if behaviour.location is not None:
            headers["Location"] = behaviour.location
        if behaviour.stream_bytes is None and not behaviour.stream_endless:
            return web.Response(status=status, body=behaviour.body, headers=headers)
        return await self._stream(request, status, headers, behaviour)

    async def _stream(
        self,
        request: web.BaseRequest,
        status: int,
        headers: CIMultiDict[str],
        behaviour: Behaviour,
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=status, headers=headers)
        if behaviour.stream_bytes is not None and not behaviour.stream_endless:
            response.content_length = behaviour.stream_bytes
        await response.prepare(request)
        remaining = behaviour.stream_bytes or 0
        chunk = b"x" * STREAM_CHUNK_BYTES
        try:
            while (behaviour.stream_endless or remaining > 0) and not self._closing.is_set():
                piece = chunk if behaviour.stream_endless else chunk[: min(remaining, len(chunk))]
                await response.write(piece)
                self.streamed_bytes += len(piece)
                remaining -= len(piece)
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client went away mid-body: that is what some tests want
        return response

    @staticmethod
    async def _wait_any(*events: asyncio.Event) -> None:
        waiters = [asyncio.ensure_future(event.wait()) for event in events]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()


class StaticResolver(AbstractResolver):
    """Resolves names from a fixed table, like an /etc/hosts for one test; others fail to resolve.

    ``StaticResolver({"evil.test": ["10.0.0.1"], "hook.test": ["127.0.0.1"]})``. ``lookups``
    records every name asked for, so a test can prove a lookup did (or did not) happen.
    """

    def __init__(self, table: Mapping[str, Iterable[str]]) -> None:
        self._table = {name.lower(): list(addresses) for name, addresses in table.items()}
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        addresses = self._table.get(host.lower().rstrip("."))
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} is not in the static table")
        results: list[ResolveResult] = []
        for address in addresses:
            address_family = socket.AF_INET6 if ":" in address else socket.AF_INET
            if family not in (socket.AF_UNSPEC, address_family):
                continue
            results.append(
                ResolveResult(
                    hostname=host,
                    host=address,
                    port=port,
                    family=address_family,
                    proto=0,
                    flags=socket.AI_NUMERICHOST,
                )
            )
        return results

    async def close(self) -> None:
        return None
