"""``AlertDispatcher``: dedup, per-endpoint rate limit, the storm cap, bounded memory, and a loop
that survives its notifiers. All on a ManualClock: nothing here sleeps."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import timedelta

import pytest
from structlog.testing import capture_logs

from hookline.clock import ManualClock
from hookline.observability.alerts import (
    MAX_DEDUP_KEYS,
    MAX_MESSAGES_PER_KIND,
    MAX_TRACKED_SUBJECTS,
    STORM_WINDOW_MIN_S,
    Alert,
    AlertDispatcher,
    AlertKind,
    AlertMessage,
    AlertSummary,
    LogNotifier,
    delivery_failed_alert,
    endpoint_disabled_alert,
)

INTERVAL_S = 300.0
STORM_BOUND = MAX_MESSAGES_PER_KIND + 1
"""Messages of one kind per storm window, whatever the storm: the cap plus one summary."""


class Recorder:
    """A notifier that keeps what it was given."""

    def __init__(self) -> None:
        self.batches: list[list[AlertMessage]] = []

    async def notify(self, messages: Sequence[AlertMessage]) -> None:
        self.batches.append(list(messages))

    @property
    def messages(self) -> list[AlertMessage]:
        return [message for batch in self.batches for message in batch]


class Exploding:
    async def notify(self, messages: Sequence[AlertMessage]) -> None:
        raise RuntimeError("the pager is down")


def dispatcher_for(
    clock: ManualClock, *notifiers: object, min_interval_s: float = INTERVAL_S, **kwargs: int
) -> AlertDispatcher:
    return AlertDispatcher(
        clock=clock,
        notifiers=notifiers,  # type: ignore[arg-type]
        min_interval_s=min_interval_s,
        **kwargs,
    )


def failed(clock: ManualClock, endpoint: str = "wh_a", delivery: str = "dlv_1") -> Alert:
    return delivery_failed_alert(
        endpoint_id=endpoint,
        delivery_id=delivery,
        reason="exhausted",
        at=clock.now(),
        event_id="evt_1",
        attempt=6,
        status_code=503,
        error="HTTP 503",
    )


def accounted(messages: Sequence[AlertMessage]) -> int:
    """Alerts a list of messages speaks for: one per alert, ``count`` per summary."""
    return sum(1 if isinstance(m, Alert) else m.count for m in messages)


def summaries(messages: Sequence[AlertMessage]) -> list[AlertSummary]:
    return [m for m in messages if isinstance(m, AlertSummary)]


async def flush_for(dispatcher: AlertDispatcher, clock: ManualClock, seconds: float) -> None:
    """What ``run`` does for ``seconds``: a flush every second."""
    for _ in range(int(seconds)):
        clock.advance(1)
        await dispatcher.flush()


# --- one endpoint --------------------------------------------------------------------------


async def test_the_first_alert_goes_out_once_at_the_next_flush(clock: ManualClock) -> None:
    # Given a dispatcher and one dead letter recorded
    recorder = Recorder()
    dispatcher = dispatcher_for(clock, recorder)
    alert = failed(clock)
    dispatcher.record(alert)

    # Then nothing is sent until a flush, the flush sends it, and later flushes do not repeat it
    assert recorder.batches == []
    assert await dispatcher.flush() == [alert]
    await flush_for(dispatcher, clock, 2 * INTERVAL_S)
    assert recorder.messages == [alert]


async def test_repeats_within_the_interval_are_summarised_when_it_ends(
    clock: ManualClock,
) -> None:
    # Given one endpoint's first dead letter, sent
    recorder = Recorder()
    dispatcher = dispatcher_for(clock, recorder)
    first = failed(clock, delivery="dlv_1")
    dispatcher.record(first)
    await dispatcher.flush()
    opened = clock.now()

    # When two more follow within the interval
    clock.advance(10)
    dispatcher.record(failed(clock, delivery="dlv_2"))
    clock.advance(20)
    dispatcher.record(failed(clock, delivery="dlv_3"))

    # Then nothing more goes out before the interval ends...
    await flush_for(dispatcher, clock, INTERVAL_S - 31)
    assert recorder.messages == [first]

    # ...and once it has, one summary counts them, with their times and ids
    await flush_for(dispatcher, clock, 1)
    assert clock.now() == opened + timedelta(seconds=INTERVAL_S)
    assert recorder.messages == [
        first,
        AlertSummary(
            kind=AlertKind.DELIVERY_FAILED,
            subject="wh_a",
            count=2,
            subjects=1,
            first_at=opened + timedelta(seconds=10),
            last_at=opened + timedelta(seconds=30),
            examples=("dlv_2", "dlv_3"),
        ),
    ]
    assert recorder.messages[1].title == "2 more deliveries failed permanently to webhook wh_a"

    # And the next one after that goes out on its own again
    later = failed(clock, delivery="dlv_4")
    dispatcher.record(later)
    await dispatcher.flush()
    assert recorder.messages[-1] == later


async def test_an_endpoint_disabled_twice_in_the_interval_alerts_once_then_summarises(
    clock: ManualClock,
) -> None:
    recorder = Recorder()
    dispatcher = dispatcher_for(clock, recorder)
    first = endpoint_disabled_alert(endpoint_id="wh_a", reason="gone", at=clock.now())
    dispatcher.record(first)
    clock.advance(60)  # re-enabled by hand and gone again
    dispatcher.record(endpoint_disabled_alert(endpoint_id="wh_a", reason="gone", at=clock.now()))
    await flush_for(dispatcher, clock, INTERVAL_S)

    [alert, summary] = recorder.messages
    assert alert == first
    assert isinstance(summary, AlertSummary)
    assert (summary.kind, summary.subject, summary.count) == (
        AlertKind.ENDPOINT_DISABLED,
        "wh_a",
        1,
    )


async def test_10000_dead_letters_on_one_endpoint_send_two_messages(clock: ManualClock) -> None:
    # Given a dispatcher flushed every second, as run() does
    recorder = Recorder()
    dispatcher = dispatcher_for(clock, recorder)

    # When one endpoint dead-letters 10,000 deliveries within 100 s
    for n in range(10_000):
        dispatcher.record(failed(clock, delivery=f"dlv_{n}"))
        if n % 100 == 99:
            await flush_for(dispatcher, clock, 1)
    await flush_for(dispatcher, clock, 2 * INTERVAL_S)

    # Then the first went out on its own and one summary counts the other 9,999
    first, summary = recorder.messages
    assert isinstance(first, Alert)
    assert first.key == "dlv_0"
    assert isinstance(summary, AlertSummary)
    assert (summary.subject, summary.count, summary.subjects) == ("wh_a", 9_999, 1)
    assert summary.examples == ("dlv_1", "dlv_2", "dlv_3", "dlv_4", "dlv_5")


# --- many endpoints ------------------------------------------------------------------------


async def test_10000_dead_letters_across_10000_endpoints_send_21_messages(
    clock: ManualClock,
) -> None:
    # Given a dispatcher flushed every second
    recorder = Recorder()
    dispatcher = dispatcher_for(clock, recorder)

    # When 10,000 endpoints each dead-letter one delivery within 100 s
    for n in range(10_000):
        dispatcher.record(failed(clock, endpoint=f"wh_{n}", delivery=f"dlv_{n}"))
        if n % 100 == 99:
            await flush_for(dispatcher, clock, 1)
    await flush_for(dispatcher, clock, 2 * INTERVAL_S)

    # Then the first 20 go out on their own and one summary counts the other 9,980 (bound: 21)
    messages = recorder.messages
    assert len(messages) == STORM_BOUND
    assert [m.subject for m in messages[:MAX_MESSAGES_PER_KIND]] == [
        f"wh_{n}" for n in range(MAX_MESSAGES_PER_KIND)
    ]
    [summary] = summaries(messages)
    assert summary.subject is None
    assert (summary.count, summary.subjects) == (9_980, 9_980)
    assert summary.examples == ("wh_20", "wh_21", "wh_22", "wh_23", "wh_24")
    assert summary.title == "9980 more deliveries failed permanently across 9980 webhooks"
    assert accounted(messages) == 10_000


async def test_a_long_storm_of_both_kinds_stays_within_the_bound_and_loses_no_count(
    clock: ManualClock,
) -> None:
    # Given a dispatcher flushed every second
    recorder = Recorder()
    dispatcher = dispatcher_for(clock, recorder)
    rng = random.Random(11)
    windows = 6  # storm windows of INTERVAL_S
    recorded = 0

    # When for half an hour 3,000 endpoints fail at random, 40 dead letters and 2 disables a
    # second (some of them the same fact reported twice)
    for second in range(int(windows * INTERVAL_S)):
        for _ in range(40):
            endpoint = rng.randrange(3_000)
            delivery = f"dlv_{second}_{rng.randrange(30)}"
            dispatcher.record(failed(clock, endpoint=f"wh_{endpoint}", delivery=delivery))
            recorded += 1
        for _ in range(2):
            dispatcher.record(
                endpoint_disabled_alert(
                    endpoint_id=f"wh_{rng.randrange(3_000)}", reason="failing", at=clock.now()
                )
            )
            recorded += 1
        await flush_for(dispatcher, clock, 1)
    await flush_for(dispatcher, clock, 2 * INTERVAL_S)

    # Then each kind sent at most 21 messages per storm window (the last summary comes one
    # window after the storm)...
    messages = recorder.messages
    for kind in AlertKind:
        assert len([m for m in messages if m.kind is kind]) <= (windows + 1) * STORM_BOUND
    # ...and every alert is accounted for: sent, counted in a summary, or a duplicate
    assert dispatcher.stats.duplicates > 0
    assert accounted(messages) + dispatcher.stats.duplicates == recorded


async def test_repeats_after_a_storm_summary_went_out_get_a_summary_of_their_own(
    clock: ManualClock,
) -> None:
    # Given a cap of one message: wh_a's alert goes out, wh_b's (200 s later) is only counted
    recorder = Recorder()
    dispatcher = dispatcher_for(clock, recorder, max_messages_per_kind=1)
    dispatcher.record(failed(clock, endpoint="wh_a", delivery="dlv_a"))
    clock.advance(200)
    dispatcher.record(failed(clock, endpoint="wh_b", delivery="dlv_b1"))
    await flush_for(dispatcher, clock, 100)  # the storm window ends: its summary goes out

    # When wh_b fails again while its own interval still runs, then nothing more for a while
    await flush_for(dispatcher, clock, 100)
    dispatcher.record(failed(clock, endpoint="wh_b", delivery="dlv_b2"))
    await flush_for(dispatcher, clock, 2 * INTERVAL_S)

    # Then that repeat is in a second summary across endpoints, which names wh_b again
    alert, *rest = recorder.messages
    assert alert.subject == "wh_a"
    assert [(s.subject, s.count, s.subjects, s.examples) for s in summaries(rest)] == [
        (None, 1, 1, ("wh_b",)),
        (None, 1, 1, ("wh_b",)),
    ]
    assert len(rest) == 2


async def test_the_storm_cap_is_per_kind(clock: ManualClock) -> None:
    recorder = Recorder()
    dispatcher = dispatcher_for(clock, recorder)
    for n in range(MAX_MESSAGES_PER_KIND):
        dispatcher.record(failed(clock, endpoint=f"wh_{n}", delivery=f"dlv_{n}"))
        dispatcher.record(
            endpoint_disabled_alert(endpoint_id=f"wh_{n}", reason="gone", at=clock.now())
        )
    await dispatcher.flush()
    assert len(recorder.messages) == 2 * MAX_MESSAGES_PER_KIND
    assert all(isinstance(m, Alert) for m in recorder.messages)


async def test_with_no_interval_each_distinct_alert_goes_out_but_the_storm_cap_holds(
    clock: ManualClock,
) -> None:
    # Given ALERT_MIN_INTERVAL=0
    recorder = Recorder()
    dispatcher = dispatcher_for(clock, recorder, min_interval_s=0)

    # When one endpoint dead-letters 5 deliveries, then 100 more arrive at once
    for n in range(5):
        dispatcher.record(failed(clock, delivery=f"dlv_{n}"))
        await flush_for(dispatcher, clock, 1)
    assert [m.key for m in recorder.messages if isinstance(m, Alert)] == [
        f"dlv_{n}" for n in range(5)
    ]
    for n in range(5, 105):
        dispatcher.record(failed(clock, delivery=f"dlv_{n}"))
    await flush_for(dispatcher, clock, 2 * STORM_WINDOW_MIN_S)

    # Then the storm window (at least a minute) still caps it
    messages = recorder.messages
    assert len(messages) == STORM_BOUND
    assert accounted(messages) == 105


# --- duplicates, memory, failures ----------------------------------------------------------


async def test_the_same_alert_twice_is_sent_once_and_not_counted(clock: ManualClock) -> None:
    # Given one dead letter reported three times (a second report may come later, with a
    # different time: it is still the same delivery)
    recorder = Recorder()
    dispatcher = dispatcher_for(clock, recorder)
    alert = failed(clock)
    dispatcher.record(alert)
    dispatcher.record(alert)
    clock.advance(5)
    dispatcher.record(failed(clock))

    # When the interval passes
    await flush_for(dispatcher, clock, 2 * INTERVAL_S)

    # Then it was sent once and no summary counts the copies
    assert recorder.messages == [alert]
    assert dispatcher.stats.duplicates == 2


async def test_memory_stays_bounded_in_a_storm_over_50000_endpoints(clock: ManualClock) -> None:
    # Given a dispatcher with the default limits
    recorder = Recorder()
    dispatcher = dispatcher_for(clock, recorder)

    # When 50,000 endpoints each dead-letter two deliveries, with no flush in between
    for n in range(50_000):
        dispatcher.record(failed(clock, endpoint=f"wh_{n}", delivery=f"dlv_{n}_a"))
        dispatcher.record(failed(clock, endpoint=f"wh_{n}", delivery=f"dlv_{n}_b"))

    # Then what it holds stays under its limits, older windows having been dropped
    assert dispatcher.tracked_subjects <= MAX_TRACKED_SUBJECTS
    assert dispatcher.remembered_keys <= MAX_DEDUP_KEYS
    assert dispatcher.stats.evicted == 50_000 - MAX_TRACKED_SUBJECTS

    # And the storm still comes out as 21 messages that account for all 100,000
    await flush_for(dispatcher, clock, 2 * INTERVAL_S)
    assert len(recorder.messages) == STORM_BOUND
    assert accounted(recorder.messages) == 100_000


async def test_a_dropped_window_hands_its_count_to_the_storm_summary(clock: ManualClock) -> None:
    # Given room for 3 endpoints, and 3 endpoints with a first alert and one repeat each
    recorder = Recorder()
    dispatcher = dispatcher_for(clock, recorder, max_tracked_subjects=3)
    for name in ("wh_a", "wh_b", "wh_c"):
        dispatcher.record(failed(clock, endpoint=name, delivery=f"{name}_1"))
        dispatcher.record(failed(clock, endpoint=name, delivery=f"{name}_2"))

    # When a fourth endpoint alerts (the oldest window, wh_a's, must go)
    dispatcher.record(failed(clock, endpoint="wh_d", delivery="wh_d_1"))
    await flush_for(dispatcher, clock, 2 * INTERVAL_S)

    # Then four alerts went out, wh_b and wh_c got their own summaries, and wh_a's repeat is
    # in the summary across endpoints
    messages = recorder.messages
    assert [m.subject for m in messages if isinstance(m, Alert)] == ["wh_a", "wh_b", "wh_c", "wh_d"]
    assert sorted((s.subject or "", s.count) for s in summaries(messages)) == [
        ("", 1),
        ("wh_b", 1),
        ("wh_c", 1),
    ]
    assert dispatcher.tracked_subjects <= 3
    assert accounted(messages) == 7


async def test_a_raising_notifier_stops_neither_the_others_nor_later_flushes(
    clock: ManualClock,
) -> None:
    # Given a notifier that raises next to one that works
    recorder = Recorder()
    dispatcher = dispatcher_for(clock, Exploding(), recorder)
    first = failed(clock, endpoint="wh_a")
    dispatcher.record(first)

    # When two flushes run
    with capture_logs() as logs:
        await dispatcher.flush()
        second = failed(clock, endpoint="wh_b")
        dispatcher.record(second)
        await dispatcher.flush()

    # Then the working notifier got both, and each failure was logged with its traceback
    assert recorder.messages == [first, second]
    failures = [entry for entry in logs if entry["event"] == "alert.notifier_failed"]
    assert len(failures) == 2
    assert failures[0]["notifier"] == "Exploding"
    assert failures[0]["error"] == "RuntimeError: the pager is down"
    assert all(entry["exc_info"] for entry in failures)


async def test_record_never_raises(clock: ManualClock) -> None:
    # Given something that is not an alert (a wiring bug)
    recorder = Recorder()
    dispatcher = dispatcher_for(clock, recorder)

    # When it is recorded, then nothing is raised, the error is logged and counted
    with capture_logs() as logs:
        dispatcher.record(object())  # type: ignore[arg-type]
    assert dispatcher.stats.errors == 1
    assert [entry["event"] for entry in logs] == ["alert.record_failed"]

    # And the dispatcher goes on working
    alert = failed(clock)
    dispatcher.record(alert)
    assert await dispatcher.flush() == [alert]


async def test_the_sink_methods_record_alerts_stamped_now(clock: ManualClock) -> None:
    # Given the two calls DeliveryService and EndpointService make (their AlertSink)
    recorder = Recorder()
    dispatcher = dispatcher_for(clock, recorder)
    dispatcher.delivery_failed(
        delivery_id="dlv_1", endpoint_id="wh_a", event_id="evt_1", reason="permanent", error="x"
    )
    dispatcher.endpoint_disabled(
        endpoint_id="wh_a", reason="gone", trigger="automatic", cancelled_deliveries=2
    )
    fail_since = clock.now() - timedelta(hours=24)
    dispatcher.endpoint_disabled(
        endpoint_id="wh_b",
        reason="failing",
        trigger="automatic",
        cancelled_deliveries=0,
        parked_deliveries=5,
        fail_since=fail_since,
    )

    # Then they are alerts like any other, at the clock's time
    failed_alert, disabled, parking = await dispatcher.flush()
    assert failed_alert == delivery_failed_alert(
        endpoint_id="wh_a",
        delivery_id="dlv_1",
        event_id="evt_1",
        reason="permanent",
        error="x",
        at=clock.now(),
    )
    assert disabled == endpoint_disabled_alert(
        endpoint_id="wh_a", reason="gone", at=clock.now(), cancelled_deliveries=2
    )
    assert parking == endpoint_disabled_alert(
        endpoint_id="wh_b",
        reason="failing",
        at=clock.now(),
        cancelled_deliveries=0,
        parked_deliveries=5,
        fail_since=fail_since,
    )
    assert isinstance(parking, Alert)
    assert (parking.fields["parked_deliveries"], parking.fields["fail_since"]) == (
        5,
        fail_since.isoformat(),
    )


async def test_the_sink_methods_never_raise(
    clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    dispatcher = dispatcher_for(clock, Recorder())

    def broken_now() -> None:
        raise RuntimeError("clock gone")

    monkeypatch.setattr(clock, "now", broken_now)
    with capture_logs() as logs:
        dispatcher.delivery_failed(
            delivery_id="dlv_1", endpoint_id="wh_a", event_id="", reason="permanent", error=None
        )
        dispatcher.endpoint_disabled(endpoint_id="wh_a", reason="gone", trigger="manual")
    assert dispatcher.stats.errors == 2
    assert [entry["event"] for entry in logs] == ["alert.record_failed"] * 2


async def test_run_survives_a_failing_flush_backs_off_and_goes_on(
    clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a dispatcher whose first flush fails, and an alert waiting
    recorder = Recorder()
    dispatcher = dispatcher_for(clock, recorder)
    flush = dispatcher.flush
    calls = 0
    stop = asyncio.Event()

    async def flaky_flush() -> list[AlertMessage]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("bug in flush")
        sent = await flush()
        if sent:
            stop.set()
        return sent

    monkeypatch.setattr(dispatcher, "flush", flaky_flush)
    alert = failed(clock)
    dispatcher.record(alert)
    started = clock.monotonic()

    # When run() loops until the alert is out
    with capture_logs() as logs:
        await asyncio.wait_for(dispatcher.run(stop), timeout=30)

    # Then the failure was logged with its traceback, the next flush came after a back-off
    # (twice the 1 s flush interval), sent the alert, and the final flush ran on stop
    [failure] = [entry for entry in logs if entry["event"] == "alert.flush_failed"]
    assert failure["error"] == "RuntimeError: bug in flush"
    assert failure["exc_info"] is True
    assert failure["retry_in_s"] == 2.0
    assert clock.monotonic() - started == 2.0
    assert recorder.messages == [alert]
    assert calls == 3


async def test_run_flushes_what_is_left_when_stopped(clock: ManualClock) -> None:
    recorder = Recorder()
    dispatcher = dispatcher_for(clock, recorder)
    alert = failed(clock)
    dispatcher.record(alert)
    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(dispatcher.run(stop), timeout=30)
    assert recorder.messages == [alert]


async def test_run_flushes_every_interval_until_stopped(clock: ManualClock) -> None:
    # Given a running dispatcher (on a ManualClock each sleep moves time on by itself)
    recorder = Recorder()
    dispatcher = dispatcher_for(clock, recorder)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        # When an alert is recorded while it runs, then it goes out without a manual flush
        alert = failed(clock)
        dispatcher.record(alert)
        for _ in range(1_000):
            if recorder.messages:
                break
            await asyncio.sleep(0)
        assert recorder.messages == [alert]
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
    assert task.done()


# --- the log notifier ----------------------------------------------------------------------


async def test_the_log_notifier_writes_one_line_per_message(clock: ManualClock) -> None:
    alert = failed(clock)
    fail_since = clock.now() - timedelta(minutes=5)
    disabled = endpoint_disabled_alert(  # a 404 parks what waits: nothing cancelled
        endpoint_id="wh_a",
        reason="not_found",
        at=clock.now(),
        cancelled_deliveries=0,
        parked_deliveries=3,
        fail_since=fail_since,
    )
    summary = AlertSummary(
        kind=AlertKind.DELIVERY_FAILED,
        subject=None,
        count=42,
        subjects=7,
        first_at=clock.now(),
        last_at=clock.now(),
        examples=("wh_b", "wh_c"),
    )
    with capture_logs() as logs:
        await LogNotifier().notify([alert, disabled, summary])

    assert [(entry["event"], entry["log_level"]) for entry in logs] == [
        ("alert.delivery_failed", "warning"),
        ("alert.endpoint_disabled", "warning"),
        ("alert.summary", "warning"),
    ]
    failed_line, disabled_line, summary_line = logs
    assert failed_line["endpoint_id"] == "wh_a"
    assert failed_line["job_id"] == "dlv_1"
    assert failed_line["event_id"] == "evt_1"
    assert failed_line["reason"] == "exhausted"
    assert failed_line["status_code"] == 503
    assert failed_line["occurred_at"] == clock.now().isoformat()
    assert disabled_line["reason"] == "not_found"
    assert disabled_line["trigger"] == "automatic"
    assert (disabled_line["parked_deliveries"], disabled_line["cancelled_deliveries"]) == (3, 0)
    assert disabled_line["fail_since"] == fail_since.isoformat()
    assert summary_line["kind"] == "delivery_failed"
    assert summary_line["endpoint_id"] is None
    assert (summary_line["count"], summary_line["endpoints"]) == (42, 7)
    assert summary_line["examples"] == ["wh_b", "wh_c"]


def test_a_long_error_is_cut_short(clock: ManualClock) -> None:
    alert = delivery_failed_alert(
        endpoint_id="wh_a",
        delivery_id="dlv_1",
        reason="permanent",
        at=clock.now(),
        error="x" * 5000,
    )
    error = alert.fields["error"]
    assert isinstance(error, str)
    assert len(error) == 300
