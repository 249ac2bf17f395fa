"""What the chaos scenarios are made of: a faulty receiver, hookline processes, publishers,
the fault injector and the end check.

Everything random is drawn from ``random.Random`` seeded by the profile, so a failing run can be
replayed with the same seed (``HOOKLINE_CHAOS_SEED``): the receiver's answer to a request depends
only on (seed, path, ``webhook-id``, ``webhook-attempt``), and the faults' kinds and moments
(measured in accepted events, not in wall-clock time) only on the seed.

Times are ``time.monotonic()`` everywhere (receiver thread, fault injector, publishers): one clock,
so "was a worker killed while this request ran" can be answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx
from aiohttp import web

HOOKLINE: Final = Path(sys.executable).with_name("hookline")
API_TOKEN: Final = "chaos-token-0123456789abcdefghij"
AUTH: Final = {"Authorization": f"Bearer {API_TOKEN}"}
POLL_S: Final = 0.05
START_TIMEOUT_S: Final = 180.0
"""Longest a hookline process may take to answer (or log ``worker.started``) after exec."""
STOP_TIMEOUT_S: Final = 15.0
DELIVERY_TIMEOUT_S: Final = 2.0
"""``DELIVERY_TIMEOUT`` given to hookline: the receiver's "timeout" answers take longer."""
RETRY_AFTER_CAP_S: Final = 10.0
"""Most a publisher waits on one ``Retry-After`` (hookline says 5 s when its database is down)."""
INHERITED_ENV: Final = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONPATH")
WARM_IMPORTS: Final = (
    "import hookline.cli, hookline.api.app, hookline.worker.retry_worker, hookline.worker.sweeper"
)
RETRY_CONFIG: Final = {"base_delay": 1, "max_delay": 2, "jitter": "none", "max_retries": 10}
ALWAYS_OK_FROM_ATTEMPT: Final = 3
"""From this ``webhook-attempt`` on, the receiver always answers 200: everything can finish."""


# profiles ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChaosProfile:
    """How big a run is: events per scenario, faults of each kind, and the bounded waits."""

    name: str
    events: int
    publish_concurrency: int
    publish_rate: float
    """Target accepted events per second (spreads the faults over the publishing)."""
    worker_kills: int
    redis_restarts: int
    postgres_restarts: int
    serve_kills: int
    publish_timeout_s: float
    settle_timeout_s: float
    seed: int = 8

    def with_seed(self, seed: int) -> ChaosProfile:
        return replace(self, seed=seed)


QUICK: Final = ChaosProfile(
    name="quick",
    events=300,
    publish_concurrency=8,
    publish_rate=40.0,
    worker_kills=2,
    redis_restarts=1,
    postgres_restarts=1,
    serve_kills=2,
    publish_timeout_s=180.0,
    settle_timeout_s=180.0,
)
LONG: Final = ChaosProfile(
    name="long",
    events=10_000,
    publish_concurrency=16,
    publish_rate=120.0,
    worker_kills=10,
    redis_restarts=4,
    postgres_restarts=4,
    serve_kills=6,
    publish_timeout_s=1800.0,
    settle_timeout_s=1200.0,
)


# the receiver -----------------------------------------------------------------------------------

FAULT_WEIGHTS: Final = {
    "ok": 45,
    "status_500": 6,
    "status_503": 6,
    "status_429": 5,
    "timeout": 4,
    "reset": 6,
    "slow_ok": 5,
    "slow_timeout": 3,
    "nul_ok": 8,
    "nul_5xx": 5,
    "huge_ok": 4,
    "huge_5xx": 3,
}
"""What the receiver does with an attempt below ``ALWAYS_OK_FROM_ATTEMPT``, by weight."""
HUGE_BODY_BYTES: Final = 1536 * 1024
CHUNK_BYTES: Final = 64 * 1024


