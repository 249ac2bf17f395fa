"""The ``hookline`` command: serve, api, worker, migrate, schedule.

The only place that reads ``Settings()``. Bad flags or settings print one line and exit 2.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from typing import Annotated

import typer
from pydantic import ValidationError
from typer.exceptions import TyperException

from hookline.domain.retry_config import JitterMode, RetryConfig
from hookline.domain.schedule import RetrySchedule, plan_schedule
from hookline.observability.logging import configure_logging, get_logger
from hookline.runtime import Runtime, open_runtime
from hookline.settings import Settings
from hookline.storage import migrate as migrations
from hookline.storage.db import create_engine

EXIT_USAGE = 2
EXIT_LOOP_DIED = 1
"""A worker or sweeper loop ended by itself (they survive every exception, so this is a bug or
an unrecoverable state): the process exits so that its supervisor restarts it."""

app = typer.Typer(
    name="hookline",
    help="Self-hosted webhook delivery whose retries do not lose deliveries.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

HostOption = Annotated[str, typer.Option(help="Address to listen on.")]
PortOption = Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"hookline: error: {message}", err=True)
    return typer.Exit(EXIT_USAGE)


def load_settings() -> Settings:
    """Settings from the environment, or one line per problem and exit 2."""
    try:
        settings = Settings()
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            message = str(error["msg"]).removeprefix("Value error, ")
            typer.echo(
                f"hookline: invalid setting {where}: {message}"
                if where
                else f"hookline: invalid settings: {message}",
                err=True,
            )
        raise typer.Exit(EXIT_USAGE) from None
    configure_logging(level=settings.log_level, json_format=settings.log_format == "json")
    return settings


async def _run(
    settings: Settings,
    *,
    listen: tuple[str, int] | None,
    work: bool,
    migrate: bool,
    api_tokens: tuple[str, ...] = (),
) -> int:
    """Run the HTTP API (``listen``), the worker + sweeper (``work``), or both, until a signal;
    returns the exit code.

    SIGTERM/SIGINT: the API stops accepting, the worker finishes in-flight attempts within
    ``SHUTDOWN_GRACE_PERIOD`` and releases the rest, then the process exits 0. A loop that
    ends by itself stops the whole process with ``EXIT_LOOP_DIED``.
    """
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
            error=repr(error),
            exc_info=error,
        )
        stop.set()

    async with open_runtime(settings, migrate=migrate, api_tokens=api_tokens) as runtime:
        tasks: list[asyncio.Task[None]] = []
        if work:
            worker = RetryWorker.from_runtime(runtime)
            sweeper = Sweeper.from_runtime(runtime)
            tasks += [
                asyncio.create_task(worker.run(stop), name="worker"),
                asyncio.create_task(sweeper.run(stop), name="sweeper"),
            ]
            for task in tasks:
                task.add_done_callback(loop_ended)
        log.info(
            "hookline.start",
            api=f"http://{listen[0]}:{listen[1]}" if listen else None,
            worker=work,
            queue=settings.effective_queue_backend.value,
            database=runtime.engine.url.get_backend_name(),
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


async def _serve_api(runtime: Runtime, listen: tuple[str, int], stop: asyncio.Event) -> None:
    """Serve the API until ``stop`` is set or uvicorn receives a signal."""
    import uvicorn

    from hookline.api.app import create_app

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(runtime),
            host=listen[0],
            port=listen[1],
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
        await server.serve()
    finally:
        watcher.cancel()


def _api_tokens(settings: Settings, *, generate: bool) -> tuple[str, ...]:
    """Configured tokens, else the embedded default's token file (created when ``generate``)."""
    from hookline.api.tokens import ensure_api_token, token_path

    if settings.api_tokens:
        return tuple(settings.api_tokens)
    if not generate and not token_path(settings.data_dir).exists():
        raise _fail("set HOOKLINE_API_TOKENS (the API never runs without a token)")
    token, created = ensure_api_token(settings.data_dir)
    if created:
        typer.echo(
            f"hookline: generated an API token (stored in {token_path(settings.data_dir)}, "
            f"shown only now):\n\n    {token}\n\nUse it as 'Authorization: Bearer <token>'.",
            err=True,
        )
    return (token,)


@app.command()
def serve(host: HostOption = "127.0.0.1", port: PortOption = 8000) -> None:
    """Run API, delivery worker and sweeper in one process (SQLite + SQL queue by default).

    Brings the database schema up to date first, so a fresh machine needs nothing else.
    """
    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    tokens = _api_tokens(settings, generate=True)
    code = asyncio.run(
        _run(settings, listen=(host, port), work=True, migrate=True, api_tokens=tokens)
    )
    raise typer.Exit(code)


@app.command("api")
def api_command(host: HostOption = "127.0.0.1", port: PortOption = 8000) -> None:
    """Run the HTTP API alone (run several behind a load balancer)."""
    settings = load_settings()
    tokens = _api_tokens(settings, generate=False)
    code = asyncio.run(
        _run(settings, listen=(host, port), work=False, migrate=False, api_tokens=tokens)
    )
    raise typer.Exit(code)


@app.command()
def worker() -> None:
    """Run the delivery/retry worker and the sweeper alone (run as many as the load needs)."""
    settings = load_settings()
    raise typer.Exit(asyncio.run(_run(settings, listen=None, work=True, migrate=False)))


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

    revision = asyncio.run(run())
    typer.echo(f"database at revision {revision or 'base'} ({_redact(settings)})")


def _redact(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.effective_database_url).render_as_string(hide_password=True)


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
    if plan.window_cut_retry is None:
        lines.append(f"the {format_duration(plan.window_s)} window does not cut the schedule")
    else:
        lines.append(
            f"the {format_duration(plan.window_s)} window cuts at retry {plan.window_cut_retry}"
            + (f"; {plan.dropped_retries} retries never happen" if plan.dropped_retries else "")
        )
    lines.append(f"attempts in all: {1 + len(plan.retries)} (first attempt + retries)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Entry point: usage errors become one line on stderr and exit code 2."""
    args = sys.argv[1:] if argv is None else argv
    try:
        result = app(args=args or ["--help"], standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except TyperException as exc:  # usage errors: unknown flag, bad value, missing argument
        typer.echo(f"hookline: error: {exc.format_message()}", err=True)
        sys.exit(EXIT_USAGE)
    if isinstance(result, int):
        sys.exit(result)
