"""The packaged migrations go up, down and up again on SQLite and PostgreSQL, keeping rows.

Also: they run from inside a running event loop (``hookline.storage.migrate``) and from the
command line through the root ``alembic.ini`` (``alembic upgrade head`` with ``DATABASE_URL``).
"""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import func, inspect, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import JSON

from hookline.storage.db import create_engine, create_session_factory, is_sqlite
from hookline.storage.migrate import (
    MIGRATIONS_DIR,
    alembic_config,
    behind_head,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)
from hookline.storage.models import Delivery, DeliveryAttempt, Endpoint, Event
from tests.factories import make_attempt, make_delivery, make_endpoint, make_event

ROOT = Path(__file__).resolve().parents[3]
APP_TABLES = {"webhook_endpoints", "events", "deliveries", "delivery_attempts"}
LIFECYCLE_COLUMNS = (
    "payload_format",
    "rate_limit_per_s",
    "probe_enabled",
    "probe_next_at",
    "lifecycle",
)
"""What 0005 adds to ``webhook_endpoints``."""


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: inspect(c).get_table_names())
    return set(names) - {"alembic_version"}


async def _endpoint_columns(
    engine: AsyncEngine, table: str = "webhook_endpoints"
) -> dict[str, Any]:
    def columns(conn: Connection) -> dict[str, Any]:
        return {c["name"]: c["type"] for c in inspect(conn).get_columns(table)}

    async with engine.connect() as conn:
        return await conn.run_sync(columns)


def test_the_package_ships_five_linear_revisions() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    chain = [(rev.revision, rev.down_revision) for rev in script.walk_revisions()]

    assert chain == [
        ("0005", "0004"),
        ("0004", "0003"),
        ("0003", "0002"),
        ("0002", "0001"),
        ("0001", None),
    ]
    assert head_revision() == "0005"
    files = sorted(p.name for p in (MIGRATIONS_DIR / "versions").glob("0*.py"))
    assert files == [
        "0001_initial_schema.py",
        "0002_add_webhook_retry.py",
        "0003_trace_context.py",
        "0004_events_created_at_index.py",
        "0005_endpoint_lifecycle.py",
    ]


async def test_upgrade_downgrade_upgrade(empty_engine: AsyncEngine) -> None:
    # Given an empty database
    assert await current_revision(empty_engine) is None
    assert await _tables(empty_engine) == set()

    # When it is migrated to head
    await upgrade(empty_engine)

    # Then all four tables, retry_config, the trace and the lifecycle columns exist; JSONB on
    # PostgreSQL
    assert await current_revision(empty_engine) == "0005"
    assert await _tables(empty_engine) == APP_TABLES
    columns = await _endpoint_columns(empty_engine)
    retry_type = columns["retry_config"]
    lifecycle_type = columns["lifecycle"]
    if is_sqlite(empty_engine):
        assert isinstance(retry_type, JSON)
        assert isinstance(lifecycle_type, JSON)
    else:
        assert isinstance(retry_type, JSONB)
        assert isinstance(lifecycle_type, JSONB)
    assert "round_start_attempt" in await _endpoint_columns(empty_engine, "deliveries")
    assert "trace_propagation" in columns
    assert "trace_context" in await _endpoint_columns(empty_engine, "events")
    assert set(LIFECYCLE_COLUMNS) <= set(columns)
    assert {"trigger", "endpoint_id"} <= set(
        await _endpoint_columns(empty_engine, "delivery_attempts")
    )

    # When it goes down to 0004: the lifecycle columns are gone, the trace columns stay
    await downgrade(empty_engine, "0004")
    assert await current_revision(empty_engine) == "0004"
    columns = await _endpoint_columns(empty_engine)
    assert not set(LIFECYCLE_COLUMNS) & set(columns)
    assert "trace_propagation" in columns
    attempt_columns = await _endpoint_columns(empty_engine, "delivery_attempts")
    assert not {"trigger", "endpoint_id"} & set(attempt_columns)

    # When it goes down to 0002: the trace columns are gone, retry_config stays
    await downgrade(empty_engine, "0002")
    assert await current_revision(empty_engine) == "0002"
    columns = await _endpoint_columns(empty_engine)
    assert "trace_propagation" not in columns
    assert "retry_config" in columns
    assert "trace_context" not in await _endpoint_columns(empty_engine, "events")

    # When it goes down to 0001: the columns are gone, the tables stay
    await downgrade(empty_engine, "0001")
    assert await current_revision(empty_engine) == "0001"
    assert await _tables(empty_engine) == APP_TABLES
    columns = await _endpoint_columns(empty_engine)
    assert "retry_config" not in columns
    assert {"status", "failing_since", "secret"} <= set(columns)
    delivery_columns = await _endpoint_columns(empty_engine, "deliveries")
    assert "round_start_attempt" not in delivery_columns
    assert {"attempt_number", "next_attempt_at", "version"} <= set(delivery_columns)

    # When it goes down to base: no tables
    await downgrade(empty_engine)
    assert await current_revision(empty_engine) is None
    assert await _tables(empty_engine) == set()

    # And back up to head
    await upgrade(empty_engine)
    assert await current_revision(empty_engine) == head_revision()
    assert await _tables(empty_engine) == APP_TABLES
    assert "retry_config" in await _endpoint_columns(empty_engine)


