"""Poison isolation (issue 8): one bad row, body or endpoint fails alone; its neighbours settle.

Each scenario puts a poisoned webhook beside a healthy one in the same batches and checks that
every healthy delivery arrives, exactly once, while the poisoned ones end where they should
(dead-lettered with a message that names the problem, or retried), and that the worker is left
with no claim and no per-endpoint slot held.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from hookline.domain.outcome import AttemptError
from hookline.sender.client import OutboundRequest, SendResult
from hookline.service.endpoints import retry_config_of
from hookline.storage.models import Delivery, DeliveryAttempt, Endpoint
from hookline.storage.repositories import deliveries as deliveries_repo
from tests.integration.conftest import Harness

HEALTHY_EVENTS = 20


async def _publish_to_both(harness: Harness, count: int = HEALTHY_EVENTS) -> dict[str, list[str]]:
    """``count`` events, each fanned out to every webhook; delivery ids by webhook id."""
    by_webhook: dict[str, list[str]] = {}
    for n in range(count):
        result = await harness.publish(payload={"n": n})
        for delivery in result.deliveries:
            by_webhook.setdefault(delivery.endpoint_id, []).append(delivery.id)
    return by_webhook


async def _states(harness: Harness, delivery_ids: list[str]) -> dict[str, Delivery]:
    async with harness.runtime.sessions() as session:
        rows = await session.execute(select(Delivery).where(Delivery.id.in_(delivery_ids)))
    return {d.id: d for d in rows.scalars()}


def _arrived(harness: Harness, path: str) -> list[str]:
    return [r.headers["webhook-id"] for r in harness.receiver.requests if r.path == path]


async def test_an_unreadable_retry_config_dead_letters_only_its_own_deliveries(
    harness: Harness,
) -> None:
    # Given a webhook whose stored retry config cannot be read (what the 500 of issue 8 stored:
    # base_delay above the default max_delay) beside a healthy webhook
    poisoned = await harness.add_endpoint(
        "/poisoned", retry_config={"base_delay": 8000.0, "max_delay": 7200.0}
    )
    healthy = await harness.add_endpoint("/healthy")
    deliveries = await _publish_to_both(harness)

    # When the worker runs the mixed batches
    await harness.worker(batch_size=7).drain()

    # Then every healthy delivery arrived once and succeeded...
    healthy_states = await _states(harness, deliveries[healthy])
    assert {d.state for d in healthy_states.values()} == {"succeeded"}
    assert len(_arrived(harness, "/healthy")) == HEALTHY_EVENTS
    # ...and the poisoned ones were never sent: dead letters that say why and how to fix it
    assert _arrived(harness, "/poisoned") == []
    poisoned_states = await _states(harness, deliveries[poisoned])
    assert {d.state for d in poisoned_states.values()} == {"failed"}
    for delivery in poisoned_states.values():
        assert delivery.last_error is not None
        assert "retry config" in delivery.last_error
        assert f"/webhooks/{poisoned}/retry-config" in delivery.last_error
        assert "max_delay" in delivery.last_error
    assert await harness.runtime.queue.depth() == 0

    # And the API reads of that webhook still answer, flagging the config as invalid
    effective = await harness.runtime.endpoints.get_retry_config(endpoint_id=poisoned)
    assert effective.source == "invalid"
    assert effective.problem is not None
    assert "max_delay" in effective.problem
    assert retry_config_of(await harness.endpoint(poisoned)).source == "invalid"

    # When an operator replaces the config and replays the dead letters, they arrive
    await harness.runtime.endpoints.set_retry_config(endpoint_id=poisoned, config=None)
    replayed = await harness.runtime.dead_letters.replay(endpoint_id=poisoned)
    assert (replayed.replayed, replayed.skipped) == (HEALTHY_EVENTS, {})
    await harness.run()
    assert len(_arrived(harness, "/poisoned")) == HEALTHY_EVENTS


async def test_a_row_that_cannot_even_be_loaded_fails_alone(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given one delivery whose row makes the batch load raise (standing in for data the ORM
    # cannot read), among healthy ones
    await harness.add_endpoint("/healthy")
    ids = [(await harness.publish(payload={"n": n})).deliveries[0].id for n in range(6)]
    poison = ids[2]
    real_load = deliveries_repo.load_for_attempt

    async def load(session: Any, *, delivery_ids: Any) -> Any:
        if poison in delivery_ids:
            raise ValueError("row cannot be decoded")
        return await real_load(session, delivery_ids=delivery_ids)

    monkeypatch.setattr(deliveries_repo, "load_for_attempt", load)

    # When the worker runs one batch holding all of them
    assert await harness.worker(batch_size=10).run_once() == 5

    # Then the five others were delivered and the poisoned one is a dead letter naming why
    states = await _states(harness, ids)
    assert [states[i].state for i in ids] == ["succeeded"] * 2 + ["failed"] + ["succeeded"] * 3
    assert "row cannot be decoded" in (states[poison].last_error or "")
    assert len(harness.receiver.requests) == 5


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"ok\x00\x00done", {}),
        (gzip.compress(b"\x00" * 3000), {"Content-Encoding": "gzip"}),
    ],
    ids=["nul-bytes", "gzip-of-zeros"],
)
async def test_a_response_body_with_nul_bytes_is_recorded(
    harness: Harness, body: bytes, headers: dict[str, str]
) -> None:
    # Given a subscriber that answers with NUL bytes (PostgreSQL text cannot hold them),
    # beside a healthy one
    await harness.add_endpoint("/nul")
    await harness.add_endpoint("/healthy")
    harness.receiver.on("/nul", statuses=[500, 200], body=body, headers=headers)
    deliveries = await _publish_to_both(harness, count=5)

    # When the attempts are settled, the retry included
    await harness.run()
    for ids in deliveries.values():
        for delivery_id in ids:
            await harness.run_until_settled(delivery_id)

    # Then every delivery succeeded, and the excerpt was stored with NUL replaced
    all_ids = [i for ids in deliveries.values() for i in ids]
    assert {d.state for d in (await _states(harness, all_ids)).values()} == {"succeeded"}
    async with harness.runtime.sessions() as session:
        excerpts = list(
            (
                await session.execute(
                    select(DeliveryAttempt.response_body).where(
                        DeliveryAttempt.delivery_id.in_(all_ids),
                        DeliveryAttempt.response_body.is_not(None),
                        DeliveryAttempt.response_body != "",
                    )
                )
            ).scalars()
        )
    assert excerpts  # the /nul answers were kept, as text
    assert all("\x00" not in excerpt for excerpt in excerpts)
    assert any("\ufffd" in excerpt for excerpt in excerpts)


async def test_an_attempt_that_cannot_be_recorded_does_not_undo_its_neighbours(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given one delivery whose outcome can never be written (the database refuses the row),
    # settled in the same wave as healthy ones
    await harness.add_endpoint("/healthy")
    ids = [(await harness.publish(payload={"n": n})).deliveries[0].id for n in range(5)]
    poison = ids[3]
    real_settle = deliveries_repo.settle_deliveries

    async def settle_deliveries(session: Any, *, outcomes: Any, **kwargs: Any) -> set[str]:
        if any(outcome.delivery_id == poison for outcome in outcomes):
            raise ValueError("the database refuses this row")
        return await real_settle(session, outcomes=outcomes, **kwargs)

    monkeypatch.setattr(deliveries_repo, "settle_deliveries", settle_deliveries)

    # When the batch is sent and settled
    assert await harness.worker().run_once() == 5

    # Then the four neighbours are recorded, each sent once; the poisoned one is a dead letter
    # that says its outcome could not be recorded (not re-sent forever, not lost)
    states = await _states(harness, ids)
    assert {states[i].state for i in ids if i != poison} == {"succeeded"}
    assert states[poison].state == "failed"
    assert "could not be recorded" in (states[poison].last_error or "")
    assert len(harness.receiver.requests) == 5
    assert await harness.runtime.queue.depth() == 0


@pytest.mark.parametrize("deployment", ["postgres+redis"], indirect=True)
async def test_without_the_nul_guard_the_database_error_still_fails_alone(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the excerpt is stored raw (the guard switched off), so PostgreSQL itself refuses
    # one attempt row of the wave (CharacterNotInRepertoireError)
    identity: Callable[..., Any] = lambda value, **_: value  # noqa: E731
    monkeypatch.setattr("hookline.service.delivery.storable_text", identity)
    await harness.add_endpoint("/nul")
    await harness.add_endpoint("/healthy")
    harness.receiver.on("/nul", body=b"ok\x00")
    deliveries = await _publish_to_both(harness, count=5)

    # When the wave is settled
    await harness.run()

    # Then everything is recorded: the /nul attempts without their excerpt, the rest as usual
    all_ids = [i for ids in deliveries.values() for i in ids]
    assert {d.state for d in (await _states(harness, all_ids)).values()} == {"succeeded"}
    assert len(harness.receiver.requests) == 10
    async with harness.runtime.sessions() as session:
        attempts = list(
            (
                await session.execute(
                    select(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(all_ids))
                )
            ).scalars()
        )
    assert len(attempts) == 10


async def test_an_endpoint_whose_every_send_raises_does_not_hold_up_the_others(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a sender that raises (a bug, not a network error) for one webhook's URL
    poisoned = await harness.add_endpoint("/raises")
    healthy = await harness.add_endpoint("/healthy")
    sender = harness.runtime.sender
    real_send = sender.send

    async def send(request: OutboundRequest) -> SendResult:
        if request.url.endswith("/raises"):
            raise RuntimeError("sender bug")
        return await real_send(request)

    monkeypatch.setattr(sender, "send", send)
    deliveries = await _publish_to_both(harness)
    worker = harness.worker(batch_size=9, endpoint_concurrency=3)

    # When the worker runs until every healthy delivery is done (the per-endpoint cap releases
    # some for a second later; how many rounds that takes depends on how sends interleave, so
    # the bound is generous: the poisoned deliveries' first retry is minutes away)
    await worker.drain()
    for _ in range(60):
        states = await _states(harness, deliveries[healthy])
        if {d.state for d in states.values()} == {"succeeded"}:
            break
        harness.clock.advance(1)
        await worker.drain()

    # Then every healthy delivery arrived; the poisoned ones were recorded as retryable
    # "internal" failures, and no per-endpoint slot or claim is left held
    assert {d.state for d in (await _states(harness, deliveries[healthy])).values()} == {
        "succeeded"
    }
    assert len(_arrived(harness, "/healthy")) == HEALTHY_EVENTS
    poisoned_states = await _states(harness, deliveries[poisoned])
    assert {d.state for d in poisoned_states.values()} == {"retrying"}
    assert all("internal" in (d.last_error or "") for d in poisoned_states.values())
    async with harness.runtime.sessions() as session:
        errors = set(
            (
                await session.execute(
                    select(DeliveryAttempt.error).where(
                        DeliveryAttempt.delivery_id.in_(deliveries[poisoned])
                    )
                )
            ).scalars()
        )
    assert errors == {AttemptError.INTERNAL.value}
    assert worker.endpoints_in_flight == {}
    assert worker.claimed == 0


async def test_a_settle_that_raises_frees_the_endpoint_slots(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a database that fails while a wave is settled (an outage)
    await harness.add_endpoint("/hook")
    [delivery] = (await harness.publish()).deliveries
    worker = harness.worker(endpoint_concurrency=1)

    async def settle(results: Any) -> Any:
        raise ConnectionRefusedError("database restarting")

    monkeypatch.setattr(harness.runtime.delivery, "settle", settle)

    # When the batch runs, the worker does not raise, and forgets the claim and the slot
    assert await worker.run_once() == 1
    assert worker.endpoints_in_flight == {}
    assert worker.claimed == 0
    monkeypatch.undo()

    # Then, once the lease expired, the sweeper makes it due and it is delivered
    harness.clock.advance(61)
    await harness.sweeper.run_once()
    await worker.drain()
    assert (await harness.delivery(delivery.id)).state == "succeeded"
    assert [r.headers["webhook-id"] for r in harness.receiver.requests].count(
        (await harness.delivery(delivery.id)).event_id
    ) == 2  # at least once: sent again after the outage


async def test_a_malformed_secret_dead_letters_only_its_webhook(harness: Harness) -> None:
    # Given a webhook whose secret was hand-edited into something that cannot sign
    poisoned = await harness.add_endpoint("/bad-secret")
    await harness.add_endpoint("/healthy")
    async with harness.runtime.sessions.begin() as session:
        await session.execute(
            update(Endpoint).where(Endpoint.id == poisoned).values(secret="whsec_!!not-base64")
        )
    deliveries = await _publish_to_both(harness, count=4)

    # When the batches run
    await harness.run()

    # Then only that webhook's deliveries are dead letters, naming the webhook
    assert len(_arrived(harness, "/healthy")) == 4
    states = await _states(harness, deliveries[poisoned])
    assert {d.state for d in states.values()} == {"failed"}
    assert all(poisoned in (d.last_error or "") for d in states.values())


async def test_an_unknown_payload_format_dead_letters_only_its_webhook(harness: Harness) -> None:
    # Given a webhook whose stored payload format was hand-edited into one hookline does not know
    poisoned = await harness.add_endpoint("/bad-format")
    await harness.add_endpoint("/healthy")
    async with harness.runtime.sessions.begin() as session:
        await session.execute(
            update(Endpoint).where(Endpoint.id == poisoned).values(payload_format="xml")
        )
    deliveries = await _publish_to_both(harness, count=4)

    # When the batches run
    await harness.run()

    # Then only that webhook's deliveries are dead letters, naming the webhook and the format
    assert len(_arrived(harness, "/healthy")) == 4
    assert _arrived(harness, "/bad-format") == []
    states = await _states(harness, deliveries[poisoned])
    assert {d.state for d in states.values()} == {"failed"}
    assert all(poisoned in (d.last_error or "") for d in states.values())
    assert all("unknown payload format 'xml'" in (d.last_error or "") for d in states.values())


class _Deadlock(Exception):
    sqlstate = "40P01"  # what asyncpg's DeadlockDetectedError carries


async def test_a_settle_that_loses_a_deadlock_is_retried_not_dropped(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a database that picks this settle as a deadlock victim twice, then lets it through
    await harness.add_endpoint("/hook")
    ids = [(await harness.publish(payload={"n": n})).deliveries[0].id for n in range(3)]
    real_settle = deliveries_repo.settle_deliveries
    victims = [_Deadlock("deadlock detected"), _Deadlock("deadlock detected")]

    async def settle_deliveries(session: Any, **kwargs: Any) -> set[str]:
        if victims:
            raise DBAPIError("UPDATE deliveries ...", {}, victims.pop())
        return await real_settle(session, **kwargs)

    monkeypatch.setattr(deliveries_repo, "settle_deliveries", settle_deliveries)

    # When the batch is settled
    assert await harness.worker().run_once() == 3

    # Then the outcomes were recorded on a later try: nothing is sent twice
    assert {d.state for d in (await _states(harness, ids)).values()} == {"succeeded"}
    assert len(harness.receiver.requests) == 3
