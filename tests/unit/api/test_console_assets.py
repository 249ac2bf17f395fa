"""The console's vendored assets are the pinned ones, and its templates hold no inline code.

htmx is ``dist/htmx.min.js`` of the npm package ``htmx.org`` at ``assets.HTMX_VERSION``: the
file must hash to ``assets.HTMX_SHA256`` and name that version inside, so a file swapped or
edited by hand (or a constant changed alone) fails here.
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources
from importlib.abc import Traversable

import pytest
from jinja2 import Environment

from hookline.api.console import assets
from hookline.api.console.rendering import environment


def _static() -> Traversable:
    return resources.files("hookline.api") / "static" / assets.STATIC_FOLDER


def _templates() -> Traversable:
    return resources.files("hookline.api.console") / "templates"


def test_vendored_htmx_is_the_pinned_file() -> None:
    content = (_static() / assets.HTMX_FILE).read_bytes()

    assert hashlib.sha256(content).hexdigest() == assets.HTMX_SHA256
    versions = re.findall(rb'version:"([^"]+)"', content)
    assert versions == [assets.HTMX_VERSION.encode()]


def test_htmx_is_the_2_0_line_with_its_license_beside_it() -> None:
    assert re.fullmatch(r"2\.0\.\d+", assets.HTMX_VERSION)
    license_text = (_static() / assets.HTMX_LICENSE_FILE).read_text(encoding="utf-8")
    assert "Zero-Clause BSD" in license_text


def test_the_static_folder_holds_exactly_the_console_assets() -> None:
    names = {entry.name for entry in _static().iterdir()}
    assert names == {assets.STYLESHEET, assets.HTMX_FILE, assets.HTMX_LICENSE_FILE}
    css = (_static() / assets.STYLESHEET).read_text(encoding="utf-8")
    assert "@import" not in css
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", css)


def _template_names() -> list[str]:
    return sorted(entry.name for entry in _templates().iterdir() if entry.name.endswith(".html"))


@pytest.mark.parametrize("name", _template_names())
def test_templates_hold_no_inline_script_style_or_handler(name: str) -> None:
    source = (_templates() / name).read_text(encoding="utf-8")

    for script in re.findall(r"<script\b[^>]*>", source):
        assert "src=" in script, f"{name}: inline script"
    assert "<style" not in source, f"{name}: <style>"
    assert not re.search(r"\sstyle\s*=", source), f"{name}: style= attribute"
    assert not re.search(r"\son[a-z]+\s*=", source), f"{name}: on*= handler"
    assert "|safe" not in source.replace(" ", ""), f"{name}: marks data as safe"
    assert "autoescape false" not in source, f"{name}: turns escaping off"


def test_every_template_is_autoescaped() -> None:
    env = environment()
    assert isinstance(env, Environment)
    for name in [*_template_names(), "anything.txt", "chart.svg"]:
        assert env.autoescape is True or env.autoescape(name), name
    rendered = env.from_string("{{ value }}").render(value="<script>alert(1)</script>")
    assert rendered == "&lt;script&gt;alert(1)&lt;/script&gt;"
