"""The models and the migrations describe the same schema, on SQLite and on PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from hookline.storage.migrate import check_drift, upgrade


async def test_a_database_at_head_matches_the_models(db_engine: AsyncEngine) -> None:
    assert await check_drift(db_engine) == []


def _described(diff: Any) -> tuple[Any, ...]:
    """An autogenerate diff as ``(kind, table, name)`` (``modify_nullable``: with the old and
    new nullability)."""
    kind = diff[0]
    if kind in ("add_index", "add_fk"):
        return (kind, diff[1].table.name, diff[1].name)
    if kind == "modify_nullable":
        return (kind, diff[2], diff[3], diff[5], diff[6])
    return (kind, diff[2], diff[3].name)


async def test_a_missing_migration_is_reported_as_drift(empty_engine: AsyncEngine) -> None:
    # Given a database migrated only to 0004 (no lifecycle columns, attempts of deliveries only)
    await upgrade(empty_engine, "0004")

    # When it is compared with the models
    diffs = await check_drift(empty_engine)

    # Then exactly what 0005 adds is reported (column changes come as a list per column)
    flat = [item for diff in diffs for item in (diff if isinstance(diff, list) else [diff])]
    assert sorted(_described(diff) for diff in flat) == [
        ("add_column", "delivery_attempts", "endpoint_id"),
        ("add_column", "delivery_attempts", "trigger"),
        ("add_column", "webhook_endpoints", "lifecycle"),
        ("add_column", "webhook_endpoints", "payload_format"),
        ("add_column", "webhook_endpoints", "probe_enabled"),
        ("add_column", "webhook_endpoints", "probe_next_at"),
        ("add_column", "webhook_endpoints", "rate_limit_per_s"),
        (
            "add_fk",
            "delivery_attempts",
            "fk_delivery_attempts_endpoint_id_webhook_endpoints",
        ),
        ("add_index", "delivery_attempts", "ix_delivery_attempts_endpoint_id_started_at"),
        ("modify_nullable", "delivery_attempts", "delivery_id", False, True),
    ]


async def test_an_index_the_models_lack_is_reported_as_drift(db_engine: AsyncEngine) -> None:
    # Given a database at head with one extra index made by hand
    async with db_engine.begin() as conn:
        await conn.exec_driver_sql("CREATE INDEX ix_stray ON events (event_type)")
    try:
        # When it is compared with the models
        diffs = await check_drift(db_engine)
    finally:
        # (the PostgreSQL database is shared by the session: leave its schema as it was)
        async with db_engine.begin() as conn:
            await conn.exec_driver_sql("DROP INDEX ix_stray")

    # Then the index is reported, and nothing else
    assert [(d[0], d[1].name) for d in diffs] == [("remove_index", "ix_stray")]
    assert await check_drift(db_engine) == []
