"""The declared schema: table and column names other packages rely on, and named constraints."""

from __future__ import annotations

from hookline.storage.models import Base, Delivery, DeliveryAttempt, Endpoint, Event


def test_the_four_tables() -> None:
    assert set(Base.metadata.tables) == {
        "webhook_endpoints",
        "events",
        "deliveries",
        "delivery_attempts",
    }
    assert Endpoint.__tablename__ == "webhook_endpoints"
    assert Event.__tablename__ == "events"
    assert Delivery.__tablename__ == "deliveries"
    assert DeliveryAttempt.__tablename__ == "delivery_attempts"


def test_delivery_columns_the_queue_uses() -> None:
    columns = set(Delivery.__table__.columns.keys())
    assert columns == {
        "id", "event_id", "endpoint_id", "state", "attempt_number", "round_start_attempt",
        "next_attempt_at",
        "lease_until", "first_attempt_at", "last_status_code", "last_error", "created_at",
        "updated_at", "completed_at", "version",
    }  # fmt: skip


def test_every_constraint_and_index_has_a_name() -> None:
    names = []
    for table in Base.metadata.sorted_tables:
        for constraint in table.constraints:
            assert constraint.name, f"unnamed constraint on {table.name}"
            names.append(str(constraint.name))
        for index in table.indexes:
            assert index.name, f"unnamed index on {table.name}"
            names.append(str(index.name))
    assert "uq_events_idempotency_key" in names
    assert "fk_delivery_attempts_delivery_id_deliveries" in names
    assert "ix_deliveries_state_next_attempt_at" in names
    assert all(len(name) <= 63 for name in names)  # PostgreSQL's identifier limit


def test_attempts_go_with_their_delivery() -> None:
    by_column = {fk.parent.name: fk for fk in DeliveryAttempt.__table__.foreign_keys}
    assert set(by_column) == {"delivery_id", "endpoint_id"}
    assert by_column["delivery_id"].column.table.name == "deliveries"
    assert by_column["delivery_id"].ondelete == "CASCADE"


def test_an_attempt_of_the_endpoint_itself_has_no_delivery() -> None:
    # Probes and test sends are attempts of an endpoint: no delivery, the endpoint and the
    # trigger say whose they are. Endpoints are only soft-deleted, so nothing cascades there.
    columns = DeliveryAttempt.__table__.columns
    assert columns["delivery_id"].nullable
    assert columns["endpoint_id"].nullable
    (fk,) = columns["endpoint_id"].foreign_keys
    assert fk.column.table.name == "webhook_endpoints"
    assert fk.ondelete is None
    assert not columns["trigger"].nullable
    assert columns["trigger"].server_default is not None
    assert columns["trigger"].server_default.arg == "delivery"
