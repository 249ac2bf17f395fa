"""The console's session cookie and CSRF tokens: stateless, signed with the API tokens themselves.

A session is the cookie ``<expiry>.<mac>``: ``expiry`` in Unix seconds, ``mac`` the hex
HMAC-SHA256 keyed by the API token that signed in, over ``"hookline-console:" + expiry``. Nothing
is stored server-side, so every API process that has the token accepts the cookie, and removing
a token from ``HOOKLINE_API_TOKENS`` ends the sessions it signed. A cookie is checked against
*every* configured token in constant time (as ``api.auth`` checks bearer tokens); the token
itself never leaves the server, and the cookie tells nothing about it.

Every form a signed-in person posts carries ``csrf``: the hex HMAC, keyed by the same token, of
``"hookline-console-csrf:" + <cookie value>`` (another prefix, so a CSRF token is never a
session MAC). The sign-in form, posted before any session exists, is protected by a double
submit instead: a random ``LOGIN_NONCE_BYTES`` value in a short-lived cookie and in the form.

Times are passed in (``now_s``): the routes read the runtime's clock.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

SESSION_COOKIE: Final = "hookline_console"
CSRF_FIELD: Final = "csrf"
"""The form field carrying the CSRF token (or the sign-in nonce)."""
LOGIN_COOKIE: Final = "hookline_console_login"
SESSION_TTL_S: Final = 12 * 3600
"""How long a sign-in lasts; then the console asks for the token again."""
LOGIN_NONCE_TTL_S: Final = 15 * 60
"""How long a sign-in form stays usable (the lifetime of its nonce cookie)."""
LOGIN_NONCE_BYTES: Final = 32

_SESSION_PREFIX: Final = "hookline-console:"
_CSRF_PREFIX: Final = "hookline-console-csrf:"
_SESSION_VALUE: Final = re.compile(r"([0-9]{1,12})\.([0-9a-f]{64})")
_NONCE_VALUE: Final = re.compile(r"[A-Za-z0-9_-]{43}")
"""``secrets.token_urlsafe(LOGIN_NONCE_BYTES)``: 43 URL-safe characters."""


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A valid session: its cookie, when it ends, and the CSRF token its forms carry."""

    cookie: str
    expires_at_s: int
    csrf: str


def _mac(token: str, message: str) -> str:
    key = token.encode("utf-8", "surrogateescape")
    return hmac.new(key, message.encode("ascii"), hashlib.sha256).hexdigest()


def sign_session(token: str, *, now_s: float) -> str:
    """A new session cookie value signed with ``token``, ending ``SESSION_TTL_S`` from now."""
    expiry = int(now_s) + SESSION_TTL_S
    return f"{expiry}.{_mac(token, f'{_SESSION_PREFIX}{expiry}')}"


def csrf_token(cookie: str, token: str) -> str:
    """The CSRF token of the session ``cookie`` signed with ``token``."""
    return _mac(token, _CSRF_PREFIX + cookie)


def verify_session(
    cookie: str | None, tokens: Sequence[str], *, now_s: float
) -> ConsoleSession | None:
    """The session ``cookie`` stands for, or None when it is absent, malformed, expired, or
    signed by no configured token. Every token is tried, whichever matches."""
    if not cookie:
        return None
    parsed = _SESSION_VALUE.fullmatch(cookie)
    if parsed is None:
        return None
    expiry, given = int(parsed.group(1)), parsed.group(2)
    signer: str | None = None
    for token in tokens:
        expected = _mac(token, f"{_SESSION_PREFIX}{parsed.group(1)}")
        if hmac.compare_digest(expected, given) and signer is None:
            signer = token
    if signer is None or expiry <= now_s:
        return None
    return ConsoleSession(cookie=cookie, expires_at_s=expiry, csrf=csrf_token(cookie, signer))


def csrf_matches(given: str | None, expected: str) -> bool:
    """Whether a submitted CSRF value equals the expected one (constant time)."""
    return given is not None and hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), expected.encode("ascii")
    )


def new_login_nonce() -> str:
    """A fresh value for the sign-in form's double-submit cookie."""
    return secrets.token_urlsafe(LOGIN_NONCE_BYTES)


def is_login_nonce(value: str | None) -> bool:
    """Whether ``value`` has the shape ``new_login_nonce`` gives (anything else is ignored)."""
    return value is not None and _NONCE_VALUE.fullmatch(value) is not None
