"""How much each scenario does: the full run (the issue's counts where feasible) and ``--quick``.

Every load loop of the harness is bounded by one of these counts and by a deadline derived
from it (``phase_timeout_s``); a full run takes about 10-15 minutes on a 2-core machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

SLOWEST_RATE_PER_S: Final = 20.0
"""The slowest drain a phase deadline allows for (deliveries/s) before it calls a run failed."""


@dataclass(frozen=True, slots=True)
class Plan:
    quick: bool
    drain_count: int
    endpoints: int
    latency_duration_s: float
    latency_max_count: int
    retry_count: int
    ingest_duration_s: float
    ingest_max_requests: int
    ingest_clients: int
    scale_count: int
    scale_processes: tuple[int, ...]
    isolation_hang_count: int
    isolation_rate_per_s: float
    isolation_duration_s: float
    isolation_timeout_s: float
    lateness_count: int
    lateness_rate_per_s: float
    memory_count: int
    memory_idle_s: float
    memory_settle_s: float
    celery_eta_count: int
    bare_concurrency: int
    lateness_lead_s: float
    hookline_env: dict[str, str]
    """Settings every hookline process gets in this plan (besides ``bench.deployments``')."""

    def phase_timeout_s(self, count: int, *, floor_s: float = 60.0) -> float:
        """Deadline of a phase that has ``count`` deliveries to make."""
        return min(floor_s + count / SLOWEST_RATE_PER_S, 1800.0)


FULL: Final = Plan(
    quick=False,
    drain_count=20_000,
    endpoints=10,
    latency_duration_s=10.0,
    latency_max_count=20_000,
    retry_count=5_000,
    ingest_duration_s=15.0,
    ingest_max_requests=100_000,
    ingest_clients=50,
    scale_count=20_000,
    scale_processes=(1, 2, 4),
    isolation_hang_count=10_000,
    isolation_rate_per_s=50.0,
    isolation_duration_s=10.0,
    isolation_timeout_s=2.0,
    lateness_count=10_000,
    lateness_rate_per_s=1_000.0,
    memory_count=1_000_000,
    memory_idle_s=10.0,
    memory_settle_s=15.0,
    celery_eta_count=10_000,
    bare_concurrency=100,
    lateness_lead_s=2.0,
    hookline_env={},  # hookline's defaults
)

QUICK: Final = Plan(
    quick=True,
    drain_count=200,
    endpoints=3,
    latency_duration_s=0.5,
    latency_max_count=200,
    retry_count=60,
    ingest_duration_s=1.0,
    ingest_max_requests=300,
    ingest_clients=50,
    scale_count=200,
    scale_processes=(1, 2),
    isolation_hang_count=100,
    isolation_rate_per_s=20.0,
    isolation_duration_s=1.0,
    isolation_timeout_s=1.0,
    lateness_count=200,
    lateness_rate_per_s=200.0,
    memory_count=3_000,
    memory_idle_s=0.5,
    memory_settle_s=1.0,
    celery_eta_count=200,
    bare_concurrency=100,
    lateness_lead_s=1.0,
    # Waits of a quick run are mostly the worker's idle poll (1 s by default): shorter here,
    # so that CI exercises every scenario in about a minute. Nothing quick is judged.
    hookline_env={"RETRY_WORKER_POLL_INTERVAL": "0.2"},
)
