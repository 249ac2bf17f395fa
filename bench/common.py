"""What every part of the harness shares: the failure type, statistics, payloads, paths."""

from __future__ import annotations

import math
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

import orjson

ROOT: Final = Path(__file__).resolve().parent.parent
"""The repository: ``bench/`` lives in it."""
VENV_BIN: Final = Path(sys.executable).parent
"""The venv the harness runs in; ``hookline`` and ``celery`` are started from here."""
HOOKLINE: Final = VENV_BIN / "hookline"
CELERY: Final = VENV_BIN / "celery"
PYCACHE_DIR: Final = Path(tempfile.gettempdir()) / f"hookline-bench-pycache-{os.getuid()}"
"""Bytecode of the children (the machine may set PYTHONDONTWRITEBYTECODE, which would make
every start compile FastAPI and SQLAlchemy again: seconds of CPU each)."""

DEFAULT_PG_ADMIN_URL: Final = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL: Final = "redis://127.0.0.1:6379/0"
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})

PAYLOAD_BYTES: Final = 1024
"""Every event body (and every peer's request body) is compact JSON of exactly this size."""


class BenchFailure(Exception):
    """A deadline passed, a check failed, or a process the harness needs misbehaved."""


def payload(seq: int, size: int = PAYLOAD_BYTES) -> dict[str, Any]:
    """A JSON object whose compact encoding is ``size`` bytes (for ``size`` ≥ 64)."""
    body: dict[str, Any] = {"seq": seq, "order_id": seq, "total": "19.99", "pad": ""}
    missing = size - len(orjson.dumps(body))
    body["pad"] = "x" * max(missing, 0)
    return body


def payload_bytes(seq: int, size: int = PAYLOAD_BYTES) -> bytes:
    return orjson.dumps(payload(seq, size))


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without hookline's settings (no leaking configuration),
    with shared bytecode, plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HOOKLINE_", "DATABASE_", "REDIS_", "CELERY_"))
        and key != "PYTHONDONTWRITEBYTECODE"
    }
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE_DIR)
    env["PYTHONUNBUFFERED"] = "1"
    env["METRICS_PORT"] = "0"  # several workers per deployment; the API's /metrics is read
    env.update(extra or {})
    return env


def exactly_once(
    requests: Iterable[Sequence[Any]], expected_ids: set[str], *, ok_status: int = 200
) -> dict[str, Any]:
    """How the webhook-ids answered ``ok_status`` compare with ``expected_ids``: each exactly
    once, none missing, none unknown."""
    counts = Counter(str(r[0]) for r in requests if r[3] == ok_status)
    check: dict[str, Any] = {
        "answered": sum(counts.values()),
        "distinct": len(counts),
        "duplicated": sum(n - 1 for n in counts.values() if n > 1),
        "missing": len(expected_ids - counts.keys()),
        "unknown": len(counts.keys() - expected_ids),
    }
    check["ok"] = check["duplicated"] == check["missing"] == check["unknown"] == 0
    return check


def require_exactly_once(check: dict[str, Any], what: str) -> None:
    if not check["ok"]:
        raise BenchFailure(
            f"{what}: not exactly once: {check['distinct']} distinct of {check['answered']} "
            f"answered, {check['missing']} missing, {check['duplicated']} duplicated, "
            f"{check['unknown']} unknown"
        )
