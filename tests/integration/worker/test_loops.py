"""The long-running loops survive any exception, say so in /readyz, and a dead one stops the
process non-zero (issue 8, defect 3)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from hookline import cli
from hookline.api.app import create_app
from hookline.clock import ManualClock
from hookline.service.health import LoopState
from hookline.settings import Settings
from hookline.worker.retry_worker import RetryWorker
from hookline.worker.sweeper import Sweeper
from tests.integration.conftest import Harness

DEADLINE_S = 30.0


async def _until(condition: Callable[[], bool], stop: asyncio.Event) -> None:
    """Set ``stop`` once ``condition`` holds (fail after a generous real-time deadline)."""
    deadline = time.monotonic() + DEADLINE_S
    try:
        while not condition():
            assert time.monotonic() < deadline, "condition not reached in time"
            await asyncio.sleep(0.005)
    finally:
        stop.set()


class _StillClock:
    """``now()`` of a ``ManualClock`` that nobody moves; ``sleep`` waits a little real time."""

    def __init__(self, clock: ManualClock) -> None:
        self._clock = clock

    def now(self) -> datetime:
        return self._clock.now()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(min(seconds, 0.01))


def _flaky(errors: list[BaseException], real: Callable[..., Any]) -> Callable[..., Any]:
    """A coroutine function that raises ``errors`` one per call, then behaves as ``real``."""

    async def call(*args: Any, **kwargs: Any) -> Any:
        if errors:
            raise errors.pop(0)
        return await real(*args, **kwargs)

    return call


@pytest.mark.parametrize("deployment", ["postgres+redis"], indirect=True)
async def test_the_sweeper_survives_any_exception_and_reports_it(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a sweeper whose passes fail with errors that are not HooklineErrors (what a
    # PostgreSQL restart raises), then work again
    runtime = harness.runtime
    loops = runtime.loops
    sweeper = Sweeper(
        sessions=runtime.sessions,
        queue=runtime.queue,
        clock=harness.clock,
        metrics=runtime.metrics,
        interval_s=1,
        retention_days=30,
        loops=loops,
    )
    errors: list[BaseException] = [ConnectionRefusedError("restarting"), KeyError("bug")]
    passes: list[str] = []
    real = sweeper.run_once

    async def run_once() -> Any:
        passes.append("pass")
        return await _flaky(errors, real)()

    monkeypatch.setattr(sweeper, "run_once", run_once)
    stop = asyncio.Event()
    seen: set[LoopState] = set()

    def recovered() -> bool:
        seen.update(loops.states.values())
        return not errors and loops.states.get("sweeper") is LoopState.RUNNING

    # When it runs until it has recovered
    with capture_logs() as logs:
        await asyncio.gather(sweeper.run(stop), _until(recovered, stop))

    # Then it logged each failure with its traceback, reported failing, and went on
    failures = [entry for entry in logs if entry["event"] == "sweeper.pass_failed"]
    assert [f["error"].split(":")[0] for f in failures] == ["ConnectionRefusedError", "KeyError"]
    assert all(f["exc_info"] for f in failures)
    assert failures[1]["retry_in_s"] > failures[0]["retry_in_s"]  # it backs off
    assert LoopState.FAILING in seen
    assert len(passes) >= 3
    assert loops.states["sweeper"] is LoopState.STOPPED  # after stop


async def test_the_worker_survives_a_failing_claim_and_then_delivers(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a due delivery and a queue whose claims fail twice with non-hookline errors
    await harness.add_endpoint()
    [delivery] = (await harness.publish()).deliveries
    queue = harness.runtime.queue
    errors: list[BaseException] = [ConnectionResetError("reset"), RuntimeError("bug")]
    monkeypatch.setattr(queue, "get_due_retries", _flaky(errors, queue.get_due_retries))
    worker = RetryWorker.from_runtime(harness.runtime)
    stop = asyncio.Event()

    # When the production loop runs until the receiver has it (">= 1": on a ManualClock an
    # idle loop's every sleep moves time on, so a lease can run out and the delivery be sent
    # a second time before this check sees the first)
    with capture_logs() as logs:
        await asyncio.gather(
            worker.run(stop), _until(lambda: len(harness.receiver.requests) >= 1, stop)
        )

    # Then both failures were logged with tracebacks and the delivery still went out
    failed = [entry for entry in logs if entry["event"] == "worker.poll_failed"]
    assert len(failed) == 2
    assert all(entry["exc_info"] for entry in failed)
    assert harness.receiver.requests[0].headers["webhook-id"] == delivery.event_id


async def test_readyz_is_503_while_a_loop_is_failing(harness: Harness) -> None:
    # Given this process's worker loop backing off after a failure
    loops = harness.runtime.loops
    loops.running("sweeper")
    loops.failing("worker", ConnectionRefusedError("database restarting"))
    transport = httpx.ASGITransport(app=create_app(harness.runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://hookline.test") as http:
        # Then /readyz says not ready, and which loop and why
        failing = await http.get("/readyz")
        assert failing.status_code == 503
        body = failing.json()
        assert body["loops"] == {"sweeper": "running", "worker": "failing"}
        assert "worker: failing (ConnectionRefusedError: database restarting)" in body["detail"]

        # And once the loop runs again, it is ready
        loops.running("worker")
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["loops"] == {"sweeper": "running", "worker": "running"}


async def test_a_loop_that_ends_by_itself_stops_the_process_non_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a worker loop that returns on its own (a bug: loops only end when told to stop)
    async def ends_at_once(self: RetryWorker, stop: asyncio.Event) -> None:
        return None

    monkeypatch.setattr(RetryWorker, "run", ends_at_once)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        HOOKLINE_DATA_DIR=str(tmp_path),
        HOOKLINE_QUEUE_BACKEND="sql",
    )

    # When `hookline worker` runs, it does not linger half-alive: it exits with EXIT_LOOP_DIED
    with capture_logs() as logs:
        code = await asyncio.wait_for(
            cli._run(settings, listen=None, work=True, migrate=True), timeout=DEADLINE_S
        )
    assert code == cli.EXIT_LOOP_DIED != 0
    assert [e["loop"] for e in logs if e["event"] == "hookline.loop_died"] == ["worker"]


@pytest.mark.parametrize("deployment", ["sqlite+sql"], indirect=True)
async def test_the_sweeper_waits_between_passes_on_its_clock(harness: Harness) -> None:
    # Given a sweeper that sweeps once an hour, on a manual clock
    runtime = harness.runtime
    sweeper = Sweeper(
        sessions=runtime.sessions,
        queue=runtime.queue,
        clock=harness.clock,
        metrics=runtime.metrics,
        interval_s=3600,
        retention_days=30,
        loops=runtime.loops,
    )
    passes: list[float] = []
    real = sweeper.run_once

    async def run_once() -> Any:
        passes.append(harness.clock.monotonic())
        return await real()

    sweeper.run_once = run_once  # type: ignore[method-assign]
    stop = asyncio.Event()

    # When it runs for three passes (within the real-time deadline, far less than 2 hours)
    await asyncio.gather(sweeper.run(stop), _until(lambda: len(passes) >= 3, stop))

    # Then each pause was the hour, taken on the clock it was given
    assert [b - a for a, b in itertools.pairwise(passes[:3])] == [3600, 3600]


@pytest.mark.parametrize("deployment", ["sqlite+sql"], indirect=True)
async def test_a_stopped_worker_waits_for_its_lease_extension_to_unwind(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a request the receiver holds open, and a lease extension in flight that takes a
    # while to unwind once cancelled (as a database statement rolling back does)
    hold = asyncio.Event()
    harness.receiver.on("/slow", hold=hold)
    await harness.add_endpoint("/slow")
    await harness.publish()
    started: list[bool] = []
    unwound: list[bool] = []

    async def extend_lease(delivery_ids: Any, *, now: Any, lease_s: float) -> None:
        started.append(True)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            for _ in range(50):
                await asyncio.sleep(0)
            unwound.append(True)
            raise

    monkeypatch.setattr(harness.runtime.queue, "extend_lease", extend_lease)
    worker = RetryWorker.from_runtime(harness.runtime)
    stop = asyncio.Event()

    def settled_with_the_extension_in_flight() -> bool:
        if harness.receiver.requests and started:
            hold.set()  # the request may finish now; the extension stays in flight
        return hold.is_set() and worker.claimed == 0

    # When it is stopped once the delivery is settled (nothing else left to wait for)
    await asyncio.gather(worker.run(stop), _until(settled_with_the_extension_in_flight, stop))

    # Then, by the time run() returns, the extension has unwound: nothing it started is left
    # for the runtime's close (or the event loop's) to find still running
    assert unwound == [True]
    assert not [task for task in asyncio.all_tasks() if task.get_name() == "lease-extender"]


async def test_an_answer_is_settled_even_when_noting_its_send_time_fails(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a worker whose bookkeeping of send times has a bug
    await harness.add_endpoint()
    [delivery] = (await harness.publish()).deliveries
    worker = RetryWorker.from_runtime(harness.runtime)

    def broken(_answer: object) -> None:
        raise RuntimeError("bookkeeping bug")

    monkeypatch.setattr(worker, "_observe_send_time", broken)
    stop = asyncio.Event()
    settled: list[str] = []

    async def succeeded() -> None:
        deadline = time.monotonic() + DEADLINE_S
        try:
            while (await harness.delivery(delivery.id)).state != "succeeded":
                assert time.monotonic() < deadline, "the delivery was never settled"
                await asyncio.sleep(0.01)
            settled.append(delivery.id)
        finally:
            stop.set()

    # When the production loop sends it
    with capture_logs() as logs:
        await asyncio.gather(worker.run(stop), succeeded())

    # Then its outcome was still recorded, and the bug logged with its traceback
    assert settled == [delivery.id]
    failures = [e for e in logs if e["event"] == "worker.observe_failed"]
    assert failures
    assert all(f["exc_info"] for f in failures)


async def test_deliveries_over_an_endpoints_cap_wait_in_the_worker_not_the_queue(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given four deliveries to one endpoint whose cap is two, and a worker on a clock that
    # stands still (its sleeps are short real ones: on a ManualClock every idle sleep would
    # move time on until leases expire and claims are taken again)
    await harness.add_endpoint()
    ids = [(await harness.publish(payload={"n": n})).deliveries[0].id for n in range(4)]
    worker = RetryWorker(
        delivery=harness.runtime.delivery,
        queue=harness.runtime.queue,
        clock=_StillClock(harness.clock),
        batch_size=10,
        concurrency=10,
        endpoint_concurrency=2,
        lease_s=60,
        poll_interval_s=1,
        shutdown_grace_s=5,
    )
    in_flight, most = 0, 0
    real_send = harness.runtime.delivery.send

    async def counting_send(planned: Any) -> Any:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            return await real_send(planned)
        finally:
            in_flight -= 1

    monkeypatch.setattr(harness.runtime.delivery, "send", counting_send)
    put_back: list[Any] = []
    real_schedule = harness.runtime.queue.schedule_many

    async def recording_schedule(items: Any) -> None:
        put_back.extend(items)
        await real_schedule(items)

    monkeypatch.setattr(harness.runtime.queue, "schedule_many", recording_schedule)

    # When the production loop runs until all four have arrived
    stop = asyncio.Event()
    await asyncio.gather(
        worker.run(stop), _until(lambda: len(harness.receiver.requests) >= 4, stop)
    )

    # Then never more than two were in flight, the two over the cap waited in the worker
    # (none went back to the queue), and every one succeeded once
    assert most == 2
    assert put_back == []
    assert len(harness.receiver.requests) == 4
    assert {(await harness.delivery(i)).state for i in ids} == {"succeeded"}
    assert worker.claimed == 0


async def test_an_idle_worker_reports_its_settler_running(harness: Harness) -> None:
    # Given the production loop of a worker with nothing to do
    worker = RetryWorker.from_runtime(harness.runtime)
    loops = harness.runtime.loops
    stop = asyncio.Event()

    # When it has started, Then /readyz's loops say the claim loop and the settler run (the
    # settler waits for answers, which is not "starting" for ever)
    await asyncio.gather(
        worker.run(stop),
        _until(lambda: loops.states.get("settler") is LoopState.RUNNING, stop),
    )
    assert loops.states["settler"] is LoopState.STOPPED  # after stop
