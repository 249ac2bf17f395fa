"""The ``hookline`` command: serve, api, worker, migrate, schedule.

The only place that reads ``Settings()``. Whatever stops a command before it runs prints one line
on stderr, ``hookline: error: …``, naming the flag or setting at fault (a password in a URL
shows as ``***``), and exits with a code that says what failed:

  0  done, or stopped by SIGTERM/SIGINT after a clean shutdown
  1  EXIT_LOOP_DIED    a worker, sweeper or lifecycle loop ended by itself (a bug): restart
  2  EXIT_USAGE        a bad flag or setting, including a malformed DATABASE_URL or REDIS_URL
  3  EXIT_DATABASE     the database (DATABASE_URL) cannot be reached or used, or it is not
                       migrated to this version (api, worker: run `hookline migrate`)
  4  EXIT_QUEUE        Redis (REDIS_URL) cannot be reached or used
  5  EXIT_PORT         the API cannot listen on --host/--port (in use, privileged, not ours)
  6  EXIT_MIGRATION    a schema migration failed, or --downgrade names a revision that cannot
                       be reached from where the database is
130  EXIT_INTERRUPTED  interrupted at a prompt

``serve`` and ``api`` bind their listening socket before anything else happens, so a port in use
fails at once, having migrated, created and started nothing. The checks themselves, and
``StartupError``, are in ``hookline.cli.startup``.

Start-up is quick: this module imports only typer, pydantic and the domain. The server stack
(SQLAlchemy, Alembic, Redis, aiohttp, FastAPI, uvicorn, structlog, …) is imported inside the
commands that run it, so ``--help``, ``--version`` and ``schedule`` never load it.
"""

from __future__ import annotations

import ipaddress
import json
import sys
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import TYPE_CHECKING, Annotated, Any, Final, NoReturn

import typer
from pydantic import ValidationError
from typer.exceptions import TyperException

from hookline.cli.startup import (
    EXIT_DATABASE,
    EXIT_INTERRUPTED,
    EXIT_LOOP_DIED,
    EXIT_MIGRATION,
    EXIT_PORT,
    EXIT_QUEUE,
    EXIT_USAGE,
    StartupError,
    bind_listener,
    check_backend_urls,
    check_backends,
    describe,
    mask_credentials,
    prepare_data_dir,
)
from hookline.domain.retry_config import JitterMode, RetryConfig
from hookline.domain.schedule import RetrySchedule, plan_schedule

__all__ = [
    "EXIT_DATABASE",
    "EXIT_INTERRUPTED",
    "EXIT_LOOP_DIED",
    "EXIT_MIGRATION",
    "EXIT_PORT",
    "EXIT_QUEUE",
    "EXIT_USAGE",
    "app",
    "main",
]

if TYPE_CHECKING:
    import asyncio
    import socket

    from hookline.runtime import Runtime
    from hookline.settings import Settings

LOOPBACK_NETWORKS: Final = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)
"""What ``--allow-loopback`` adds to ``ALLOWED_NETWORKS``."""
LOOPBACK_NOTE: Final = "loopback receivers allowed (--allow-loopback)"

app = typer.Typer(
    name="hookline",
    help="Self-hosted webhook delivery whose retries do not lose deliveries.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

HostOption = Annotated[str, typer.Option(help="Address to listen on.")]
PortOption = Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")]
AllowLoopbackOption = Annotated[
    bool,
    typer.Option(
        "--allow-loopback",
        help="Let webhooks point at this machine (adds 127.0.0.0/8 and ::1 to "
        "ALLOWED_NETWORKS), e.g. a receiver on localhost during development.",
    ),
]


def _fail(message: str, exit_code: int = EXIT_USAGE) -> typer.Exit:
    typer.echo(f"hookline: error: {message}", err=True)
    return typer.Exit(exit_code)


@contextmanager
def _startup_errors() -> Iterator[None]:
    """Turn a ``StartupError`` into its one line on stderr and its exit code."""
    try:
        yield
    except StartupError as exc:
        raise _fail(exc.message, exc.exit_code) from None


def _show_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"hookline {version('hookline')}")
        raise typer.Exit()


