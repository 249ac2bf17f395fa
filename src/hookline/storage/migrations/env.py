"""Alembic environment for hookline: async engines, SQLite batch mode, programmatic use.

Where the database comes from (first match wins):
1. ``config.attributes["connection"]``: a sync ``Connection`` handed in by
   ``hookline.storage.migrate``, which runs Alembic inside ``AsyncConnection.run_sync`` from a
   running event loop (no nested ``asyncio.run``);
2. ``sqlalchemy.url`` in the Alembic config;
3. the ``DATABASE_URL`` environment variable;
4. ``hookline.settings.Settings().effective_database_url`` (the root ``alembic.ini`` case from a
   checkout; ``Settings`` also reads ``.env`` and ``HOOKLINE_DATA_DIR``).

SQLite cannot alter most of a table in place, so migrations use batch mode there (copy the table,
drop the old one, rename). Dropping a parent table with foreign keys enforced would fail (or, with
ON DELETE CASCADE, silently delete the children's rows), so foreign keys are switched off for the
run and ``PRAGMA foreign_key_check`` must come back clean before they are switched on again.
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig
from typing import Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection

from hookline.storage.db import create_engine, normalize_url
from hookline.storage.migrate import MigrationError
from hookline.storage.models import Base
from hookline.storage.types import UtcDateTime

config = context.config
target_metadata = Base.metadata


def _database_url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL")
    if not url:
        from hookline.settings import Settings  # only the checkout/CLI case needs settings

        url = Settings().effective_database_url
    return normalize_url(url)


def _set_sqlite_foreign_keys(connection: Connection, *, enabled: bool) -> None:
    # A PRAGMA inside a transaction is silently ignored, hence the read-back.
    connection.exec_driver_sql(f"PRAGMA foreign_keys={'ON' if enabled else 'OFF'}")
    actual = connection.exec_driver_sql("PRAGMA foreign_keys").scalar()
    connection.commit()
    if bool(actual) is not enabled:
        raise MigrationError(f"could not switch SQLite foreign keys {'on' if enabled else 'off'}")


def _check_sqlite_foreign_keys(connection: Connection) -> None:
    problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if problems:
        raise MigrationError(f"migration left rows with dangling foreign keys: {problems[:10]}")


def _render_item(type_: str, obj: object, autogen_context: AutogenContext) -> str | Literal[False]:
    # Autogenerate writes the storage form of our own types, so a revision does not import the
    # models' classes and keeps meaning what it meant when it was written.
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _run_migrations(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        if connection.in_transaction():
            raise MigrationError("SQLite migrations need a connection outside any transaction")
        _set_sqlite_foreign_keys(connection, enabled=False)
    try:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=sqlite,
            compare_type=True,
            render_item=_render_item,
        )
        with context.begin_transaction():
            context.run_migrations()
        if sqlite:
            _check_sqlite_foreign_keys(connection)
        if connection.in_transaction():
            connection.commit()
    finally:
        if sqlite:
            if connection.in_transaction():
                connection.rollback()  # only after a failure: success committed above
            _set_sqlite_foreign_keys(connection, enabled=True)


async def _run_with_own_engine(url: str) -> None:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_run_migrations)
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    """``alembic upgrade --sql``: print the SQL instead of running it."""
    url = _database_url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run_migrations(connection)
    else:
        asyncio.run(_run_with_own_engine(_database_url()))


# An alembic.ini's logging sections apply to command-line runs; a caller that already configured
# logging (a test, an application) passes attributes["configure_logger"] = False.
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
