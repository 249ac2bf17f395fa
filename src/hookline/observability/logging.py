"""Structured logging: one JSON object per line on stdout, secrets redacted.

structlog renders our own events; the stdlib root handler renders everyone else's (uvicorn,
SQLAlchemy, aiohttp) through the same processors, so an operator parses one format.

Redaction has two layers, and every line takes both whatever logger wrote it:

- by key (``redact_secrets``, a processor): a field whose name says it holds a secret
  (``secret``, ``authorization``, ``*_token``, …) is replaced, in nested dicts and lists too;
- by value (``redact_text``, on the rendered line in the root handler's formatter): whatever
  reached the text — a field, a positional or ``%s`` argument, an exception message or
  traceback, a ``repr`` — loses webhook secrets (``whsec_…``), Standard Webhooks signatures
  (``v1,…``/``v1a,…``), ``Bearer`` tokens, ``Authorization`` header values, the userinfo of
  URLs (``https://user:[redacted]@host``) and every string given to ``register_secret``.
  Tracebacks are formatted as plain text before rendering (never rich's, which prints locals).
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Iterable, MutableMapping
from typing import IO, Any, Final

import orjson
import structlog

REDACTED: Final = "[redacted]"
MIN_REGISTERED_SECRET_CHARS: Final = 8
"""Shorter strings are not registered: replacing a common word in every line hides more than it
protects (a short password inside a URL is still masked as userinfo)."""

_SECRET_KEYS: Final = frozenset(
    {
        "secret",
        "secrets",
        "previous_secret",
        "authorization",
        "proxy_authorization",
        "token",
        "tokens",
        "api_token",
        "api_tokens",
        "api_key",
        "x_api_key",
        "password",
        "signature",
        "cookie",
        "set_cookie",
    }
)
_SECRET_KEY_SUFFIXES: Final = ("_secret", "_token", "_password", "_signature")
_PLAIN_KEYS_MAX: Final = 4096
_CONTAINER_TYPES: Final = frozenset({dict, list, tuple})
_NESTED_DEPTH_MAX: Final = 8

_WEBHOOK_SECRET: Final = re.compile(r"whsec_[A-Za-z0-9+/=_-]+")
_SIGNATURE: Final = re.compile(r"\b(v1a?),[A-Za-z0-9+/_-]{16,}={0,2}")
_BEARER: Final = re.compile(r"\b(bearer)\s+[^\s\"'\\,;]+", re.IGNORECASE)
# The value after "authorization:" / "authorization=" / '"authorization": "' (also JSON-escaped
# quotes): an optional scheme word ("Basic ") and the credentials, up to a space, a quote, a
# backslash or a separator.
_AUTHORIZATION: Final = re.compile(
    r"(\bauthorization\\?[\"']?\s*[:=]\s*\\?[\"']?)(?:[A-Za-z][A-Za-z0-9-]*\s+)?[^\s\"'\\,;}]+",
    re.IGNORECASE,
)
# scheme://userinfo@ — userinfo ends at the last "@" before the path, query, fragment, a space
# or a quote; JSON escapes ("\"") stay inside it.
_URL_USERINFO: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)((?:[^\s/?#\"'<>\\]|\\.)+)@")


class _Registered:
    """The exact strings ``register_secret`` was given, with the forms renderers write them in."""

    forms: tuple[str, ...] = ()
    """Read without a lock on every line (a tuple is replaced whole, never changed)."""
    lock = threading.Lock()


_registered = _Registered()
_plain_keys: set[str] = set()
"""Field names seen and known not to name a secret (bounded: nested dicts may bring any)."""


def register_secret(value: str) -> None:
    """Redact ``value`` wherever it appears in any log line from now on (API tokens, the alert
    webhook secret, passwords). Empty values and ones shorter than
    ``MIN_REGISTERED_SECRET_CHARS`` are ignored. Safe from any thread."""
    if len(value) < MIN_REGISTERED_SECRET_CHARS:
        return
    forms = {value, *_escaped_spellings(value)}
    with _registered.lock:
        # Longest first, so a secret containing another is replaced whole.
        _registered.forms = tuple(sorted({*_registered.forms, *forms}, key=len, reverse=True))


def _escaped_spellings(value: str) -> set[str]:
    """How renderers may write ``value`` inside a longer string: JSON-escaped, and as ``repr``
    does (the console renderer, for values in containers), whose quoting depends on the whole
    string: ``'`` escaped or not."""
    quoted = repr(value)
    inner = quoted[1:-1]
    if quoted[0] == "'":
        plain_quotes, escaped_quotes = inner.replace("\\'", "'"), inner
    else:  # "-delimited: ' inside, no "
        plain_quotes, escaped_quotes = inner, inner.replace("'", "\\'")
    return {orjson.dumps(value).decode()[1:-1], plain_quotes, escaped_quotes}


