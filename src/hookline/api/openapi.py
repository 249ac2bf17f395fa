"""The OpenAPI document of the API, and its YAML form committed as ``api/openapi.yaml``.

Built from ``build_app()`` alone (no database, no queue), so ``scripts/gen_openapi`` and the
drift test run anywhere. The YAML keeps the document's own key order (paths in route order,
fields in model order) and is byte-for-byte reproducible.
"""

from __future__ import annotations

from typing import Any

import yaml

from hookline.api.app import build_app


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document ``/openapi.json`` serves."""
    return build_app().openapi()


class _Dumper(yaml.SafeDumper):
    """Block-style YAML that indents lists under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None  # descriptions read as written
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render_yaml(document: dict[str, Any]) -> str:
    """``document`` as deterministic YAML (insertion order kept, long lines not folded)."""
    return yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100_000,
    )