async def test_downgrading_retry_config_keeps_every_row(empty_engine: AsyncEngine) -> None:
    # Given a migrated database with an endpoint (custom retry config), event, delivery, attempt
    await upgrade(empty_engine)
    sessions = create_session_factory(empty_engine)
    async with sessions() as session:
        endpoint = await make_endpoint(session, retry_config={"max_retries": 3})
        event = await make_event(session)
        delivery = await make_delivery(session, event=event, endpoint=endpoint)
        await make_attempt(session, delivery=delivery)
        await session.commit()

    # When 0002 is undone (SQLite copies webhook_endpoints, which deliveries reference) and redone
    await downgrade(empty_engine, "0001")
    await upgrade(empty_engine)

    # Then no row was lost or cascaded away, and retry_config is back to NULL (defaults)
    async with sessions() as session:
        for model in (Endpoint, Event, Delivery, DeliveryAttempt):
            count = await session.scalar(select(func.count()).select_from(model))
            assert count == 1, model.__tablename__
        reloaded = await session.get(Endpoint, endpoint.id)
        assert reloaded is not None
        assert reloaded.retry_config is None
        assert reloaded.secret == endpoint.secret
    if is_sqlite(empty_engine):
        # and the pooled connection the migration used enforces foreign keys again
        async with empty_engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
            assert (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all() == []


async def test_migrate_runs_inside_a_running_event_loop(sqlite_url: str) -> None:
    loop = asyncio.get_running_loop()
    assert loop.is_running()
    engine = create_engine(sqlite_url)
    try:
        # other tasks keep running while migrations run on the same loop
        ticker = asyncio.create_task(asyncio.sleep(0, result="ticked"))
        await upgrade(engine)
        assert await ticker == "ticked"
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


def _root_config(*, output: io.StringIO | None = None) -> Config:
    """The checkout's alembic.ini, as ``alembic -c alembic.ini`` reads it (logging left alone)."""
    config = Config(str(ROOT / "alembic.ini"), output_buffer=output)
    config.attributes["configure_logger"] = False
    return config


def _plain(url: str) -> str:
    """The URL as a user writes it in DATABASE_URL: no async driver named."""
    parsed = make_url(url)
    return parsed.set(drivername=parsed.get_backend_name()).render_as_string(hide_password=False)


async def test_root_alembic_ini_upgrades_and_downgrades_from_database_url(
    empty_db_url: str, empty_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given DATABASE_URL written the plain way and no sqlalchemy.url in alembic.ini
    url = _plain(empty_db_url)
    assert "+" not in url.split("://")[0]
    monkeypatch.setenv("DATABASE_URL", url)

    # When Alembic runs from the checkout's alembic.ini (in a thread: env.py then builds its own
    # engine with asyncio.run, as on the command line)
    await asyncio.to_thread(command.upgrade, _root_config(), "head")

    # Then the database is at head, and downgrade base empties it again
    assert await current_revision(empty_engine) == "0005"
    assert await _tables(empty_engine) == APP_TABLES
    await asyncio.to_thread(command.downgrade, _root_config(), "base")
    assert await current_revision(empty_engine) is None
    assert await _tables(empty_engine) == set()


async def test_root_alembic_ini_falls_back_to_the_settings_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given neither sqlalchemy.url nor DATABASE_URL, and a data directory that does not exist
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("HOOKLINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)  # no stray .env

    # When the `alembic` command upgrades (a real process, as an operator runs it)
    alembic = Path(sys.executable).with_name("alembic")
    result = await asyncio.to_thread(
        subprocess.run,
        [str(alembic), "-c", str(ROOT / "alembic.ini"), "upgrade", "head"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Running upgrade 0001 -> 0002" in result.stderr  # alembic.ini's logging applies

    # Then the settings' SQLite file exists, migrated, in WAL mode
    database = tmp_path / "data" / "hookline.db"
    assert database.is_file()
    engine = create_engine(f"sqlite:///{database}")
    try:
        assert await current_revision(engine) == "0005"
        async with engine.connect() as conn:
            mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar()
        assert mode == "wal"
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("revision", "has_retry_config"),
    [
        ("0001", False),
        ("0002", True),
        ("0003", True),
        ("0004", True),
        ("0005", True),
    ],
)
async def test_offline_sql_creates_every_table(
    revision: str, has_retry_config: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "offline.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{database}")
    output = io.StringIO()

    await asyncio.to_thread(command.upgrade, _root_config(output=output), f"base:{revision}", True)

    sql = output.getvalue()
    for table in APP_TABLES:
        assert f"CREATE TABLE {table} " in sql
    assert ("retry_config" in sql) is has_retry_config
    last_statement = sql.strip().splitlines()[-1]
    assert "alembic_version" in last_statement
    assert f"'{revision}'" in last_statement
    assert not database.exists()  # --sql never touches the database


async def test_behind_head_tells_an_unmigrated_or_old_schema_from_a_current_or_newer_one(
    empty_engine: AsyncEngine,
) -> None:
    head = head_revision()
    # never migrated
    assert await behind_head(empty_engine) == (None, head)
    # an older revision of this package
    await upgrade(empty_engine, "0001")
    assert await behind_head(empty_engine) == ("0001", head)
    # at head
    await upgrade(empty_engine)
    assert await behind_head(empty_engine) is None
    # a revision a newer hookline wrote: its schema is not ours to judge
    async with empty_engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = 'from_the_future'"))
    assert await behind_head(empty_engine) is None
