"""Round trips through the models on both backends: UTC timestamps, JSON, constraints, defaults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hookline import ids
from hookline.storage.db import is_sqlite
from hookline.storage.models import Delivery, DeliveryAttempt, Endpoint, Event
from tests.factories import make_attempt, make_delivery, make_endpoint, make_event

Sessions = async_sessionmaker[AsyncSession]
T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
PLUS_2 = timezone(timedelta(hours=2))


async def test_timestamps_come_back_as_the_same_instant_in_utc(session_factory: Sessions) -> None:
    # Given an endpoint written with a +02:00 time
    local = datetime(2026, 3, 1, 14, 0, 0, 123456, tzinfo=PLUS_2)
    async with session_factory() as session:
        endpoint = await make_endpoint(session, now=local, failing_since=local)
        await session.commit()

    # When it is read back in a new session
    async with session_factory() as session:
        loaded = await session.get(Endpoint, endpoint.id)

    # Then every timestamp is the same instant, tz-aware UTC, microseconds intact
    assert loaded is not None
    for value in (loaded.created_at, loaded.updated_at, loaded.failing_since):
        assert value == T0
        assert value.tzinfo is not None
        assert value.utcoffset() == timedelta(0)
        assert value.hour == 12
        assert value.microsecond == 123456
    assert loaded.disabled_at is None


async def test_stored_timestamps_are_utc_in_the_database(
    db_engine: AsyncEngine, session_factory: Sessions
) -> None:
    local = datetime(2026, 3, 1, 14, 0, tzinfo=PLUS_2)
    async with session_factory() as session:
        endpoint = await make_endpoint(session, now=local)
        await session.commit()
        sql = text("SELECT created_at FROM webhook_endpoints WHERE id = :id")
        raw = (await session.execute(sql, {"id": endpoint.id})).scalar_one()

    if is_sqlite(db_engine):  # text, in UTC, so it sorts and compares by instant
        assert raw == "2026-03-01 12:00:00.000000"
    else:  # timestamptz
        assert raw == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def test_a_naive_timestamp_is_refused(session_factory: Sessions) -> None:
    async with session_factory() as session:
        with pytest.raises(StatementError) as caught:
            await make_endpoint(session, now=datetime(2026, 3, 1, 12, 0))
    assert isinstance(caught.value.orig, ValueError)
    assert "timezone-aware" in str(caught.value.orig)


async def test_due_time_comparisons_hold_across_offsets(session_factory: Sessions) -> None:
    # Given deliveries due at T0, T0 + 1 h and T0 + 2 h
    async with session_factory() as session:
        endpoint = await make_endpoint(session)
        event = await make_event(session)
        due = {}
        for hours in (0, 1, 2):
            delivery = await make_delivery(
                session, event=event, endpoint=endpoint, next_attempt_at=T0 + timedelta(hours=hours)
            )
            due[delivery.id] = hours
        await session.commit()

    # When asked for those due by T0 + 90 min, written as a +02:00 time
    cutoff = (T0 + timedelta(minutes=90)).astimezone(PLUS_2)
    async with session_factory() as session:
        rows = await session.scalars(
            select(Delivery.id)
            .where(Delivery.next_attempt_at <= cutoff)
            .order_by(Delivery.next_attempt_at)
        )
        found = [due[delivery_id] for delivery_id in rows]

    # Then the comparison is by instant, not by the text of the offset
    assert found == [0, 1]


async def test_json_columns_round_trip(session_factory: Sessions) -> None:
    retry_config = {
        "max_retries": 5,
        "base_delay": 1.5,
        "jitter": "full",
        "respect_retry_after": False,
        "disable_on_status": [404, 410],
        "note": "ünïcødé ✓",
    }
    async with session_factory() as session:
        endpoint = await make_endpoint(
            session,
            event_types=["order.created", "order.paid"],
            headers={"X-Tenant": "acme", "Authorization": "Bearer t"},
            retry_config=retry_config,
        )
        await session.commit()

    async with session_factory() as session:
        loaded = await session.get(Endpoint, endpoint.id)

    assert loaded is not None
    assert loaded.event_types == ["order.created", "order.paid"]
    assert loaded.headers == {"X-Tenant": "acme", "Authorization": "Bearer t"}
    assert loaded.retry_config == retry_config


async def test_no_retry_config_is_sql_null(session_factory: Sessions) -> None:
    # Given one endpoint with retry_config never set and one with it set to None explicitly
    async with session_factory() as session:
        first = await make_endpoint(session)
        second = await make_endpoint(session, retry_config={"max_retries": 1})
        await session.commit()
        second.retry_config = None
        await session.commit()

        # Then both are SQL NULL (not the JSON literal null), so "IS NULL" finds them
        rows = await session.scalars(
            select(Endpoint.id).where(Endpoint.retry_config.is_(None)).order_by(Endpoint.id)
        )
        assert sorted(rows) == sorted([first.id, second.id])


async def test_the_payload_keeps_its_exact_text(session_factory: Sessions) -> None:
    payload = '{"z":1,"a":{"y":[1,2.50,"\\u00e9"]},"b":null}'
    async with session_factory() as session:
        event = await make_event(session, payload=payload)
        await session.commit()
    async with session_factory() as session:
        loaded = await session.get(Event, event.id)
    assert loaded is not None
    assert loaded.payload == payload


async def test_an_idempotency_key_is_unique(session_factory: Sessions) -> None:
    async with session_factory() as session:
        await make_event(session, idempotency_key="order-1")
        await make_event(session, idempotency_key=None)
        await make_event(session, idempotency_key=None)  # any number of events may have none
        await session.commit()

    async with session_factory() as session:
        with pytest.raises(IntegrityError):
            await make_event(session, idempotency_key="order-1")

    async with session_factory() as session:
        keys = await session.scalars(select(Event.idempotency_key).order_by(Event.id))
        assert list(keys) == ["order-1", None, None]


async def test_foreign_keys_are_enforced(session_factory: Sessions) -> None:
    async with session_factory() as session:
        endpoint = await make_endpoint(session)
        event = Event(id="evt_missing", event_type="x", payload="{}", created_at=T0)
        with pytest.raises(IntegrityError):
            # the event was never inserted
            await make_delivery(session, event=event, endpoint=endpoint)


async def test_deleting_a_delivery_deletes_its_attempts(session_factory: Sessions) -> None:
    async with session_factory() as session:
        endpoint = await make_endpoint(session)
        event = await make_event(session)
        doomed = await make_delivery(session, event=event, endpoint=endpoint)
        kept = await make_delivery(session, event=event, endpoint=endpoint)
        await make_attempt(session, delivery=doomed, attempt_number=1)
        await make_attempt(session, delivery=doomed, attempt_number=2)
        survivor = await make_attempt(session, delivery=kept)
        await session.commit()

    async with session_factory() as session:
        await session.execute(text("DELETE FROM deliveries WHERE id = :id"), {"id": doomed.id})
        await session.commit()
        remaining = await session.scalars(select(DeliveryAttempt.id))
        assert list(remaining) == [survivor.id]


async def test_columns_not_given_get_their_defaults(session_factory: Sessions) -> None:
    async with session_factory() as session:
        endpoint = Endpoint(
            id=ids.new_id(ids.ENDPOINT),
            url="https://example.com/a",
            secret="whsec_x",
            created_at=T0,
            updated_at=T0,
        )
        event = Event(id=ids.new_id(ids.EVENT), event_type="a", payload="{}", created_at=T0)
        session.add_all([endpoint, event])
        await session.flush()
        delivery = Delivery(
            id=ids.new_id(ids.DELIVERY),
            event_id=event.id,
            endpoint_id=endpoint.id,
            created_at=T0,
            updated_at=T0,
        )
        session.add(delivery)
        await session.commit()

    async with session_factory() as session:
        loaded_endpoint = await session.get(Endpoint, endpoint.id)
        loaded_delivery = await session.get(Delivery, delivery.id)
        loaded_event = await session.get(Event, event.id)

    assert loaded_endpoint is not None
    assert (loaded_endpoint.status, loaded_endpoint.description) == ("active", "")
    assert (loaded_endpoint.event_types, loaded_endpoint.headers) == ([], {})
    assert loaded_endpoint.retry_config is None
    assert loaded_endpoint.deleted_at is None
    assert loaded_delivery is not None
    assert (loaded_delivery.state, loaded_delivery.attempt_number) == ("pending", 0)
    assert loaded_delivery.version == 0
    assert loaded_delivery.next_attempt_at is None
    assert loaded_event is not None
    assert loaded_event.idempotency_key is None


async def test_version_guarded_update_touches_only_the_expected_version(
    session_factory: Sessions,
) -> None:
    # The optimistic lock is a plain column the service checks in its WHERE clause.
    async with session_factory() as session:
        endpoint = await make_endpoint(session)
        event = await make_event(session)
        delivery = await make_delivery(session, event=event, endpoint=endpoint, version=3)
        await session.commit()

        sql = text(
            "UPDATE deliveries SET state = 'delivering', version = version + 1 "
            "WHERE id = :id AND version = :v"
        )
        stale = await session.execute(sql, {"id": delivery.id, "v": 2})
        fresh = await session.execute(sql, {"id": delivery.id, "v": 3})
        await session.commit()

        assert (stale.rowcount, fresh.rowcount) == (0, 1)  # type: ignore[attr-defined]
        row = (
            await session.execute(
                select(Delivery.state, Delivery.version).where(Delivery.id == delivery.id)
            )
        ).one()
        assert tuple(row) == ("delivering", 4)
