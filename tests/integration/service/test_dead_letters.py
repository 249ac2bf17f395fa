"""DeadLetterService's replay of chosen ids, its previews, and the failed-at window of replay and
of the dead-letter list; with the delivery engine, on SQLite + SQL queue and PostgreSQL + Redis.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from structlog.testing import capture_logs

from hookline.errors import NotFound
from hookline.service.dead_letters import ReplayPreview, ReplayResult
from tests.integration.conftest import Harness

UNKNOWN_DELIVERY = "dlv_00000000000000000000000000"


async def _dead_letters(harness: Harness, path: str, count: int, **columns: object) -> list[str]:
    """``count`` deliveries refused with a 400 by the receiver at ``path`` (dead at once)."""
    harness.receiver.on(path, statuses=[400])
    event_type = f"t{path.replace('/', '.')}"
    await harness.add_endpoint(path, event_types=[event_type], **columns)
    ids = []
    for _ in range(count):
        [delivery] = (await harness.publish(event_type)).deliveries
        ids.append(delivery.id)
    assert await harness.run() == count
    for delivery_id in ids:
        assert (await harness.delivery(delivery_id)).state == "failed"
    return ids


async def test_replay_selected_replays_only_the_chosen_dead_letters_and_says_why_not(
    harness: Harness,
) -> None:
    # Given dead letters of an active webhook, one of a webhook then disabled, one delivery that
    # succeeded, and an id nobody has
    dead = await _dead_letters(harness, "/active", 3)
    [parked] = await _dead_letters(harness, "/parked", 1)
    harness.receiver.on("/ok", statuses=[200])
    await harness.add_endpoint("/ok", event_types=["t.ok"])
    [succeeded] = (await harness.publish("t.ok")).deliveries
    assert await harness.run() == 1
    parked_endpoint = (await harness.delivery(parked)).endpoint_id
    await harness.runtime.endpoints.disable(endpoint_id=parked_endpoint)
    service = harness.runtime.dead_letters
    chosen = [dead[0], dead[2], parked, succeeded.id, UNKNOWN_DELIVERY, dead[0]]

    # When the preview is asked for, then the replay made
    preview = await service.preview_selected(delivery_ids=chosen)
    harness.clock.advance(10)
    with capture_logs() as logs:
        result = await service.replay_selected(delivery_ids=chosen)

    # Then the preview said what the replay did: two replayed, the rest skipped by reason
    # (the repeated id counted once)
    skipped = {"endpoint_disabled": 1, "not_dead_letter": 2}
    assert preview == ReplayPreview(matching=5, skipped=skipped)
    assert preview.replayable == 2
    assert result == ReplayResult(replayed=2, skipped=skipped)
    [logged] = [entry for entry in logs if entry["event"] == "dead_letters.replayed"]
    assert (logged["selected"], logged["replayed"]) == (5, 2)
    # the chosen dead letters are pending, due now; the one left out and the parked one stay
    for delivery_id in (dead[0], dead[2]):
        replayed = await harness.delivery(delivery_id)
        assert (replayed.state, replayed.next_attempt_at) == ("pending", harness.clock.now())
    assert (await harness.delivery(dead[1])).state == "failed"
    assert (await harness.delivery(parked)).state == "failed"
    assert (await harness.delivery(succeeded.id)).state == "succeeded"
    # and the queue has them: the worker sends exactly those two again
    harness.receiver.on("/active", statuses=[200])
    sent_before = len(harness.receiver.requests_to("/active"))
    assert await harness.run() == 2
    assert len(harness.receiver.requests_to("/active")) == sent_before + 2
    for delivery_id in (dead[0], dead[2]):
        assert (await harness.delivery(delivery_id)).state == "succeeded"
    # Replaying the same ids again finds nothing left to replay
    again = await service.replay_selected(delivery_ids=[dead[0], dead[2]])
    assert again == ReplayResult(replayed=0, skipped={"not_dead_letter": 2})
    assert await service.replay_selected(delivery_ids=[]) == ReplayResult(replayed=0, skipped={})


async def test_the_failed_at_window_is_the_same_for_the_list_the_preview_and_the_replay(
    harness: Harness,
) -> None:
    # Given dead letters that failed before T, in [T, U), and at U
    before = await _dead_letters(harness, "/a", 1)
    harness.clock.advance(60)
    since: datetime = harness.clock.now()
    inside = await _dead_letters(harness, "/b", 2)
    harness.clock.advance(60)
    until: datetime = harness.clock.now()
    at_until = await _dead_letters(harness, "/c", 1)
    queries, service = harness.runtime.queries, harness.runtime.dead_letters

    # Then the list, the preview and the replay all take exactly the two inside
    page = await queries.list_dead_letters(since=since, until=until, limit=10)
    assert [d.id for d in page.items] == list(reversed(inside))
    only_since = await queries.list_dead_letters(since=since, limit=10)
    assert {d.id for d in only_since.items} == {*inside, *at_until}
    preview = await service.preview_replay(since=since, until=until)
    assert preview == ReplayPreview(matching=2, skipped={})
    assert await service.preview_replay() == ReplayPreview(matching=4, skipped={})
    result = await service.replay(since=since, until=until)
    assert result == ReplayResult(replayed=2, skipped={})
    for delivery_id in inside:
        assert (await harness.delivery(delivery_id)).state == "pending"
    for delivery_id in (*before, *at_until):
        assert (await harness.delivery(delivery_id)).state == "failed"


async def test_preview_replay_counts_a_webhooks_dead_letters_and_refuses_an_unknown_one(
    harness: Harness,
) -> None:
    dead = await _dead_letters(harness, "/a", 2)
    await _dead_letters(harness, "/b", 1)
    endpoint_id = (await harness.delivery(dead[0])).endpoint_id
    await harness.runtime.endpoints.disable(endpoint_id=endpoint_id)
    service = harness.runtime.dead_letters

    preview = await service.preview_replay(endpoint_id=endpoint_id)

    assert preview == ReplayPreview(matching=2, skipped={"endpoint_disabled": 2})
    assert preview.replayable == 0
    with pytest.raises(NotFound):  # the same refusal as replay's
        await service.preview_replay(endpoint_id="wh_00000000000000000000000000")