@dataclass
class ReceivedRequest:
    """One request as the receiver saw it, and how it ended."""

    path: str
    webhook_id: str
    attempt: int
    kind: str
    arrival_s: float
    finish_s: float = 0.0
    status: int | None = None
    """The status line sent, if one was."""
    outcome: str = "pending"
    """``complete``, ``client_gone`` (the client hung up first), ``reset`` (we cut it)."""
    acked: bool = False
    """A 2xx status line went out (with the first piece of the body). hookline's sender takes
    the status as the subscriber's answer even when the body then stalls or breaks off."""
    peer_port: int | None = None
    arrival_wall: float = 0.0
    """``time.time()`` at arrival, to line requests up with hookline's log timestamps."""


def plan_answer(seed: int, path: str, webhook_id: str, attempt: int) -> str:
    """The receiver's answer to one attempt: a pure function of its inputs."""
    if attempt >= ALWAYS_OK_FROM_ATTEMPT:
        return "ok"
    rng = random.Random(f"{seed}:{path}:{webhook_id}:{attempt}")
    kinds = list(FAULT_WEIGHTS)
    return rng.choices(kinds, weights=[FAULT_WEIGHTS[k] for k in kinds])[0]


class ChaosReceiver:
    """An aiohttp server on 127.0.0.1 in a thread of its own (its own event loop), so that the
    test's publishers and checks never delay its answers or its clock readings."""

    def __init__(self, *, seed: int, delivery_timeout_s: float = DELIVERY_TIMEOUT_S) -> None:
        self.seed = seed
        self.delivery_timeout_s = delivery_timeout_s
        self._lock = threading.Lock()
        self._records: list[ReceivedRequest] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.ServerRunner | None = None
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.port = 0

    # lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="chaos-receiver", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=30):
            raise AssertionError("the chaos receiver did not start within 30 s")
        if self._error is not None:
            raise AssertionError(f"the chaos receiver failed to start: {self._error!r}")

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # surfaced by start()/stop()
            self._error = exc
            self._ready.set()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        server = web.Server(self._handle, access_log=None)
        self._runner = web.ServerRunner(server, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            await self._runner.cleanup()

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=30)
            if self._thread.is_alive():
                raise AssertionError("the chaos receiver thread did not stop within 30 s")

    def url_for(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def records(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._records)

    def dump(self, path: Path) -> None:
        """Every request as one JSON line (evidence for a failure's analysis)."""
        with path.open("w") as out:
            for record in self.records:
                out.write(json.dumps(asdict(record)) + "\n")

    # answers -----------------------------------------------------------------------------------

    @staticmethod
    def _gone(request: web.BaseRequest) -> bool:
        transport = request.transport
        return transport is None or transport.is_closing()

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        arrival = time.monotonic()
        await request.read()
        webhook_id = request.headers.get("webhook-id", "")
        try:
            attempt = int(request.headers.get("webhook-attempt", "0"))
        except ValueError:
            attempt = 0
        kind = plan_answer(self.seed, request.path, webhook_id, attempt)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        record = ReceivedRequest(
            path=request.path,
            webhook_id=webhook_id,
            attempt=attempt,
            kind=kind,
            arrival_s=arrival,
            peer_port=int(peer[1]) if peer else None,
            arrival_wall=time.time(),
        )
        try:
            return await self._answer(request, kind, record)
        finally:
            record.finish_s = time.monotonic()
            with self._lock:
                self._records.append(record)

    async def _answer(
        self, request: web.BaseRequest, kind: str, record: ReceivedRequest
    ) -> web.StreamResponse:
        match kind:
            case "ok":
                return await self._write(request, record, 200, b'{"ok":true}')
            case "status_500" | "status_503":
                return await self._write(request, record, int(kind[-3:]), b"try later")
            case "status_429":
                return await self._write(request, record, 429, b"slow down", retry_after="1")
            case "timeout":
                return await self._hold(request, record)
            case "reset":
                self._reset(request, record)
                return web.Response(status=500)
            case "slow_ok":
                return await self._write(request, record, 200, b"s" * 500, chunks=5, pause_s=0.1)
            case "slow_timeout":
                pause = self.delivery_timeout_s / 4
                return await self._write(
                    request, record, 200, b"t" * 1000, chunks=20, pause_s=pause
                )
            case "nul_ok":
                return await self._write(request, record, 200, b"ok\x00\x00 nul \x00")
            case "nul_5xx":
                return await self._write(request, record, 500, b"\x00\x00boom\x00")
            case "huge_ok":
                return await self._write(request, record, 200, b"h" * HUGE_BODY_BYTES)
            case "huge_5xx":
                return await self._write(request, record, 502, b"\x00" + b"g" * HUGE_BODY_BYTES)
        raise AssertionError(f"unknown answer kind {kind}")

    async def _write(
        self,
        request: web.BaseRequest,
        record: ReceivedRequest,
        status: int,
        body: bytes,
        *,
        chunks: int = 0,
        pause_s: float = 0.0,
        retry_after: str | None = None,
    ) -> web.StreamResponse:
        headers = {"Content-Type": "text/plain"}
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = len(body)
        size = -(-len(body) // chunks) if chunks else CHUNK_BYTES
        pieces = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
        try:
            if self._gone(request):
                record.outcome = "client_gone"
                return response
            await response.prepare(request)
            record.status = status
            for number, piece in enumerate(pieces):
                if self._gone(request):
                    record.outcome = "client_gone"
                    return response
                await response.write(piece)
                if number == 0 and 200 <= status < 300:
                    # The status line left with the first piece: hookline counts a 2xx from
                    # then on, whatever happens to the rest of the body.
                    record.acked = True
                if pause_s:
                    await asyncio.sleep(pause_s)
            await response.write_eof()
        except (ConnectionError, RuntimeError, OSError):
            record.outcome = "client_gone"
            return response
        record.outcome = "complete"
        if 200 <= status < 300:
            record.acked = True
        return response

    async def _hold(self, request: web.BaseRequest, record: ReceivedRequest) -> web.StreamResponse:
        """Answer nothing until the client gives up (``DELIVERY_TIMEOUT``), or, if it never
        does, 200 after three times that (recorded as a complete 2xx)."""
        deadline = time.monotonic() + self.delivery_timeout_s * 3
        while time.monotonic() < deadline:
            if self._gone(request):
                record.outcome = "client_gone"
                return web.Response(status=200)
            await asyncio.sleep(0.02)
        return await self._write(request, record, 200, b"late")

    @staticmethod
    def _reset(request: web.BaseRequest, record: ReceivedRequest) -> None:
        """Cut the connection with a TCP RST (SO_LINGER 0), before any answer."""
        transport = request.transport
        record.outcome = "reset"
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()


# hookline processes -----------------------------------------------------------------------------


def base_env(pycache_dir: Path) -> dict[str, str]:
    """A clean environment: nothing from the developer's shell configures hookline."""
    env = {name: os.environ[name] for name in INHERITED_ENV if name in os.environ}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPYCACHEPREFIX"] = str(pycache_dir)
    env["METRICS_PORT"] = "0"  # several workers at once: none binds the default metrics port
    return env


def warm_bytecode(pycache_dir: Path) -> None:
    """Compile what the processes import once, so each (re)start is quick."""
    subprocess.run(
        [sys.executable, "-c", WARM_IMPORTS],
        env=base_env(pycache_dir),
        check=True,
        timeout=180,
        capture_output=True,
    )


def settings_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The settings every hookline process of a scenario gets (small delays and leases)."""
    return {
        "HOOKLINE_DATA_DIR": str(data_dir),
        "HOOKLINE_API_TOKENS": API_TOKEN,
        "ALLOWED_NETWORKS": "127.0.0.1/32",
        "DELIVERY_CONNECT_TIMEOUT": "1",
        "DELIVERY_TIMEOUT": str(DELIVERY_TIMEOUT_S),
        "RETRY_WORKER_POLL_INTERVAL": "0.1",
        # 15 s, not 5: on a loaded machine a lease extension on SQLite can wait seconds for
        # the single write lock ("database is locked") and a 5 s lease then lapses
        # mid-attempt, a duplicate no fault explains. (On PostgreSQL the extension skips rows
        # a settle holds instead of deadlocking with it.) A SIGKILLed worker's claims come
        # back after 15 s, well inside ``settle_timeout_s``.
        "LEASE_DURATION": "15",
        "SWEEPER_INTERVAL": "1",
        "SHUTDOWN_GRACE_PERIOD": "3",
        "WORKER_CONCURRENCY": "100",
        "WORKER_ENDPOINT_CONCURRENCY": "40",
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
        **extra,
    }


@dataclass
class HooklineProcess:
    """One hookline command this test runs; each (re)start is a new generation with its own
    log file (``<name>.<generation>.log``)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    work_dir: Path
    popen: subprocess.Popen[bytes] | None = None
    generation: int = 0
    log_paths: list[Path] = field(default_factory=list)
    killed_by_test: bool = False
    started_at_s: float = 0.0

    def start(self) -> None:
        if self.running:
            raise AssertionError(f"{self.name} already runs")
        self.generation += 1
        self.killed_by_test = False
        log_path = self.work_dir / f"{self.name}.{self.generation}.log"
        self.log_paths.append(log_path)
        with log_path.open("wb") as log:
            self.popen = subprocess.Popen(
                [str(HOOKLINE), *self.argv],
                cwd=self.work_dir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.started_at_s = time.monotonic()

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def died_unexpectedly(self) -> bool:
        return self.popen is not None and self.popen.poll() is not None and not self.killed_by_test

    @property
    def log_path(self) -> Path:
        return self.log_paths[-1]

    def log_text(self) -> str:
        try:
            return self.log_path.read_text("utf-8", errors="replace")
        except OSError:
            return ""

    def describe(self, tail_lines: int = 25) -> str:
        code = None if self.popen is None else self.popen.poll()
        pid = None if self.popen is None else self.popen.pid
        tail = "\n".join(self.log_text().splitlines()[-tail_lines:])
        return f"--- {self.name} gen {self.generation} (pid {pid}, exit {code}):\n{tail}"

    def kill(self) -> float:
        """SIGKILL (the PID this object started); the moment it was sent."""
        assert self.popen is not None
        self.killed_by_test = True
        at = time.monotonic()
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=STOP_TIMEOUT_S)
        return at

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``STOP_TIMEOUT_S``; always reaps."""
        if self.popen is None:
            return
        self.killed_by_test = True
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=STOP_TIMEOUT_S)

    async def wait_log(self, event: str, *, timeout_s: float = START_TIMEOUT_S) -> None:
        """Wait until this generation logged ``event`` (a JSON ``event`` field)."""
        needle = f'"event": "{event}"'
        deadline = time.monotonic() + timeout_s
        while True:
            text = self.log_text()
            if needle in text or f'"event":"{event}"' in text:
                return
            if not self.running:
                raise AssertionError(
                    f"{self.name} exited before logging {event}:\n" + self.describe()
                )
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{self.name}: no {event} in {timeout_s} s\n" + self.describe()
                )
            await asyncio.sleep(POLL_S * 2)

    async def wait_http_ready(self, base_url: str, *, timeout_s: float = START_TIMEOUT_S) -> None:
        """Wait until ``/readyz`` answers 200."""
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                if not self.running:
                    raise AssertionError(f"{self.name} exited during start-up\n" + self.describe())
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"{base_url}/readyz")).status_code == 200:
                        return
                if time.monotonic() >= deadline:
                    raise AssertionError(
                        f"{self.name} not ready in {timeout_s} s\n" + self.describe()
                    )
                await asyncio.sleep(POLL_S * 2)


def run_migrate(env: Mapping[str, str], work_dir: Path) -> None:
    result = subprocess.run(
        [str(HOOKLINE), "migrate"],
        cwd=work_dir,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"hookline migrate failed:\n{result.stdout}{result.stderr}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# HTTP client side ------------------------------------------------------------------------------


class ApiClient:
    """Calls to hookline's API, every status answered counted (by ``kind``: publish/read)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.client = httpx.AsyncClient(
            base_url=base_url,
            headers=AUTH,
            timeout=httpx.Timeout(15.0, connect=3.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )
        self.statuses: dict[str, Counter[str]] = defaultdict(Counter)
        self.server_errors: list[str] = []

    async def close(self) -> None:
        await self.client.aclose()

    def _count(self, kind: str, method: str, path: str, response: httpx.Response) -> None:
        self.statuses[kind][str(response.status_code)] += 1
        if response.status_code >= 500 and response.status_code != 503:
            self.server_errors.append(
                f"{method} {path} -> {response.status_code}: {response.text[:300]}"
            )

    async def request(
        self, kind: str, method: str, path: str, **kwargs: Any
    ) -> httpx.Response | None:
        """The response, or None after a transport error (counted as ``conn_error``)."""
        try:
            response = await self.client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            self.statuses[kind][f"conn_error:{type(exc).__name__}"] += 1
            return None
        self._count(kind, method, path, response)
        return response

    async def create_webhook(self, url: str) -> str:
        body = {"url": url, "description": "chaos", "retry_config": RETRY_CONFIG}
        deadline = time.monotonic() + 60
        while True:
            response = await self.request("setup", "POST", "/webhooks", json=body)
            if response is not None and response.status_code == 201:
                return str(response.json()["id"])
            if time.monotonic() >= deadline:
                detail = "no answer" if response is None else response.text
                raise AssertionError(f"POST /webhooks failed: {detail}")
            await asyncio.sleep(0.5)

    async def stats(self, webhook_id: str) -> dict[str, int] | None:
        response = await self.request("read", "GET", f"/webhooks/{webhook_id}/stats")
        if response is None or response.status_code != 200:
            return None
        return dict(response.json()["deliveries"])

    async def deliveries(self, webhook_id: str) -> list[dict[str, Any]]:
        """Every delivery of the webhook (all pages); retries a page that fails, bounded."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        deadline = time.monotonic() + 120
        while True:
            params: dict[str, Any] = {"webhook_id": webhook_id, "limit": 500}
            if cursor:
                params["cursor"] = cursor
            response = await self.request("read", "GET", "/deliveries", params=params)
            if response is None or response.status_code != 200:
                if time.monotonic() >= deadline:
                    raise AssertionError(f"GET /deliveries keeps failing: {response}")
                await asyncio.sleep(0.5)
                continue
            page = response.json()
            found += page["data"]
            cursor = page["next_cursor"]
            if not cursor:
                return found


@dataclass
class PublishState:
    """What the publishers did."""

    total: int
    accepted: dict[str, str] = field(default_factory=dict)
    """Idempotency key → event id (the ``webhook-id`` subscribers see)."""
    rejected: dict[str, str] = field(default_factory=dict)
    """Keys answered with a 4xx (never expected)."""
    abandoned: list[str] = field(default_factory=list)
    """Keys never accepted before the publish deadline."""
    retries: int = 0
    repeated: int = 0
    """Accepted with 200: the key had already created its event (a lost 202, retried)."""
    done: asyncio.Event = field(default_factory=asyncio.Event)
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    """Set whenever an event is accepted or publishing ends (the fault injector waits on it)."""


async def publish_all(
    api: ApiClient, state: PublishState, *, prefix: str, profile: ChaosProfile
) -> None:
    """``profile.events`` events over HTTP, like a well-behaved client: each with its own
    idempotency key; a 503 waits ``Retry-After`` and a connection error a moment, then the same
    key is sent again until a 2xx (or the deadline)."""
    next_index = iter(range(state.total))
    deadline = time.monotonic() + profile.publish_timeout_s
    pace_s = profile.publish_concurrency / profile.publish_rate

    async def one(index: int) -> None:
        key = f"{prefix}-{index:06d}"
        body = {"event_type": "chaos.test", "payload": {"n": index}, "idempotency_key": key}
        while time.monotonic() < deadline:
            response = await api.request("publish", "POST", "/events", json=body)
            if response is None:
                state.retries += 1
                await asyncio.sleep(0.2)
                continue
            if response.status_code in (200, 202):
                state.accepted[key] = str(response.json()["id"])
                state.progress.set()
                if response.status_code == 200:
                    state.repeated += 1
                return
            if response.status_code >= 500:
                state.retries += 1
                wait = response.headers.get("Retry-After", "1")
                try:
                    delay = min(float(wait), RETRY_AFTER_CAP_S)
                except ValueError:
                    delay = 1.0
                await asyncio.sleep(max(delay, 0.1))
                continue
            state.rejected[key] = f"{response.status_code}: {response.text[:200]}"
            return
        state.abandoned.append(key)

    async def publisher() -> None:
        for index in next_index:
            started = time.monotonic()
            await one(index)
            rest = pace_s - (time.monotonic() - started)
            if rest > 0:
                await asyncio.sleep(rest)

    try:
        await asyncio.gather(*(publisher() for _ in range(profile.publish_concurrency)))
    finally:
        state.done.set()
        state.progress.set()


# faults -----------------------------------------------------------------------------------------


@dataclass
class FaultRecord:
    kind: str
    at_accepted: int
    started_s: float
    ended_s: float = 0.0
    detail: str = ""
    started_wall: float = field(default_factory=time.time)
    """``time.time()`` at the start, to line the fault up with hookline's log timestamps."""


class FaultInjector:
    """Runs the seeded fault plan: each fault fires once the publishers got ``threshold``
    events accepted (all remaining ones once publishing is over)."""

    def __init__(
        self,
        plan: Sequence[tuple[int, str]],
        actions: Mapping[str, Callable[[], Awaitable[str]]],
        state: PublishState,
    ) -> None:
        self.plan = sorted(plan)
        self.actions = actions
        self.state = state
        self.done: list[FaultRecord] = []
        self.crash_times: list[float] = []
        """Moments a delivering process was SIGKILLed (worker or serve)."""

    @staticmethod
    def make_plan(
        rng: random.Random, counts: Mapping[str, int], total: int
    ) -> list[tuple[int, str]]:
        plan: list[tuple[int, str]] = []
        for kind, count in counts.items():
            plan += [(int(total * rng.uniform(0.08, 1.0)), kind) for _ in range(count)]
        return sorted(plan)

    async def run(self) -> None:
        for threshold, kind in self.plan:
            while len(self.state.accepted) < threshold and not self.state.done.is_set():
                self.state.progress.clear()
                await self.state.progress.wait()
            record = FaultRecord(kind, len(self.state.accepted), time.monotonic())
            record.detail = await self.actions[kind]()
            record.ended_s = time.monotonic()
            self.done.append(record)

    def counts(self) -> dict[str, int]:
        return dict(Counter(record.kind for record in self.done))


# the end check ----------------------------------------------------------------------------------


@dataclass
class Verdict:
    problems: list[str]
    summary: dict[str, Any]


def _overlaps(
    records: Sequence[ReceivedRequest], crash_times: Sequence[float]
) -> tuple[list[str], int]:
    """Requests for the same (webhook-id, path) that were in flight at once: the unexplained
    ones (described), and how many a crash explains (a process SIGKILLed while the earlier
    request ran, or between the two)."""
    by_key: dict[tuple[str, str], list[ReceivedRequest]] = defaultdict(list)
    for record in records:
        by_key[(record.webhook_id, record.path)].append(record)
    unexplained: list[str] = []
    explained = 0
    for (webhook_id, path), group in by_key.items():
        group.sort(key=lambda r: r.arrival_s)
        for i, later in enumerate(group):
            for earlier in group[:i]:
                if earlier.finish_s <= later.arrival_s:
                    continue
                if any(earlier.arrival_s - 0.1 <= t <= later.arrival_s for t in crash_times):
                    explained += 1
                    continue
                at = datetime.fromtimestamp(later.arrival_wall, UTC).strftime("%H:%M:%S.%f")
                unexplained.append(
                    f"{at} {webhook_id} {path}: attempt {earlier.attempt} ({earlier.kind}, "
                    f"{earlier.arrival_s:.3f}-{earlier.finish_s:.3f}) overlaps attempt "
                    f"{later.attempt} ({later.kind}, {later.arrival_s:.3f}-{later.finish_s:.3f})"
                )
    return unexplained, explained


def _duplicate_causes(
    acked: Mapping[tuple[str, str], Sequence[ReceivedRequest]], faults: FaultInjector
) -> dict[str, int]:
    """Each repeated 2xx, by the fault between the previous 2xx and it: ``crash`` (a process
    SIGKILLed), else the kind of a server restart, else ``no_fault`` (never acceptable)."""
    causes: Counter[str] = Counter()
    for group in acked.values():
        ordered = sorted(group, key=lambda r: r.arrival_s)
        for first, again in itertools.pairwise(ordered):
            lo, hi = first.arrival_s - 0.1, again.arrival_s
            if any(lo <= t <= hi for t in faults.crash_times):
                causes["crash"] += 1
                continue
            kinds = [f.kind for f in faults.done if f.started_s <= hi and f.ended_s >= lo]
            causes[kinds[0] if kinds else "no_fault"] += 1
    return dict(causes)


def verify(
    *,
    scenario: str,
    profile: ChaosProfile,
    state: PublishState,
    webhooks: Mapping[str, str],
    deliveries: Sequence[dict[str, Any]],
    records: Sequence[ReceivedRequest],
    faults: FaultInjector,
    api: ApiClient,
    processes: Sequence[HooklineProcess],
    duration_s: float,
    phases: Mapping[str, float],
    settled: bool,
) -> Verdict:
    """Every check of issue 8 on what happened; ``problems`` is empty when all hold."""
    problems: list[str] = []
    path_of = {webhook_id: path for path, webhook_id in webhooks.items()}
    event_ids = set(state.accepted.values())

    acked: dict[tuple[str, str], list[ReceivedRequest]] = defaultdict(list)
    for record in records:
        if record.acked:
            acked[(record.webhook_id, record.path)].append(record)

    # every accepted event reached every receiver with a 2xx
    lost = [
        (event_id, path)
        for event_id in event_ids
        for path in webhooks
        if not acked.get((event_id, path))
    ]
    if lost:
        problems.append(f"{len(lost)} accepted (event, webhook) pairs never got a 2xx: {lost[:10]}")

    # every delivery exists once, is final and succeeded, and matches what the receiver saw
    by_pair: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for delivery in deliveries:
        by_pair[(delivery["event_id"], path_of.get(delivery["webhook_id"], "?"))].append(delivery)
    missing = [
        (event_id, path)
        for event_id in event_ids
        for path in webhooks
        if (event_id, path) not in by_pair
    ]
    if missing:
        problems.append(
            f"{len(missing)} accepted (event, webhook) pairs have no delivery row: {missing[:10]}"
        )
    doubled = [pair for pair, rows in by_pair.items() if len(rows) > 1]
    if doubled:
        problems.append(
            f"{len(doubled)} (event, webhook) pairs have several deliveries: {doubled[:10]}"
        )
    states = Counter(d["state"] for d in deliveries)
    not_succeeded = [d for d in deliveries if d["state"] != "succeeded"]
    if not_succeeded:
        sample = [
            {k: d[k] for k in ("id", "state", "attempt_number", "last_status_code", "last_error")}
            for d in not_succeeded[:8]
        ]
        problems.append(
            f"{len(not_succeeded)} deliveries are not succeeded (by state {dict(states)}): {sample}"
        )
    mismatched: list[str] = []
    for (event_id, path), rows in by_pair.items():
        for delivery in rows:
            if delivery["state"] != "succeeded":
                continue
            seen = acked.get((event_id, path), [])
            if not any(r.attempt == delivery["attempt_number"] for r in seen):
                mismatched.append(
                    f"{delivery['id']} succeeded at attempt {delivery['attempt_number']} "
                    f"(status {delivery['last_status_code']}) but the receiver acked "
                    f"{[(r.attempt, r.kind) for r in seen]}"
                )
    if mismatched:
        problems.append(
            f"{len(mismatched)} succeeded deliveries the receiver did not ack as "
            f"such: {mismatched[:8]}"
        )
    unknown_ids = {r.webhook_id for r in records} - event_ids

    # no two attempts at once; duplicates only after a crash
    overlaps, crash_overlaps = _overlaps(records, faults.crash_times)
    if overlaps:
        problems.append(
            f"{len(overlaps)} attempts overlapped with no crash to explain them: {overlaps[:8]}"
        )
    duplicates = sum(len(group) - 1 for group in acked.values() if len(group) > 1)
    duplicate_causes = _duplicate_causes(acked, faults)
    if duplicate_causes.get("no_fault"):
        problems.append(
            f"{duplicate_causes['no_fault']} duplicate 2xx deliveries with no crash or restart "
            "between the two 2xx answers"
        )

    # what hookline answered; what the publishers could not do
    if api.server_errors:
        problems.append(
            f"hookline answered {len(api.server_errors)} 5xx other than 503: "
            f"{api.server_errors[:5]}"
        )
    if state.rejected:
        problems.append(
            f"{len(state.rejected)} events rejected: {list(state.rejected.items())[:5]}"
        )
    if state.abandoned:
        problems.append(f"{len(state.abandoned)} events never accepted before the deadline")
    if not settled:
        problems.append(f"deliveries not all final within {profile.settle_timeout_s} s")
    dead = [p.describe() for p in processes if p.died_unexpectedly]
    if dead:
        problems.append("hookline processes died on their own:\n" + "\n".join(dead))

    summary = {
        "scenario": scenario,
        "profile": profile.name,
        "seed": profile.seed,
        "duration_s": round(duration_s, 1),
        "phases_s": {name: round(value, 1) for name, value in phases.items()},
        "events_published": state.total,
        "events_accepted": len(state.accepted),
        "events_rejected": len(state.rejected),
        "events_abandoned": len(state.abandoned),
        "publish_retries": state.retries,
        "publish_repeated_keys_answered_200": state.repeated,
        "webhooks": len(webhooks),
        "deliveries": len(deliveries),
        "deliveries_by_state": dict(states),
        "faults": faults.counts(),
        "fault_log": [
            {
                "kind": f.kind,
                "at_accepted": f.at_accepted,
                "took_s": round(f.ended_s - f.started_s, 2),
                "at_utc": datetime.fromtimestamp(f.started_wall, UTC).isoformat(),
                "detail": f.detail,
            }
            for f in faults.done
        ],
        "lost": len(lost),
        "missing_delivery_rows": len(missing),
        "duplicates": duplicates,
        "duplicates_by_cause": duplicate_causes,
        "overlaps_unexplained": len(overlaps),
        "overlaps_explained_by_crash": crash_overlaps,
        "final_state_mismatches": len(mismatched),
        "server_errors_5xx_not_503": len(api.server_errors),
        "status_codes": {kind: dict(counter) for kind, counter in api.statuses.items()},
        "receiver_requests": len(records),
        "receiver_answers": dict(Counter(r.kind for r in records)),
        "receiver_outcomes": dict(Counter(r.outcome for r in records)),
        "receiver_unknown_webhook_ids": len(unknown_ids),
        "processes_died_unexpectedly": len(dead),
        "problems": problems,
    }
    return Verdict(problems=problems, summary=summary)


async def wait_settled(
    api: ApiClient,
    webhook_ids: Sequence[str],
    *,
    expected_each: int,
    timeout_s: float,
    processes: Callable[[], Sequence[HooklineProcess]],
) -> bool:
    """Poll each webhook's stats until all its ``expected_each`` deliveries are final (or a
    process died on its own, or the deadline passed)."""
    deadline = time.monotonic() + timeout_s
    final = ("succeeded", "failed", "cancelled")
    while time.monotonic() < deadline:
        if any(p.died_unexpectedly for p in processes()):
            return False
        done = 0
        for webhook_id in webhook_ids:
            counts = await api.stats(webhook_id)
            if counts is not None and sum(counts.get(s, 0) for s in final) >= expected_each:
                done += 1
        if done == len(webhook_ids):
            return True
        await asyncio.sleep(0.5)
    return False


def log_evidence(processes: Sequence[HooklineProcess], *, limit: int = 12) -> str:
    """Error-level log lines of every generation of every process (what explains a failure)."""
    lines: list[str] = []
    for process in processes:
        for path in process.log_paths:
            try:
                text = path.read_text("utf-8", errors="replace")
            except OSError:
                continue
            hits = [
                line
                for line in text.splitlines()
                if '"level": "error"' in line
                or '"level":"error"' in line
                or "Traceback" in line
                or '"level": "critical"' in line
            ]
            if hits:
                lines.append(f"--- {path.name}: {len(hits)} error lines, first ones:")
                lines += [h[:400] for h in hits[:limit]]
    return "\n".join(lines)


def report_text(summary: Mapping[str, Any]) -> str:
    keep = {k: v for k, v in summary.items() if k not in ("fault_log", "problems")}
    return json.dumps(keep, indent=1, sort_keys=True)
