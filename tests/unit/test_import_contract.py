"""The layer contract checker: the real tree is clean, and a bad tree is caught."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "import_contract", ROOT / "scripts" / "import_contract.py"
    )
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_source_tree_keeps_the_contract() -> None:
    assert _checker().violations(ROOT / "src" / "hookline") == []


def test_upward_sideways_and_io_imports_are_reported(tmp_path: Path) -> None:
    pkg = tmp_path / "hookline"
    _write(pkg, "__init__.py", "")
    _write(pkg, "domain/__init__.py", "import sqlalchemy\nfrom hookline.service import x\n")
    _write(pkg, "queue/redis_queue.py", "from hookline.storage.models import Delivery\n")
    _write(pkg, "queue/sql_queue.py", "from ..storage.models import Delivery\n")
    _write(pkg, "api/app.py", "from hookline.service.delivery import DeliveryService\n")
    _write(pkg, "strange/thing.py", "")

    problems = _checker().violations(pkg)

    text = "\n".join(problems)
    assert "domain imports I/O library sqlalchemy" in text
    assert "domain (level 1) imports hookline.service" in text
    assert "redis_queue.py:1: queue (level 3) imports hookline.storage.models" in text
    assert "sql_queue.py" not in text  # the one allowed sibling import, written relatively
    assert "api/app.py" not in text  # api may import service
    assert "unknown layer 'strange'" in text
    assert len(problems) == 4