def forget_secrets() -> None:
    """Forget every registered secret (for tests)."""
    with _registered.lock:
        _registered.forms = ()


def redact_text(text: str) -> str:
    """``text`` without registered secrets, webhook secrets, signatures, bearer tokens,
    ``Authorization`` values and URL userinfo. Cheap substring checks decide which patterns run:
    a line with none of their markers costs a few scans."""
    for form in _registered.forms:
        if form in text:
            text = text.replace(form, REDACTED)
    if "whsec_" in text:
        text = _WEBHOOK_SECRET.sub("whsec_" + REDACTED, text)
    if "v1," in text or "v1a," in text:
        text = _SIGNATURE.sub(r"\1," + REDACTED, text)
    if "://" in text and "@" in text:
        text = _URL_USERINFO.sub(_mask_userinfo, text)
    if "earer" in text or "EARER" in text:
        text = _BEARER.sub(r"\1 " + REDACTED, text)
    if "uthorization" in text or "UTHORIZATION" in text:
        text = _AUTHORIZATION.sub(r"\1" + REDACTED, text)
    return text


def _mask_userinfo(match: re.Match[str]) -> str:
    user, colon, _ = match.group(2).partition(":")
    return f"{match.group(1)}{user}:{REDACTED}@" if colon else f"{match.group(1)}{REDACTED}@"


def _is_secret_key(key: str) -> bool:
    if key in _plain_keys:
        return False
    name = key.lower().replace("-", "_")
    if name in _SECRET_KEYS or name.endswith(_SECRET_KEY_SUFFIXES):
        return True
    if len(_plain_keys) < _PLAIN_KEYS_MAX:
        _plain_keys.add(key)
    return False


def _redact_nested(value: Any, depth: int) -> Any:
    """A copy of ``value`` (a dict, list or tuple) with secret-named keys' values replaced; the
    caller's object is never changed."""
    if depth > _NESTED_DEPTH_MAX:
        return value
    if isinstance(value, dict):
        return {
            key: REDACTED
            if isinstance(key, str) and _is_secret_key(key)
            else _redact_nested(item, depth + 1)
            for key, item in value.items()
        }
    if type(value) is list:
        return [_redact_nested(item, depth + 1) for item in value]
    if type(value) is tuple:  # not a named tuple: it takes its fields one by one
        return tuple(_redact_nested(item, depth + 1) for item in value)
    return value


def redact_secrets(
    _logger: object, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace the value of any field whose name says it holds a secret, in nested dicts, lists
    and tuples too. Values are redacted later, on the rendered line (``redact_text``).

    Hot path (a line per delivery attempt): the keys seen before and the value types are
    checked by set operations, so a line of known keys and flat values costs well under 1 µs.
    """
    for key in event.keys() - _plain_keys:
        if _is_secret_key(key):
            event[key] = REDACTED
    if not _CONTAINER_TYPES.isdisjoint(map(type, event.values())):
        for key, value in event.items():
            if type(value) in _CONTAINER_TYPES:
                event[key] = _redact_nested(value, 1)
    return event


class _RedactingFormatter(structlog.stdlib.ProcessorFormatter):
    """Renders like ``ProcessorFormatter``, then redacts the line: whatever a processor, an
    argument or a traceback put into the text, it leaves through here."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


def _orjson_dumps(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def configure_logging(
    *,
    level: str = "INFO",
    json_format: bool = True,
    secrets: Iterable[str] = (),
    stream: IO[str] | None = None,
) -> None:
    """Route structlog and stdlib logging to ``stream`` (stdout) in one format, redacting
    ``secrets`` (see ``register_secret``) besides what ``redact_text`` finds by shape. Safe to
    call twice; secrets accumulate."""
    for secret in secrets:
        register_secret(secret)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # Plain text before any renderer sees the exception: the console renderer's default
        # (rich) would print every frame's locals, secrets included.
        structlog.processors.format_exc_info,
        redact_secrets,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        if json_format
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout if stream is None else stream)
    handler.setFormatter(
        _RedactingFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    quiet = max(logging.getLevelName(level), logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(quiet)
    # Alembic announces each of its plugins at INFO on every start: noise, not news.
    logging.getLogger("alembic.runtime.plugins").setLevel(quiet)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structured logger; fields passed as keywords become JSON keys."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
