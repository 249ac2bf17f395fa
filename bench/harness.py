"""``bench/run``: every scenario of issue 10 against hookline and its peers, in one invocation.

    bench/run                        # full run, both deployments (~10-15 min on 2 cores)
    bench/run --quick                # tiny counts, every scenario, nothing judged (~1 min)
    bench/run --only drain,retry --deployment postgres-redis
    bench/run --set RETRY_WORKER_POLL_INTERVAL=0.1   # a hookline setting for every process

Prints one table and writes a JSON report (``bench/results/latest.json``; ``quick.json`` for
``--quick``). Exit status: 0 the harness worked (targets are reported, not enforced); 1 a check
failed (exactly-once, the database, a deadline, a process died) in some scenario; 2 bad
arguments; 130 interrupted. Loopback only; everything it starts or creates is removed on every
way out. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import hookline
from bench import processes
from bench.common import (
    DEFAULT_PG_ADMIN_URL,
    DEFAULT_REDIS_URL,
    LOOPBACK_HOSTS,
    PYCACHE_DIR,
    ROOT,
    BenchFailure,
)
from bench.deployments import BASE_SETTINGS, KINDS, DeploymentFactory, configure_bench_logging
from bench.kit import Context, ScenarioResult
from bench.plan import FULL, QUICK, Plan
from bench.receiver_client import running_receiver
from bench.report import Judge, build_rows, render
from bench.scenarios import SCENARIOS

RESULTS_DIR: Final = ROOT / "bench" / "results"
ALIASES: Final = {
    "retry-heavy": "retry",
    "scale-out": "scaleout",
    "a": "ingest",
    "b": "drain",
    "c": "retry",
    "d": "memory",
    "e": "lateness",
    "f": "isolation",
    "g": "scaleout",
}
RUN_LIMIT_S: Final = {True: 300.0, False: 3600.0}
"""Hard limit of a whole run (quick, full): past it the run stops and cleans up."""
HANG_S: Final = 30.0
"""How long the receiver holds a request to the timing-out endpoint."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run",
        description="hookline's benchmark: every scenario of issue 10, hookline beside a Celery "
        "peer and a bare aiohttp client, over loopback only.",
    )
    parser.add_argument("--quick", action="store_true", help="tiny counts; nothing judged")
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated scenarios (default: all): {', '.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--deployment", choices=(*KINDS, "both"), default="both", help="default: both"
    )
    parser.add_argument(
        "--output", type=Path, help="JSON report (default bench/results/latest.json or quick.json)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a hookline setting given to every hookline process (repeatable)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the run directory")
    parser.add_argument(
        "--table-from",
        type=Path,
        metavar="REPORT",
        help="print the table of a saved JSON report again (runs nothing)",
    )
    parser.add_argument("--pg-admin-url", default=DEFAULT_PG_ADMIN_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    args = parser.parse_args(argv)
    names = [ALIASES.get(n.strip(), n.strip()) for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"--only: unknown scenario(s) {', '.join(unknown)}")
    args.scenarios = [n for n in SCENARIOS if not names or n in names]
    args.kinds = list(KINDS) if args.deployment == "both" else [args.deployment]
    for url, flag in ((args.pg_admin_url, "--pg-admin-url"), (args.redis_url, "--redis-url")):
        if urlsplit(url).hostname not in LOOPBACK_HOSTS:
            parser.error(f"{flag} must point at 127.0.0.1")
    args.extra_env = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--set {item!r}: expected NAME=VALUE")
        args.extra_env[name] = value
    if args.output is None:
        args.output = RESULTS_DIR / ("quick.json" if args.quick else "latest.json")
    return args


def _git(*command: str) -> str | None:
    try:
        return subprocess.run(
            ["git", *command], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _meta(args: argparse.Namespace, plan: Plan) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _git("rev-parse", "HEAD"),
        "dirty_files": len(
            (_git("status", "--porcelain", "--untracked-files=no") or "").splitlines()
        ),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        },
        "hookline_imported_from": str(Path(hookline.__file__).parent),
        "quick": args.quick,
        "scenarios": args.scenarios,
        "deployments": args.kinds,
        "settings_given": {**BASE_SETTINGS, **plan.hookline_env, **args.extra_env},
        "plan": asdict(plan),
    }


