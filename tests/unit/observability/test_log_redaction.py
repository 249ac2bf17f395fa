"""Secrets never reach a log line, whatever logger wrote it and however it was passed.

Logging is configured for real (``configure_logging``, JSON and console renderers) onto a
captured stream; every secret kind is put through every call path a line can take: structlog
keywords, nested containers and positional arguments, a foreign stdlib logger with ``%s``
arguments, exception messages and chained tracebacks (structlog ``exc_info`` and stdlib
``exception()``), and fields whose name says they are secret. Each test also finds its marker
in the output, so the line was really emitted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from io import StringIO
from typing import Any

import pytest
import structlog

from hookline.observability.logging import (
    REDACTED,
    configure_logging,
    forget_secrets,
    get_logger,
    redact_text,
)

WEBHOOK_SECRET = "whsec_aG9va2xpbmUtdGVzdC13ZWJob29rLXNlY3JldC0zMmI="
API_TOKEN = "hl-api-token-5b2b64432cebfc44"
ODD_TOKEN = "tok'en\"with\\odd-chars-0123"  # quotes and a backslash, escaped by renderers
SIGNATURE_V1 = "tgCQ4wUil661oICInOL8S8qVfnVvrrTffTGADKHncew="
SIGNATURE_V1A = (
    "JA2/B5R3kfuvuNs81PGbmt3mVXglfBEUsF0hIPGrTz+Zu5PUAgj1whl+z6DsDHjLu9KRVFzbiEx/azMQij1j+A=="
)
BEARER = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJob29rbGluZSJ9.c2lnbmF0dXJl"
BASIC = "YmFzaWMtdXNlcjpiYXNpYy1wYXNz"
URL_PASSWORD = "url-pass-w0rd"
DSN_PASSWORD = "pg-pass-w0rd"
URL_USER_TOKEN = "ghp_userinfoonlytoken123"

SECRETS: dict[str, tuple[str, str]] = {
    # kind: (text that carries it, the part that must never appear)
    "webhook_secret": (f"secret is {WEBHOOK_SECRET}", WEBHOOK_SECRET.removeprefix("whsec_")),
    "api_token": (f"token {API_TOKEN} rejected", API_TOKEN),
    "odd_api_token": (f"token {ODD_TOKEN} rejected", ODD_TOKEN),
    "signature_v1": (f"webhook-signature: v1,{SIGNATURE_V1}", SIGNATURE_V1),
    "signature_v1a": (f"webhook-signature: v1a,{SIGNATURE_V1A}", SIGNATURE_V1A),
    "bearer": (f"sent Bearer {BEARER} upstream", BEARER),
    "authorization": (f"Authorization: Basic {BASIC}", BASIC),
    "url_password": (f"POST https://hook-user:{URL_PASSWORD}@hooks.example.com/in", URL_PASSWORD),
    "dsn_password": (f"postgresql+asyncpg://hookline:{DSN_PASSWORD}@db:5432/hl", DSN_PASSWORD),
    "url_user_token": (f"https://{URL_USER_TOKEN}@git.example.com/repo", URL_USER_TOKEN),
}
MARKER = "marker-5b2b6443"
"""Non-secret text beside every secret: it must survive, proving the line was emitted."""


def _spellings(secret: str) -> set[str]:
    """The secret as given, JSON-escaped, and repr-escaped (either quoting)."""
    inner = repr(secret)[1:-1]
    return {
        secret,
        json.dumps(secret)[1:-1],
        inner,
        inner.replace("\\'", "'"),
        inner.replace("'", "\\'"),
    }


@pytest.fixture(params=["json", "console"])
def output(request: pytest.FixtureRequest) -> Iterator[StringIO]:
    """Logging configured by ``configure_logging`` onto a StringIO; everything it changed is
    put back afterwards (root handler and level, library loggers, structlog, secrets)."""
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    names = ("uvicorn", "uvicorn.error", "uvicorn.access", "alembic.runtime.plugins")
    saved = {
        name: (logger.handlers[:], logger.propagate, logger.level)
        for name in names
        for logger in [logging.getLogger(name)]
    }
    saved_structlog = structlog.get_config()
    stream = StringIO()
    configure_logging(
        level="INFO",
        json_format=request.param == "json",
        secrets=[API_TOKEN, ODD_TOKEN],
        stream=stream,
    )
    try:
        yield stream
    finally:
        forget_secrets()
        structlog.configure(**saved_structlog)
        root.handlers[:], root.level = saved_root[0], saved_root[1]
        for name, (handlers, propagate, level) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:], logger.propagate = handlers, propagate
            logger.setLevel(level)
    if request.param == "json":  # redaction must leave every line parseable
        for line in stream.getvalue().splitlines():
            json.loads(line)


def _assert_redacted(output: StringIO, leaked: str) -> str:
    text = output.getvalue()
    assert MARKER in text, f"the line was not emitted:\n{text}"
    for spelling in _spellings(leaked):
        assert spelling not in text, f"{spelling!r} leaked:\n{text}"
    return text


def _structlog_kwargs(text: str) -> None:
    get_logger("hookline.test").info("redaction.kwargs", detail=f"{MARKER} {text}")


def _structlog_nested(text: str) -> None:
    request: dict[str, Any] = {"items": [{"note": f"{MARKER} {text}"}], "pair": (text, 1)}
    get_logger("hookline.test").info("redaction.nested", request=request)


def _structlog_positional(text: str) -> None:
    get_logger("hookline.test").info(f"redaction.positional {MARKER} %s", text)


def _foreign_percent_args(text: str) -> None:
    logging.getLogger("uvicorn.error").warning("%s said %s", MARKER, text)


def _structlog_exc_info(text: str) -> None:
    try:
        try:
            raise ValueError(text)  # the secret is in the cause: the chained traceback shows it
        except ValueError as cause:
            raise RuntimeError(f"{MARKER} {text}") from cause
    except RuntimeError as exc:
        get_logger("hookline.test").error("redaction.exception", exc_info=exc)


def _foreign_exception(text: str) -> None:
    try:
        raise ConnectionError(f"cannot reach {text}")
    except ConnectionError:
        logging.getLogger("aiohttp.client").exception("%s request failed", MARKER)


def _structlog_exc_info_true(text: str) -> None:
    try:
        raise OSError(text)
    except OSError:
        get_logger("hookline.test").warning("redaction.exc_true", marker=MARKER, exc_info=True)


PATHS: dict[str, Callable[[str], None]] = {
    "structlog_kwargs": _structlog_kwargs,
    "structlog_nested": _structlog_nested,
    "structlog_positional": _structlog_positional,
    "stdlib_foreign_percent_args": _foreign_percent_args,
    "structlog_exc_info_chained": _structlog_exc_info,
    "structlog_exc_info_true": _structlog_exc_info_true,
    "stdlib_foreign_exception": _foreign_exception,
}


@pytest.mark.parametrize("path", PATHS.values(), ids=PATHS.keys())
@pytest.mark.parametrize(("carrier", "leaked"), SECRETS.values(), ids=SECRETS.keys())
def test_a_secret_never_appears_whatever_the_logger_path(
    output: StringIO, path: Callable[[str], None], carrier: str, leaked: str
) -> None:
    path(carrier)
    _assert_redacted(output, leaked)


PLAIN_VALUE = "plain-value-of-no-known-shape"


@pytest.mark.parametrize(
    "key",
    [
        "secret",
        "previous_secret",
        "alert_webhook_secret",
        "authorization",
        "Authorization",
        "proxy-authorization",
        "token",
        "api_token",
        "refresh_token",
        "password",
        "signature",
        "cookie",
    ],
)
def test_a_field_named_for_a_secret_is_redacted_flat_and_nested(output: StringIO, key: str) -> None:
    get_logger("hookline.test").info("redaction.by_key", marker=MARKER, **{key: PLAIN_VALUE})
    get_logger("hookline.test").info(
        "redaction.by_key_nested",
        marker=MARKER,
        request={"headers": [{key: PLAIN_VALUE, "accept": "application/json"}]},
    )
    text = _assert_redacted(output, PLAIN_VALUE)
    assert "application/json" in text  # the neighbours of a secret field stay
    assert text.count(REDACTED) >= 2


def test_the_callers_fields_are_not_changed(output: StringIO) -> None:
    headers = {"authorization": "Bearer x", "accept": "*/*"}
    request = {"headers": headers, "attempts": [1, 2]}
    get_logger("hookline.test").info("redaction.no_mutation", marker=MARKER, request=request)
    _assert_redacted(output, "Bearer x")
    assert headers == {"authorization": "Bearer x", "accept": "*/*"}
    assert request["attempts"] == [1, 2]


@pytest.mark.parametrize("short", ["", "short"])
def test_empty_or_short_registered_secrets_are_ignored(output: StringIO, short: str) -> None:
    """``ALERT_WEBHOOK_SECRET`` is empty by default: registering it must not redact between
    every character."""
    configure_logging(level="INFO", secrets=[short], stream=output)
    get_logger("hookline.test").info("redaction.short", detail=f"{MARKER} a short text")
    assert f"{MARKER} a short text" in output.getvalue()
    assert REDACTED not in output.getvalue()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "https://user:pass@hooks.example.com/in?x=1",
            f"https://user:{REDACTED}@hooks.example.com/in?x=1",
        ),
        ("postgresql://hl:p@ss@db:5432/hl", f"postgresql://hl:{REDACTED}@db:5432/hl"),
        ("redis://:pw123@cache:6379/0", f"redis://:{REDACTED}@cache:6379/0"),
        ("https://tokenonly@host/x", f"https://{REDACTED}@host/x"),
        (f"a {WEBHOOK_SECRET} b", f"a whsec_{REDACTED} b"),
        (f"v1,{SIGNATURE_V1} v1a,{SIGNATURE_V1A}", f"v1,{REDACTED} v1a,{REDACTED}"),
        (f"BEARER {BEARER}", f"BEARER {REDACTED}"),
        (
            f"{{'Authorization': 'Basic {BASIC}', 'Accept': '*/*'}}",
            f"{{'Authorization': '{REDACTED}', 'Accept': '*/*'}}",
        ),
        # Look-alikes that carry no secret stay as they are.
        ("https://hooks.example.com/path@v2 and mail me@example.com", None),
        ("the whsec_ prefix; v1,2 and v1,short; 3://x", None),
        ("authorization failed for user hookline", None),
    ],
)
def test_redact_text_masks_only_the_secret_part(text: str, expected: str | None) -> None:
    assert redact_text(text) == (text if expected is None else expected)
