"""The layer contract of STYLE.md, checked on the source tree's imports (AST, no import-time code).

Imports point down: cli → api | worker → runtime → service → storage | queue | sender |
observability → settings → domain → kernel (errors, clock, ids). Siblings on one level do not
import each other; the one allowed exception is ``queue.sql_queue`` → ``storage`` (that queue IS
the deliveries table). ``domain`` imports no I/O library.

Usage: ``python scripts/import_contract.py src/hookline`` — prints each violation, exits 1 if any.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

RANKS: dict[str, int] = {
    "": 0,  # hookline/__init__.py
    "errors": 0,
    "clock": 0,
    "ids": 0,
    "domain": 1,
    "settings": 2,
    "storage": 3,
    "queue": 3,
    "sender": 3,
    "observability": 3,
    "service": 4,
    "runtime": 5,
    "api": 6,
    "worker": 6,
    "cli": 7,
}
ALLOWED_SIBLINGS = {("queue.sql_queue", "storage")}
DOMAIN_FORBIDDEN = {
    "aiohttp", "aiosqlite", "asyncio", "asyncpg", "fastapi", "httpx", "opentelemetry",
    "prometheus_client", "redis", "requests", "socket", "sqlalchemy", "starlette", "structlog",
    "urllib.request",
}  # fmt: skip


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _module_name(root: Path, path: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                drop = node.level - 1 if is_package else node.level
                base = base[: len(base) - drop] if drop else base
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
    return found


def violations(root: Path) -> list[str]:
    """Every import under ``root`` (the ``hookline`` package directory) that breaks the contract."""
    problems: list[str] = []
    package = root.name
    for path in sorted(root.rglob("*.py")):
        if "migrations" in path.parts:
            continue  # Alembic scripts run inside Alembic, not inside the layer graph
        module = _module_name(root, path)
        layer = _layer(module)
        if layer not in RANKS:
            problems.append(f"{path}: module in unknown layer {layer!r}; add it to RANKS")
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for lineno, target in _imports(tree, module, path.name == "__init__.py"):
            where = f"{path}:{lineno}"
            if layer == "domain" and any(
                target == lib or target.startswith(lib + ".") for lib in DOMAIN_FORBIDDEN
            ):
                problems.append(f"{where}: domain imports I/O library {target}")
            if not (target == package or target.startswith(package + ".")):
                continue
            target_layer = _layer(target)
            if target_layer == layer or target_layer not in RANKS:
                continue
            inner = module.removeprefix(package + ".")
            if (inner, target_layer) in ALLOWED_SIBLINGS:
                continue
            if RANKS[target_layer] >= RANKS[layer]:
                problems.append(
                    f"{where}: {layer or package} (level {RANKS[layer]}) imports "
                    f"{target} (level {RANKS[target_layer]}): imports must point down"
                )
    return problems


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else "src/hookline")
    problems = violations(root)
    for problem in problems:
        print(problem)
    print(f"import contract: {len(problems)} violation(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
