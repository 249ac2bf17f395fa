"""Security headers on every response under ``/ui``, whoever produced it.

An ASGI middleware rather than per-route code, so a redirect, an error page, and the framework's
own 404/405/413 under ``/ui`` carry them too. The policy allows scripts, styles and images from
this origin only: no inline script or style anywhere in the console (htmx is told not to inject
its indicator style), ``data:`` images aside. Pages are never cached: they show live state and
carry CSRF tokens. Responses outside ``/ui`` (the API, ``/docs``, ``/static``) are untouched.
"""

from __future__ import annotations

from typing import Final

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONSOLE_PATH: Final = "/ui"

CONTENT_SECURITY_POLICY: Final = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
}
NO_STORE: Final = "no-store"


def is_console_path(scope: Scope) -> bool:
    """Whether the request of ``scope`` is for ``/ui`` or below (after any ``root_path``)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path == CONSOLE_PATH or path.startswith(CONSOLE_PATH + "/")


class ConsoleHeaders:
    """Adds ``SECURITY_HEADERS`` and ``Cache-Control: no-store`` to ``/ui`` responses."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_console_path(scope):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                headers["Cache-Control"] = NO_STORE
            await send(message)

        await self.app(scope, receive, send_with_headers)
