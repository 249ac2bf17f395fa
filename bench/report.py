"""Targets of issue 10, the rows of the one table, and how they are printed.

A target is judged only in a full run (``--quick`` counts are too small to mean anything): its
``met`` is then true or false, and null in a quick run or when a figure is missing. Targets are
for PostgreSQL + Redis unless the issue names SQLite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.deployments import POSTGRES_REDIS, SQLITE
from bench.kit import ScenarioResult

MB = 1_000_000 / 1024 / 1024
"""One MB in MiB (targets say MB, RSS is read in KiB)."""


@dataclass
class Check:
    """One target: what it asks, the figure it looked at, whether it was met."""

    scenario: str
    deployment: str
    target: str
    value: float | None
    met: bool | None


@dataclass
class Row:
    scenario: str
    deployment: str
    metric: str
    hookline: str
    celery: str = ""
    bare: str = ""
    vs_celery: str = ""
    vs_bare: str = ""
    cpu_us: str = ""
    target: str = ""
    met: str = ""
    numbers: dict[str, Any] = field(default_factory=dict)
    """The row's figures as numbers (the JSON report's reader wants those, not text)."""


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float | int):
        return f"{value:,.{digits}f}"
    return str(value)


def _ratio(a: Any, b: Any) -> float | None:
    if isinstance(a, int | float) and isinstance(b, int | float) and b:
        return a / b
    return None


class Judge:
    """Collects the checks of one run; ``judged`` is False for ``--quick``."""

    def __init__(self, *, judged: bool) -> None:
        self.judged = judged
        self.checks: list[Check] = []

    def check(
        self,
        scenario: str,
        deployment: str,
        target: str,
        value: float | None,
        passes: Callable[[float], bool],
    ) -> bool | None:
        met = None if not self.judged or value is None else bool(passes(value))
        self.checks.append(Check(scenario, deployment, target, value, met))
        return met

    @staticmethod
    def combine(results: list[bool | None]) -> str:
        if any(r is False for r in results):
            return "NO"
        if results and all(r is True for r in results):
            return "yes"
        return "-"


def build_rows(results: list[ScenarioResult], judge: Judge) -> list[Row]:
    rows: list[Row] = []
    for result in results:
        builder = _BUILDERS[result.name]
        for kind, figures in result.deployments.items():
            rows += builder(result, kind, figures, judge)
        for error in result.errors:
            where, _, message = error.partition(": ")
            rows.append(
                Row(result.name, where, "FAILED", message.splitlines()[0][:110], met="error")
            )
    return rows


def _drain(result: ScenarioResult, kind: str, d: dict[str, Any], judge: Judge) -> list[Row]:
    celery = result.peers.get("celery", {})
    bare = result.peers.get("bare_client", {})
    vs_celery = _ratio(d.get("rate_per_s"), celery.get("rate_per_s"))
    vs_bare = _ratio(d.get("rate_per_s"), bare.get("rate_per_s"))
    met: list[bool | None] = []
    if kind == POSTGRES_REDIS:
        target = "≥10x Celery, ≥50% bare, ≤300 µs"
        met.append(judge.check("drain", kind, "drain ≥ 10x Celery", vs_celery, lambda v: v >= 10))
        met.append(judge.check("drain", kind, "drain ≥ 50% of bare", vs_bare, lambda v: v >= 0.5))
        met.append(
            judge.check(
                "drain",
                kind,
                "worker CPU ≤ 300 µs per 2xx delivery",
                d.get("cpu_us_per_delivery"),
                lambda v: v <= 300,
            )
        )
    else:
        target = "≥25% bare"
        met.append(judge.check("drain", kind, "drain ≥ 25% of bare", vs_bare, lambda v: v >= 0.25))
    rows = [
        Row(
            "drain",
            kind,
            f"deliveries/s, {_num(d.get('count'))} queued",
            _num(d.get("rate_per_s")),
            _num(celery.get("rate_per_s")),
            _num(bare.get("rate_per_s")),
            f"{vs_celery:.2f}x" if vs_celery else "-",
            f"{vs_bare:.1%}" if vs_bare else "-",
            f"{_num(d.get('cpu_us_per_delivery'))} ({_num(celery.get('cpu_us_per_delivery'))})",
            target,
            Judge.combine(met),
            numbers={
                "deliveries_per_s": d.get("rate_per_s"),
                "celery_per_s": celery.get("rate_per_s"),
                "bare_per_s": bare.get("rate_per_s"),
                "vs_celery": vs_celery,
                "vs_bare": vs_bare,
                "cpu_us_per_delivery": d.get("cpu_us_per_delivery"),
                "celery_cpu_us_per_delivery": celery.get("cpu_us_per_delivery"),
            },
        )
    ]
    latency = d.get("latency")
    if latency:
        rows.append(
            Row(
                "drain",
                kind,
                f"publish→receipt p50/p99 ms @ {_num(latency['publish_rate_per_s'])}/s",
                f"{_num(latency['p50_ms'], 1)} / {_num(latency['p99_ms'], 1)}"
                + "".join(f"; {n}x{s} refused" for s, n in sorted(latency["refused"].items())),
                met="-",
                numbers={
                    "publish_per_s": latency["publish_rate_per_s"],
                    "p50_ms": latency["p50_ms"],
                    "p99_ms": latency["p99_ms"],
                },
            )
        )
    return rows


def _retry(result: ScenarioResult, kind: str, d: dict[str, Any], judge: Judge) -> list[Row]:
    celery = result.peers.get("celery", {})
    vs_celery = _ratio(d.get("rate_per_s"), celery.get("rate_per_s"))
    met: list[bool | None] = []
    target = ""
    if kind == POSTGRES_REDIS:
        target = "≥20x Celery, ≤450 µs"
        met.append(
            judge.check("retry", kind, "retry-heavy ≥ 20x Celery", vs_celery, lambda v: v >= 20)
        )
        met.append(
            judge.check(
                "retry",
                kind,
                "worker CPU ≤ 450 µs per retried delivery",
                d.get("cpu_us_per_delivery"),
                lambda v: v <= 450,
            )
        )
    return [
        Row(
            "retry",
            kind,
            f"deliveries/s, 503 then 200, {_num(d.get('count'))}",
            _num(d.get("rate_per_s")),
            _num(celery.get("rate_per_s")),
            "",
            f"{vs_celery:.2f}x" if vs_celery else "-",
            "",
            f"{_num(d.get('cpu_us_per_delivery'))} ({_num(celery.get('cpu_us_per_delivery'))})",
            target,
            Judge.combine(met),
            numbers={
                "deliveries_per_s": d.get("rate_per_s"),
                "celery_per_s": celery.get("rate_per_s"),
                "vs_celery": vs_celery,
                "cpu_us_per_delivery": d.get("cpu_us_per_delivery"),
                "celery_cpu_us_per_delivery": celery.get("cpu_us_per_delivery"),
            },
        )
    ]


def _ingest(result: ScenarioResult, kind: str, d: dict[str, Any], judge: Judge) -> list[Row]:
    if kind == POSTGRES_REDIS:
        target = "≥3,000/s"
        met = [
            judge.check(
                "ingest",
                kind,
                "ingest ≥ 3,000 durable events/s",
                d.get("durable_per_s"),
                lambda v: v >= 3000,
            )
        ]
    else:
        target = "0 x 503"
        met = [
            judge.check(
                "ingest", kind, "ingest: no 503 on SQLite", d.get("status_503"), lambda v: v == 0
            )
        ]
    non_2xx = ", ".join(f"{s}x{n}" for s, n in sorted(d.get("non_2xx", {}).items())) or "none"
    return [
        Row(
            "ingest",
            kind,
            f"durable events/s, {d.get('clients')} clients",
            _num(d.get("durable_per_s")),
            cpu_us=f"{_num(d.get('server_cpu_us_per_request'))} /req",
            target=target if kind == POSTGRES_REDIS else "",
            met=Judge.combine(met[:1]) if kind == POSTGRES_REDIS else "",
            numbers={
                "durable_per_s": d.get("durable_per_s"),
                "p50_ms": d.get("p50_ms"),
                "p99_ms": d.get("p99_ms"),
                "status_503": d.get("status_503"),
                "server_cpu_us_per_request": d.get("server_cpu_us_per_request"),
            },
        ),
        Row(
            "ingest",
            kind,
            "latency p50/p99 ms; non-2xx",
            f"{_num(d.get('p50_ms'), 1)} / {_num(d.get('p99_ms'), 1)}; {non_2xx}",
            target=target if kind == SQLITE else "",
            met=Judge.combine(met[:1]) if kind == SQLITE else "",
        ),
    ]


def _scaleout(result: ScenarioResult, kind: str, d: dict[str, Any], judge: Judge) -> list[Row]:
    bare = result.peers.get("bare_client", {})
    rows = []
    for count, run in d.get("runs", {}).items():
        speedup = d.get("speedup", {}).get(count)
        target, met = "", ""
        if count == "2":
            target = "≥1.6x one"
            met = Judge.combine(
                [
                    judge.check(
                        "scaleout", kind, "2 processes ≥ 1.6x one", speedup, lambda v: v >= 1.6
                    )
                ]
            )
        vs_bare = _ratio(run.get("rate_per_s"), bare.get("rate_per_s"))
        rows.append(
            Row(
                "scaleout",
                kind,
                f"deliveries/s, {count} worker process(es)",
                f"{_num(run.get('rate_per_s'))} ({_num(speedup, 2)}x one)",
                bare=_num(bare.get("rate_per_s")),
                vs_bare=f"{vs_bare:.1%}" if vs_bare else "-",
                cpu_us=_num(run.get("cpu_us_per_delivery")),
                target=target,
                met=met,
                numbers={
                    "processes": int(count),
                    "deliveries_per_s": run.get("rate_per_s"),
                    "speedup": speedup,
                    "bare_per_s": bare.get("rate_per_s"),
                    "vs_bare": vs_bare,
                    "cpu_us_per_delivery": run.get("cpu_us_per_delivery"),
                },
            )
        )
    return rows


def _isolation(result: ScenarioResult, kind: str, d: dict[str, Any], judge: Judge) -> list[Row]:
    alone, beside = d.get("alone", {}), d.get("beside_timing_out", {})
    target, met = "", ""
    if kind == POSTGRES_REDIS:
        # The ratio only means something when the healthy endpoint keeps up on its own: a
        # baseline that is already seconds late would make any ratio look fine.
        target = "<2x alone (alone <1 s)"
        met = Judge.combine(
            [
                judge.check(
                    "isolation", kind, "healthy p99 < 2x alone", d.get("p99_ratio"), lambda v: v < 2
                ),
                judge.check(
                    "isolation",
                    kind,
                    "healthy endpoint keeps up alone: p99 < 1 s (baseline of the ratio)",
                    alone.get("p99_ms"),
                    lambda v: v < 1000,
                ),
            ]
        )
    return [
        Row(
            "isolation",
            kind,
            f"healthy p99 ms @ {_num(alone.get('asked_rate_per_s'))}/s alone → beside timing-out",
            f"{_num(alone.get('p99_ms'), 1)} → {_num(beside.get('p99_ms'), 1)} "
            f"({_num(d.get('p99_ratio'), 2)}x)",
            target=target,
            met=met,
            numbers={
                "alone_p99_ms": alone.get("p99_ms"),
                "beside_p99_ms": beside.get("p99_ms"),
                "p99_ratio": d.get("p99_ratio"),
            },
        )
    ]


def _lateness(result: ScenarioResult, kind: str, d: dict[str, Any], judge: Judge) -> list[Row]:
    target, met = "", ""
    if kind == POSTGRES_REDIS:
        target = "p99 < 1 s"
        met = Judge.combine(
            [
                judge.check(
                    "lateness", kind, "lateness p99 < 1 s", d.get("p99_ms"), lambda v: v < 1000
                )
            ]
        )
    return [
        Row(
            "lateness",
            kind,
            f"attempt - due p50/p99 ms @ {_num(d.get('rate_per_s'))}/s",
            f"{_num(d.get('p50_ms'), 1)} / {_num(d.get('p99_ms'), 1)}",
            cpu_us=_num(d.get("cpu_us_per_delivery")),
            target=target,
            met=met,
            numbers={
                "p50_ms": d.get("p50_ms"),
                "p99_ms": d.get("p99_ms"),
                "cpu_us_per_delivery": d.get("cpu_us_per_delivery"),
            },
        )
    ]


def _memory(result: ScenarioResult, kind: str, d: dict[str, Any], judge: Judge) -> list[Row]:
    celery = result.peers.get("celery", {})
    target, met = "", ""
    if kind == POSTGRES_REDIS:
        target = "≤ +50 MB"
        met = Judge.combine(
            [
                judge.check(
                    "memory",
                    kind,
                    "worker RSS with pending ≤ idle + 50 MB",
                    d.get("rss_delta_mib"),
                    lambda v: v <= 50 * MB,
                )
            ]
        )
    celery_text = (
        f"{_num(celery.get('rss_idle_mib'), 1)} → {_num(celery.get('rss_pending_mib'), 1)} MiB "
        f"@ {_num(celery.get('eta_tasks'))} ETA"
        if celery
        else ""
    )
    return [
        Row(
            "memory",
            kind,
            f"worker RSS MiB idle → {_num(d.get('pending'))} pending",
            f"{_num(d.get('rss_idle_mib'), 1)} → {_num(d.get('rss_pending_mib'), 1)} "
            f"({d.get('rss_delta_mib', 0):+.1f})",
            celery=celery_text,
            target=target,
            met=met,
            numbers={
                "rss_idle_mib": d.get("rss_idle_mib"),
                "rss_pending_mib": d.get("rss_pending_mib"),
                "rss_delta_mib": d.get("rss_delta_mib"),
                "celery_rss_idle_mib": celery.get("rss_idle_mib"),
                "celery_rss_pending_mib": celery.get("rss_pending_mib"),
            },
        )
    ]


_BUILDERS: dict[str, Callable[[ScenarioResult, str, dict[str, Any], Judge], list[Row]]] = {
    "drain": _drain,
    "retry": _retry,
    "ingest": _ingest,
    "scaleout": _scaleout,
    "isolation": _isolation,
    "lateness": _lateness,
    "memory": _memory,
}

HEADERS = Row(
    "scenario",
    "deployment",
    "metric",
    "hookline",
    "Celery",
    "bare client",
    "vs Celery",
    "vs bare",
    "CPU µs/dlv (Celery)",
    "target",
    "met",
)


def _cells(row: Row) -> list[str]:
    return [value for key, value in asdict(row).items() if key != "numbers"]


def render(rows: list[Row]) -> str:
    """One plain-text table; columns that are empty in every row are left out."""
    table = [_cells(HEADERS)] + [_cells(row) for row in rows]
    keep = [i for i in range(len(table[0])) if any(line[i] for line in table[1:])]
    table = [[line[i] for i in keep] for line in table]
    widths = [max(len(line[i]) for line in table) for i in range(len(keep))]
    lines = []
    for number, line in enumerate(table):
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        lines.append("  ".join(cells).rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)