async def run(args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    plan = QUICK if args.quick else FULL
    configure_bench_logging()
    report: dict[str, Any] = {"meta": _meta(args, plan), "scenarios": {}}
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    assert main_task is not None
    loop.add_signal_handler(signal.SIGTERM, main_task.cancel)
    results: list[ScenarioResult] = []
    async with running_receiver(
        run_dir=run_dir, lifetime_s=RUN_LIMIT_S[args.quick] + 120, hang_s=HANG_S
    ) as receiver:
        factories = {
            kind: DeploymentFactory(
                kind,
                run_dir=run_dir,
                pg_admin_url=args.pg_admin_url,
                redis_url=args.redis_url,
                extra_env={**plan.hookline_env, **args.extra_env},
            )
            for kind in args.kinds
        }
        report["meta"]["resources"] = {
            kind: {
                "databases": f"hookline_bench_{factory.token}_*",
                "redis_prefix": factory.redis_prefix,
            }
            for kind, factory in factories.items()
        }
        try:
            ready: dict[str, DeploymentFactory] = {}
            for kind, factory in factories.items():
                await factory.prepare()
                ready[kind] = factory
            ctx = Context(
                plan=plan,
                receiver=receiver,
                factories=ready,
                run_dir=run_dir,
                redis_url=args.redis_url,
            )
            for name in args.scenarios:
                print(
                    f"== {name} ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True
                )
                result = await SCENARIOS[name](ctx)
                results.append(result)
                report["scenarios"][name] = result.as_json()
                for error in result.errors:
                    print(f"   FAILED {error}", file=sys.stderr, flush=True)
        finally:
            for factory in factories.values():
                await factory.close()
    judge = Judge(judged=not args.quick)
    rows = build_rows(results, judge)
    report["rows"] = [asdict(row) for row in rows]
    report["targets"] = [asdict(check) for check in judge.checks]
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    report["ok"] = all(not r.errors for r in results)
    report["table"] = render(rows)
    return report


def table_from(path: Path) -> str:
    """The table of a saved report, rebuilt from its figures (targets judged as in the run)."""
    report = json.loads(path.read_text())
    results = [
        ScenarioResult(
            name,
            deployments=data["deployments"],
            peers=data["peers"],
            errors=data["errors"],
            skipped=data.get("skipped", []),
        )
        for name, data in report["scenarios"].items()
    ]
    return render(build_rows(results, Judge(judged=not report["meta"]["quick"])))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.table_from:
        print(table_from(args.table_from))
        return 0
    PYCACHE_DIR.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="hookline-benchrun-"))
    keep = args.keep_logs
    code = 1
    try:
        report = asyncio.run(asyncio.wait_for(run(args, run_dir), RUN_LIMIT_S[args.quick]))
    except KeyboardInterrupt:
        print(
            "interrupted: every process and database of the run has been removed", file=sys.stderr
        )
        return 130
    except asyncio.CancelledError:  # SIGTERM
        print("terminated: every process and database of the run has been removed", file=sys.stderr)
        return 143
    except TimeoutError:
        print(f"FAILED: the run passed its {RUN_LIMIT_S[args.quick]:g} s limit", file=sys.stderr)
        keep = True
        return 1
    except BenchFailure as exc:  # setting up: PostgreSQL or Redis missing, migrate failed
        print(f"FAILED: {exc}", file=sys.stderr)
        keep = True
        return 1
    except Exception:
        keep = True
        raise
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
        print(report["table"])
        meta = report["meta"]
        print(
            f"\n{meta['date']}  commit {str(meta['commit'])[:12]}"
            f"{' (+' + str(meta['dirty_files']) + ' changed files)' if meta['dirty_files'] else ''}"
            f"  {meta['machine']['cores']} cores, Python {meta['machine']['python']}"
            f"  {report['elapsed_s']:.0f} s{'  --quick: nothing judged' if args.quick else ''}"
            f"\nreport: {args.output}"
        )
        code = 0 if report["ok"] else 1
        if code:
            keep = True
            print("FAILED: a check did not pass (rows marked 'error' above)", file=sys.stderr)
        return code
    finally:
        processes.kill_leftovers()
        if keep:
            print(f"logs kept in {run_dir}", file=sys.stderr)
        else:
            shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
