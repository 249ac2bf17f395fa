"""The API token of the embedded deployment: generated once, kept beside the SQLite file.

``hookline serve`` with no ``HOOKLINE_API_TOKENS`` calls ``ensure_api_token(data_dir)``: the
first start creates ``<data_dir>/api-token`` (mode 0600, created exclusively so two processes
starting at once agree on one token) and prints it once; later starts read it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Final

from hookline.errors import ConfigurationError

TOKEN_FILE: Final = "api-token"  # noqa: S105 - a file name, not a secret
TOKEN_BYTES: Final = 32
"""Random bytes in a generated token (43 URL-safe characters)."""
MIN_TOKEN_CHARS: Final = 16
"""The same floor ``HOOKLINE_API_TOKENS`` enforces."""


def token_path(data_dir: Path) -> Path:
    """Where the generated token of ``data_dir`` lives."""
    return data_dir / TOKEN_FILE


def ensure_api_token(data_dir: Path) -> tuple[str, bool]:
    """The token stored in ``data_dir``, creating it first if absent; ``(token, created)``.

    Raises ``ConfigurationError`` when the file exists but holds no usable token.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = token_path(data_dir)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path), False
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(token + "\n")
    return token, True


def _read(path: Path) -> str:
    token = path.read_text(encoding="utf-8").strip()
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
        raise ConfigurationError(
            f"{path} holds no usable API token (at least {MIN_TOKEN_CHARS} characters, no "
            "spaces); delete it to have a new one generated"
        )
    return token
