"""What ``hookline`` checks before a command runs, and how a failed start is told.

A start that cannot succeed ends in ``StartupError``: one line naming the setting or flag at
fault (a password in a URL shows as ``***``) and an exit code that classifies it (the table is in
``hookline.cli``). The checks run in order, cheapest first, and before anything is written:
settings and URLs (no connection), the listening socket, then the database and the queue, then
the schema (migrated by ``serve``, required at head by ``api`` and ``worker``).

Heavy libraries are imported inside the functions, as in ``hookline.cli``.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Final
from urllib.parse import unquote, urlsplit, urlunsplit

if TYPE_CHECKING:
    import socket

    from hookline.runtime import Runtime
    from hookline.settings import Settings

EXIT_LOOP_DIED = 1
"""A worker, sweeper or lifecycle loop ended by itself (they survive every exception, so this
is a bug or an unrecoverable state): the process exits so that its supervisor restarts it."""
EXIT_USAGE = 2
"""A bad flag or setting: fix the command line or the environment."""
EXIT_DATABASE = 3
"""The database cannot be reached or used (refused, wrong password, unwritable SQLite file)."""
EXIT_QUEUE = 4
"""Redis cannot be reached."""
EXIT_PORT = 5
"""The API cannot listen on ``--host``/``--port`` (in use, a privileged port, not our address)."""
EXIT_MIGRATION = 6
"""A schema migration failed (the database answered, the migration did not go through), or
``--downgrade`` names a revision Alembic cannot resolve; the database was left as it was."""
EXIT_INTERRUPTED = 130


SUPPORTED_DATABASES: Final = ("postgresql", "sqlite")


class StartupError(Exception):
    """A command cannot start: the one line to print and the exit code that classifies it."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def mask_credentials(url: str) -> str:
    """``url`` with its password shown as ``***`` (any scheme); for messages and logs."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not even URL-shaped (a bad port, a broken IPv6 literal)
        return url.split(":", 1)[0] + ":…" if "@" in url else url
    if password is None:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))


def _passwords(settings: Settings) -> list[str]:
    found: list[str] = []
    for url in (settings.database_url, settings.redis_url):
        try:
            password = urlsplit(url).password if url else None
        except ValueError:
            continue
        if password:
            found += [password, unquote(password)]
    return found


def describe(exc: BaseException, settings: Settings) -> str:
    """The root cause of ``exc`` on one line, with any configured password masked."""
    seen: set[int] = set()
    root = exc
    while id(root) not in seen:
        seen.add(id(root))
        nxt = root.__cause__ or root.__context__
        if nxt is None:
            break
        root = nxt
    text = " ".join(str(root).split()) or "no details"
    for password in _passwords(settings):
        text = text.replace(password, "***")
    return f"{type(root).__name__}: {text}"


def check_backend_urls(settings: Settings) -> None:
    """Refuse a ``DATABASE_URL`` or ``REDIS_URL`` that cannot work, before anything connects.

    Raises ``StartupError`` (``EXIT_USAGE``) naming the setting.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from hookline.errors import ConfigurationError
    from hookline.settings import QueueBackend
    from hookline.storage.db import normalize_url

    shown = mask_credentials(settings.effective_database_url)
    try:
        url = make_url(normalize_url(settings.effective_database_url))
        backend = url.get_backend_name()
        if backend not in SUPPORTED_DATABASES:
            raise StartupError(
                f"DATABASE_URL: hookline runs on PostgreSQL or SQLite, not {backend!r} ({shown})",
                EXIT_USAGE,
            )
        dialect = url.get_dialect()
        if not dialect.is_async:
            raise StartupError(
                f"DATABASE_URL: driver {url.get_driver_name()!r} is not an asyncio driver; "
                "write postgresql://… or sqlite://… and hookline picks one",
                EXIT_USAGE,
            )
        dialect.import_dbapi()
    except ConfigurationError as exc:
        raise StartupError(f"DATABASE_URL: {exc}", EXIT_USAGE) from exc
    except (ArgumentError, ImportError) as exc:
        raise StartupError(
            f"DATABASE_URL: cannot use {shown}: {describe(exc, settings)}", EXIT_USAGE
        ) from exc
    if settings.effective_queue_backend is QueueBackend.REDIS:
        from redis.connection import parse_url

        assert settings.redis_url is not None  # Settings validated it
        try:
            parse_url(settings.redis_url)  # type: ignore[no-untyped-call]  # redis-py untyped
        except ValueError as exc:
            raise StartupError(
                f"REDIS_URL: cannot use {mask_credentials(settings.redis_url)}: "
                f"{describe(exc, settings)}",
                EXIT_USAGE,
            ) from exc


