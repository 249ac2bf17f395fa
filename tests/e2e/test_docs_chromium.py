"""Headless Chromium opens /docs of a running ``hookline serve`` with every host but 127.0.0.1
unresolvable, and Swagger UI renders the whole operation list from the packaged assets."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hookline.api.openapi import openapi_document
from tests.e2e.api_server import STARTUP_TIMEOUT_S, running_hookline
from tests.fixtures.processes import STOP_TIMEOUT_S, run_bounded

CHROMIUM_TIMEOUT_S = 180
"""Longest one headless Chromium run may take (a loaded 2-core machine); then its whole process
group is killed and the test fails with its output."""
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.e2e


def _chromium() -> str:
    path = shutil.which("chromium")
    assert path, "Debian chromium is missing: apt-get install -y --no-install-recommends chromium"
    return path


def _headless(url: str, profile: Path, *action: str) -> subprocess.CompletedProcess[str]:
    return run_bounded(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=8000",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            "--window-size=1280,2400",
            *action,
            url,
        ],
        timeout_s=CHROMIUM_TIMEOUT_S,
    )


def _operation_count() -> int:
    return sum(len(methods) for methods in openapi_document()["paths"].values())


@pytest.mark.timeout(STARTUP_TIMEOUT_S + 2 * CHROMIUM_TIMEOUT_S + 2 * STOP_TIMEOUT_S + 30)
def test_swagger_ui_renders_every_operation_offline(tmp_path: Path) -> None:
    # Given hookline serve on SQLite, on loopback
    with running_hookline(tmp_path) as server:
        docs = f"{server.base_url}/docs"

        # When headless Chromium loads /docs with no other host resolvable
        dom = _headless(docs, tmp_path / "profile-dom", "--dump-dom")
        shot_path = tmp_path / "docs.png"
        shot = _headless(docs, tmp_path / "profile-shot", f"--screenshot={shot_path}")

    # Then the operation list rendered: one summary path per operation of the document
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = re.findall(r'class="opblock-summary-path"', dom.stdout)
    assert len(rendered) >= _operation_count() == 28, dom.stdout[-3000:]
    assert "/webhooks/{webhook_id}/retry-config/schedule" in dom.stdout
    assert "OAS 3.1" in dom.stdout
    # and the screenshot was taken (a real PNG of a real page)
    assert shot.returncode == 0, shot.stderr[-2000:]
    image = shot_path.read_bytes()
    assert image.startswith(PNG_MAGIC)
    assert len(image) > 20_000
