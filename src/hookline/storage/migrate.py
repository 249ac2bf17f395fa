"""Run the packaged Alembic migrations on an ``AsyncEngine`` from inside a running event loop.

Alembic is synchronous: each function here opens one connection and runs Alembic in it through
``AsyncConnection.run_sync``, handing the connection to ``migrations/env.py`` in
``config.attributes["connection"]`` (no nested ``asyncio.run``). The ``Config`` is built in code
with ``script_location`` pointing at the package's own ``migrations`` directory, so this works the
same from a checkout and from an installed wheel; no ``alembic.ini`` is read.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from hookline.errors import HooklineError
from hookline.storage.models import Base

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
"""The Alembic script directory shipped in the package (env.py, script.py.mako, versions/)."""

_T = TypeVar("_T")


class MigrationError(HooklineError):
    """A migration left the database inconsistent (e.g. rows whose foreign key points nowhere)."""


class UnknownRevision(MigrationError):
    """A target revision the packaged migrations cannot resolve from where the database is
    (a typo, a revision of another version of hookline, "down" to a newer one); no migration
    ran."""


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic ``Config`` for the packaged migrations, optionally bound to ``connection``."""
    config = Config()
    # configparser interpolation: a literal '%' in the path must be doubled
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision id the package ships (``alembic heads``; there is exactly one)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise MigrationError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrate the database up to ``revision`` (default: the newest); ``UnknownRevision`` when
    it cannot be resolved."""
    await _with_config(engine, lambda config: _resolving(command.upgrade, config, revision))


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    """Migrate the database down to ``revision`` (default: ``base``, an empty schema);
    ``UnknownRevision`` when it cannot be resolved."""
    await _with_config(engine, lambda config: _resolving(command.downgrade, config, revision))


def _resolving(action: Callable[[Config, str], None], config: Config, revision: str) -> None:
    try:
        action(config, revision)
    except CommandError as exc:
        # Alembic reports a revision it cannot resolve as a CommandError raised from a
        # RevisionError; other CommandErrors are not about the revision asked for.
        if isinstance(exc.__cause__, RevisionError):
            raise UnknownRevision(str(exc)) from exc
        raise


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at; ``None`` for a database never migrated (or at base)."""
    return await _with_connection(
        engine, lambda conn: MigrationContext.configure(conn).get_current_revision()
    )


async def behind_head(engine: AsyncEngine) -> tuple[str | None, str] | None:
    """``(current, head)`` when the database needs ``upgrade``: never migrated (``current`` is
    ``None``) or at an older revision of this package; ``None`` at head, or at a revision this
    package does not know (a newer hookline migrated it; its schema is a superset)."""
    current = await current_revision(engine)
    head = head_revision()
    if current == head:
        return None
    if current is not None:
        try:
            ScriptDirectory.from_config(alembic_config()).get_revision(current)
        except (RevisionError, CommandError):  # newer than this package
            return None
    return current, head


async def check_drift(engine: AsyncEngine) -> list[Any]:
    """Differences between the database schema and ``Base.metadata``; ``[]`` means none.

    Each item is an Alembic autogenerate diff, e.g. ``("add_column", None, "webhook_endpoints",
    Column(...))`` or a list of ``("modify_type", ...)`` tuples. Types and server defaults are
    compared too. A non-empty answer means the models changed without a migration, or the
    database is not at head.
    """

    def compare(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, Base.metadata))

    return await _with_connection(engine, compare)


async def _with_config(engine: AsyncEngine, action: Callable[[Config], None]) -> None:
    await _with_connection(engine, lambda conn: action(alembic_config(conn)))


async def _with_connection(engine: AsyncEngine, action: Callable[[Connection], _T]) -> _T:
    # A connection outside any transaction: env.py begins and commits its own, and on SQLite it
    # must switch foreign keys off before the first one begins.
    async with engine.connect() as conn:
        return await conn.run_sync(action)