@app.callback()
def _root(
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_show_version,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Self-hosted webhook delivery whose retries do not lose deliveries."""


def load_settings(*, allow_loopback: bool = False) -> Settings:
    """Settings from the environment (plus what the flags change), or one line per problem,
    naming the variable, and exit 2."""
    from hookline.observability.logging import configure_logging
    from hookline.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            message = str(error["msg"]).removeprefix("Value error, ")
            typer.echo(
                f"hookline: error: {where}: {message}"
                if where
                else f"hookline: error: invalid settings: {message}",
                err=True,
            )
        raise typer.Exit(EXIT_USAGE) from None
    configure_logging(
        level=settings.log_level,
        json_format=settings.log_format == "json",
        # Redacted wherever they appear in a line (empty or short values are ignored); the
        # token of the data directory's file is added by _api_tokens once it is known.
        secrets=[*settings.api_tokens, settings.alert_webhook_secret],
    )
    return effective_settings(settings, allow_loopback=allow_loopback)


def effective_settings(settings: Settings, *, allow_loopback: bool) -> Settings:
    """``settings`` as the command-line flags amend them: ``--allow-loopback`` adds
    ``LOOPBACK_NETWORKS`` to ``allowed_networks`` (which the sender's address guard and the
    webhook URL vetting both read)."""
    if not allow_loopback:
        return settings
    networks = list(settings.allowed_networks)
    networks += [network for network in LOOPBACK_NETWORKS if network not in networks]
    return settings.model_copy(update={"allowed_networks": networks})


async def _run(
    settings: Settings,
    *,
    listen: socket.socket | None,
    work: bool,
    migrate: bool,
    api_tokens: tuple[str, ...] = (),
    resolve_api_tokens: Callable[[], tuple[str, ...]] | None = None,
    allow_loopback: bool = False,
) -> int:
    """Run the HTTP API (on the socket ``listen``), the worker + sweeper (``work``), or both,
    until a signal; returns the exit code.

    The database and the queue are reached (and the schema migrated with ``migrate``) before
    the API or a loop starts, and only then ``resolve_api_tokens`` (which may write a token
    file) runs; a failure raises ``StartupError``. SIGTERM/SIGINT: the API stops
    accepting, the worker finishes in-flight attempts within ``SHUTDOWN_GRACE_PERIOD`` and
    releases the rest, then the process exits 0. A loop that ends by itself stops the whole
    process with ``EXIT_LOOP_DIED``.
    """
    import asyncio
    import signal

    from hookline.observability.logging import get_logger
    from hookline.runtime import open_runtime
    from hookline.worker.lifecycle import LifecycleLoop
    from hookline.worker.retry_worker import RetryWorker
    from hookline.worker.sweeper import Sweeper

    log = get_logger("hookline.cli")
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def request_stop(signum: int, _frame: object) -> None:
        loop.call_soon_threadsafe(stop.set)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request_stop)

    died: list[str] = []

    def loop_ended(task: asyncio.Task[None]) -> None:
        if stop.is_set():
            return
        died.append(task.get_name())
        error = None if task.cancelled() else task.exception()
        log.critical(
            "hookline.loop_died",
            loop=task.get_name(),
            error=None if error is None else f"{type(error).__name__}: {error}",
            exc_info=error,
        )
        stop.set()

    async with AsyncExitStack() as stack:
        try:
            runtime = await stack.enter_async_context(open_runtime(settings, api_tokens=api_tokens))
        except OSError as exc:  # the SQLite file's directory cannot be created
            raise StartupError(
                f"DATABASE_URL: cannot use {mask_credentials(settings.effective_database_url)}: "
                f"{describe(exc, settings)}",
                EXIT_DATABASE,
            ) from exc
        await check_backends(runtime, migrate=migrate)
        if resolve_api_tokens is not None:
            runtime.api_tokens = resolve_api_tokens()
        metrics_url = None
        if listen is None and settings.metrics_port:  # `hookline worker`: no API port to scrape
            metrics_url = await _serve_worker_metrics(stack, runtime)
        # Alerts of this process (automatic disables and dead letters in a worker, manual
        # disables in the API) go out from a loop of their own, in every mode.
        alerts_task = asyncio.create_task(runtime.alerts.run(stop), name="alerts")
        alerts_task.add_done_callback(loop_ended)
        tasks: list[asyncio.Task[None]] = [alerts_task]
        if work:
            worker = RetryWorker.from_runtime(runtime)
            sweeper = Sweeper.from_runtime(runtime)
            lifecycle = LifecycleLoop.from_runtime(runtime)
            loops = [
                asyncio.create_task(worker.run(stop), name="worker"),
                asyncio.create_task(sweeper.run(stop), name="sweeper"),
                asyncio.create_task(lifecycle.run(stop), name="lifecycle"),
            ]
            for task in loops:
                task.add_done_callback(loop_ended)
            tasks += loops
        log.info(
            "hookline.start",
            **start_banner(
                runtime.settings,
                listener=listen,
                work=work,
                database=runtime.engine.url.get_backend_name(),
                allow_loopback=allow_loopback,
            ),
            metrics=metrics_url,
        )
        try:
            if listen is not None:
                await _serve_api(runtime, listen, stop)
            else:
                await stop.wait()
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
    log.info("hookline.stopped", loops_died=died or None)
    return EXIT_LOOP_DIED if died else 0


async def _serve_worker_metrics(stack: AsyncExitStack, runtime: Runtime) -> str:
    """Serve the worker's ``/metrics`` on ``METRICS_HOST:METRICS_PORT`` until ``stack`` closes."""
    from hookline.worker.metrics_server import serving_metrics

    host, port = runtime.settings.metrics_host, runtime.settings.metrics_port
    try:
        base = await stack.enter_async_context(serving_metrics(runtime, host=host, port=port))
    except OSError as exc:
        raise StartupError(
            f"METRICS_PORT: cannot listen on {host}:{port} for /metrics: {exc.strerror or exc} "
            "(set METRICS_PORT to a free port, or 0 to serve no metrics)",
            EXIT_PORT,
        ) from exc
    return f"{base}/metrics"


def start_banner(
    settings: Settings,
    *,
    listener: socket.socket | None,
    work: bool,
    database: str,
    allow_loopback: bool,
) -> dict[str, object]:
    """The fields of the ``hookline.start`` log line: what runs where."""
    api = None
    if listener is not None:
        host, port = listener.getsockname()[:2]
        api = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    banner: dict[str, object] = {
        "api": api,
        "worker": work,
        "queue": settings.effective_queue_backend.value,
        "database": database,
    }
    if allow_loopback:
        banner["loopback"] = LOOPBACK_NOTE
    return banner


async def _serve_api(runtime: Runtime, listener: socket.socket, stop: asyncio.Event) -> None:
    """Serve the API on ``listener`` until ``stop`` is set or uvicorn receives a signal."""
    import asyncio

    import uvicorn

    from hookline.api.app import create_app

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(runtime),
            log_config=None,
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
    )

    async def stop_server() -> None:
        await stop.wait()
        server.should_exit = True

    watcher = asyncio.create_task(stop_server())
    try:
        await server.serve(sockets=[listener])
    finally:
        watcher.cancel()