def bind_listener(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` for uvicorn (which starts listening on it).

    Bound first, before any migration or connection, so that a port in use fails at once.
    Raises ``StartupError`` (``EXIT_PORT``) naming ``--host`` or ``--port``.
    """
    import socket

    # As uvicorn binds: IPv6 when the host is an IPv6 literal, else IPv4 ("localhost" too).
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        # A restart need not wait for the old connections' TIME_WAIT; a port another process
        # listens on is still refused.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except socket.gaierror as exc:  # a host name that does not resolve
        sock.close()
        raise StartupError(f"--host: cannot listen on {host!r}: {exc.strerror}", EXIT_PORT) from exc
    except OSError as exc:
        sock.close()
        flag = "--host" if exc.errno == errno.EADDRNOTAVAIL else "--port"
        reason = exc.strerror or str(exc)
        raise StartupError(
            f"{flag}: cannot listen on {host}:{port}: {reason[:1].lower()}{reason[1:]}",
            EXIT_PORT,
        ) from exc
    return sock


def prepare_data_dir(settings: Settings) -> None:
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(
            f"HOOKLINE_DATA_DIR: cannot create {str(settings.data_dir)!r}: {exc.strerror}",
            EXIT_USAGE,
        ) from exc


async def check_backends(runtime: Runtime, *, migrate: bool) -> None:
    """Before anything runs: reach the database and the queue, then migrate the schema
    (``migrate``) or check that it is at this package's head (a worker or API on a database
    nobody migrated would otherwise log "no such table" forever).

    Raises ``StartupError``: ``EXIT_DATABASE`` (``DATABASE_URL``), ``EXIT_QUEUE``
    (``REDIS_URL``), ``EXIT_MIGRATION``.
    """
    from hookline.errors import Unavailable
    from hookline.settings import QueueBackend
    from hookline.storage.db import is_outage, ping

    settings = runtime.settings
    database = mask_credentials(settings.effective_database_url)
    try:
        await ping(runtime.engine)
    except Exception as exc:  # refused, wrong password, no such database, unwritable file
        verb = "reach" if is_outage(exc) else "use"
        raise StartupError(
            f"DATABASE_URL: cannot {verb} the database at {database}: {describe(exc, settings)}",
            EXIT_DATABASE,
        ) from exc
    if settings.effective_queue_backend is QueueBackend.REDIS:
        assert settings.redis_url is not None  # Settings validated it
        try:
            await runtime.queue.ping()
        except Exception as exc:  # refused, wrong password, not Redis at all
            verb = "reach" if isinstance(exc, Unavailable) else "use"
            raise StartupError(
                f"REDIS_URL: cannot {verb} Redis at {mask_credentials(settings.redis_url)}: "
                f"{describe(exc, settings)}",
                EXIT_QUEUE,
            ) from exc
    if migrate:
        await _upgrade_schema(runtime, database)
    else:
        await _require_head(runtime, database)


async def _upgrade_schema(runtime: Runtime, database: str) -> None:
    from hookline.storage import migrate as migrations
    from hookline.storage.db import is_outage

    try:
        await migrations.upgrade(runtime.engine)
    except Exception as exc:
        if is_outage(exc):
            raise StartupError(
                f"DATABASE_URL: lost the database at {database} while migrating: "
                f"{describe(exc, runtime.settings)}",
                EXIT_DATABASE,
            ) from exc
        raise StartupError(
            f"migrating the database at {database} failed: {describe(exc, runtime.settings)}",
            EXIT_MIGRATION,
        ) from exc


async def _require_head(runtime: Runtime, database: str) -> None:
    from hookline.storage import migrate as migrations

    try:
        behind = await migrations.behind_head(runtime.engine)
    except Exception as exc:
        raise StartupError(
            f"DATABASE_URL: cannot read the schema revision of the database at {database}: "
            f"{describe(exc, runtime.settings)}",
            EXIT_DATABASE,
        ) from exc
    if behind is not None:
        current, head = behind
        where = "has no hookline schema" if current is None else f"is at revision {current}"
        raise StartupError(
            f"DATABASE_URL: the database at {database} {where}; this hookline needs {head}: "
            "run `hookline migrate` first",
            EXIT_DATABASE,
        )
