"""The models and the migrations describe the same schema, on SQLite and on PostgreSQL."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from hookline.storage.migrate import check_drift, upgrade


async def test_a_database_at_head_matches_the_models(db_engine: AsyncEngine) -> None:
    assert await check_drift(db_engine) == []


async def test_a_missing_migration_is_reported_as_drift(empty_engine: AsyncEngine) -> None:
    # Given a database migrated only to 0002 (no trace columns)
    await upgrade(empty_engine, "0002")

    # When it is compared with the models
    diffs = await check_drift(empty_engine)

    # Then exactly the two missing columns (and the later index) are reported
    reported = sorted(
        (diff[0], diff[1].table.name, diff[1].name)
        if diff[0] == "add_index"
        else (diff[0], diff[2], diff[3].name)
        for diff in diffs
    )
    assert reported == [
        ("add_column", "events", "trace_context"),
        ("add_column", "webhook_endpoints", "trace_propagation"),
        ("add_index", "events", "ix_events_created_at_id"),
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