def _api_tokens(settings: Settings, *, generate: bool) -> tuple[str, ...]:
    """Configured tokens, else the embedded default's token file (created when ``generate``)."""
    from hookline.api.tokens import ensure_api_token, token_path
    from hookline.observability.logging import register_secret

    if settings.api_tokens:
        return tuple(settings.api_tokens)
    if not generate and not token_path(settings.data_dir).exists():
        raise StartupError(
            "HOOKLINE_API_TOKENS: not set (the API never runs without a token)", EXIT_USAGE
        )
    token, created = ensure_api_token(settings.data_dir)
    register_secret(token)
    if created:
        typer.echo(
            f"hookline: generated an API token (stored in {token_path(settings.data_dir)}, "
            f"shown only now):\n\n    {token}\n\nUse it as 'Authorization: Bearer <token>'.",
            err=True,
        )
    return (token,)


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, int]], int]:
    """``uvloop.run`` where uvloop is installed (it comes with ``uvicorn[standard]``; its event
    loop costs the worker's sends and settles less CPU), else ``asyncio.run``."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        import asyncio

        return asyncio.run
    return uvloop.run


def _run_until_stopped(
    settings: Settings,
    *,
    listener: socket.socket | None,
    work: bool,
    migrate: bool,
    api_tokens: tuple[str, ...] = (),
    resolve_api_tokens: Callable[[], tuple[str, ...]] | None = None,
    allow_loopback: bool = False,
) -> NoReturn:
    try:
        code = _event_loop_runner()(
            _run(
                settings,
                listen=listener,
                work=work,
                migrate=migrate,
                api_tokens=api_tokens,
                resolve_api_tokens=resolve_api_tokens,
                allow_loopback=allow_loopback,
            )
        )
    finally:
        if listener is not None:
            listener.close()
    raise typer.Exit(code)


@app.command()
def serve(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    allow_loopback: AllowLoopbackOption = False,
) -> None:
    """Run API, delivery worker and sweeper in one process (SQLite + SQL queue by default).

    Brings the database schema up to date first, so a fresh machine needs nothing else.
    """
    settings = load_settings(allow_loopback=allow_loopback)
    with _startup_errors():
        check_backend_urls(settings)
        listener = bind_listener(host, port)
        try:
            prepare_data_dir(settings)
        except BaseException:
            listener.close()
            raise
        _run_until_stopped(
            settings,
            listener=listener,
            work=True,
            migrate=True,
            # Generated (and printed) once the database works, not before a failed start.
            resolve_api_tokens=lambda: _api_tokens(settings, generate=True),
            allow_loopback=allow_loopback,
        )


@app.command("api")
def api_command(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    allow_loopback: AllowLoopbackOption = False,
) -> None:
    """Run the HTTP API alone (run several behind a load balancer)."""
    settings = load_settings(allow_loopback=allow_loopback)
    with _startup_errors():
        check_backend_urls(settings)
        tokens = _api_tokens(settings, generate=False)
        listener = bind_listener(host, port)
        _run_until_stopped(
            settings,
            listener=listener,
            work=False,
            migrate=False,
            api_tokens=tokens,
            allow_loopback=allow_loopback,
        )


@app.command()
def worker(allow_loopback: AllowLoopbackOption = False) -> None:
    """Run the delivery/retry worker and the sweeper alone (run as many as the load needs)."""
    settings = load_settings(allow_loopback=allow_loopback)
    with _startup_errors():
        check_backend_urls(settings)
        _run_until_stopped(
            settings, listener=None, work=True, migrate=False, allow_loopback=allow_loopback
        )


@app.command()
def migrate(
    downgrade: Annotated[
        str | None,
        typer.Option(
            "--downgrade", metavar="REVISION", help="Go back to REVISION (e.g. base) instead."
        ),
    ] = None,
) -> None:
    """Bring the database schema to the newest revision (alembic upgrade head)."""
    settings = load_settings()
    with _startup_errors():
        check_backend_urls(settings)
        revision = _migrate(settings, downgrade=downgrade)
    database = mask_credentials(settings.effective_database_url)
    typer.echo(f"database at revision {revision or 'base'} ({database})")


def _migrate(settings: Settings, *, downgrade: str | None) -> str | None:
    """Migrate up (or down to ``downgrade``); the revision reached. Raises ``StartupError``."""
    import asyncio

    from hookline.storage import migrate as migrations
    from hookline.storage.db import create_engine, is_outage

    database = mask_credentials(settings.effective_database_url)

    async def run() -> str | None:
        engine = create_engine(settings.effective_database_url)
        try:
            if downgrade:
                await migrations.downgrade(engine, downgrade)
            else:
                await migrations.upgrade(engine)
            return await migrations.current_revision(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except migrations.UnknownRevision as exc:
        raise StartupError(f"--downgrade: {exc}", EXIT_MIGRATION) from exc
    except Exception as exc:
        if is_outage(exc):
            raise StartupError(
                f"DATABASE_URL: cannot reach the database at {database}: {describe(exc, settings)}",
                EXIT_DATABASE,
            ) from exc
        raise StartupError(
            f"migrating the database at {database} failed: {describe(exc, settings)}",
            EXIT_MIGRATION,
        ) from exc


@app.command()
def schedule(
    max_retries: Annotated[int, typer.Option(help="Retries after the first attempt (0-10).")] = 10,
    base_delay: Annotated[float, typer.Option(help="Seconds before the first retry.")] = 120,
    max_delay: Annotated[float, typer.Option(help="Cap on one delay, seconds.")] = 7200,
    multiplier: Annotated[float, typer.Option(help="Growth per retry (1-10).")] = 2,
    jitter: Annotated[JitterMode, typer.Option(help="Jitter mode.")] = JitterMode.PROPORTIONAL,
    jitter_ratio: Annotated[float, typer.Option(help="Spread for proportional jitter.")] = 0.5,
    max_retry_duration: Annotated[
        float, typer.Option(help="Window after the first attempt, seconds.")
    ] = 36000,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print the retry timeline a retry config produces (no server needed)."""
    try:
        config = RetryConfig(
            max_retries=max_retries,
            base_delay=base_delay,
            max_delay=max_delay,
            multiplier=multiplier,
            jitter=jitter,
            jitter_ratio=jitter_ratio,
            max_retry_duration=max_retry_duration,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        flag = "--" + str(first["loc"][0]).replace("_", "-") if first["loc"] else "config"
        raise _fail(f"{flag}: {str(first['msg']).removeprefix('Value error, ')}") from None
    plan = plan_schedule(config)
    if as_json:
        typer.echo(json.dumps(plan.to_dict(), indent=2))
    else:
        typer.echo(render_schedule(plan))


def format_duration(seconds: float | None) -> str:
    """``7530`` → ``2h05m30s``; sub-minute values keep one decimal when not whole."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds == whole else f"{seconds:.1f}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s"


def render_schedule(plan: RetrySchedule) -> str:
    """The timeline as a plain-text table."""
    config = plan.config
    jitter = config.jitter.value
    if config.jitter is JitterMode.PROPORTIONAL:
        jitter += f" (ratio {config.jitter_ratio:g})"
    lines = [
        f"max_retries={config.max_retries} base_delay={config.base_delay:g}s "
        f"max_delay={config.max_delay:g}s multiplier={config.multiplier:g} jitter={jitter} "
        f"window={format_duration(config.max_retry_duration)}",
        "",
        f"{'retry':>5}  {'delay earliest':>14}  {'delay latest':>12}  "
        f"{'at earliest':>11}  {'at latest':>11}",
    ]
    for row in plan.retries:
        note = "  <- window end" if row.cut_by_window else ""
        lines.append(
            f"{row.retry_number:>5}  {format_duration(row.earliest_delay_s):>14}  "
            f"{format_duration(row.latest_delay_s):>12}  {format_duration(row.earliest_at_s):>11}  "
            f"{format_duration(row.latest_at_s):>11}{note}"
        )
    lines.append("")
    lines.append("delay: wait after the previous attempt; at: time after the first attempt")
    if plan.window_cut_retry is None:
        lines.append(f"the {format_duration(plan.window_s)} window does not cut the schedule")
    else:
        lines.append(
            f"the {format_duration(plan.window_s)} window cuts at retry {plan.window_cut_retry}"
            + (f"; {plan.dropped_retries} retries never happen" if plan.dropped_retries else "")
        )
    most = 1 + len(plan.retries)
    fewest = 1 + sum(row.latest_at_s is not None for row in plan.retries)
    if fewest < most:
        lines.append(
            f"attempts in all: {fewest} to {most} (first attempt + retries; '-': the window "
            "may end before this retry)"
        )
    else:
        lines.append(f"attempts in all: {most} (first attempt + retries)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Entry point: usage errors become one line on stderr and exit code 2."""
    args = sys.argv[1:] if argv is None else argv
    try:
        result = app(args=args or ["--help"], prog_name="hookline", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(EXIT_INTERRUPTED)
    except TyperException as exc:  # usage errors: unknown flag, bad value, missing argument
        typer.echo(f"hookline: error: {exc.format_message()}", err=True)
        sys.exit(EXIT_USAGE)
    if isinstance(result, int):
        sys.exit(result)


if __name__ == "__main__":
    main()
