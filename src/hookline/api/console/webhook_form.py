"""The webhook form of the console: what a person typed, read into the API's own input models.

A posted form is text. ``WebhookFormValues`` keeps it as typed (a refused form comes back with
exactly that), and ``payload`` turns it into the JSON-shaped values a request body would carry:
event types split on commas and new lines, headers one ``Name: value`` per line, numbers as
numbers, the selects as booleans or absent. Those values are then validated by the models the
API validates request bodies with (``WebhookIn``, ``WebhookPatch``, ``RetryConfigIn``), so the
console accepts and refuses exactly what the API does; each refusal becomes a sentence next to
its field (``FieldErrors``, worded by ``api.errors.readable`` as the API's 422 words it).

A retry field left empty takes its default, as a field left out of a request body does; all of
them empty means "the defaults" (``retry_config`` null). Text that is not a number is handed to
the model as it is, so the model's own message says what is wrong with it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import FormData

from hookline.api.errors import readable
from hookline.api.schemas import RetryConfigIn, WebhookIn, WebhookPatch
from hookline.domain.retry_config import DEFAULT_RETRY_CONFIG, JitterMode, RetryConfig
from hookline.service.endpoints import InvalidWebhookField, masked_headers, retry_config_of

if TYPE_CHECKING:
    from hookline.storage.models import Endpoint

FieldErrors = dict[str, list[str]]
"""Form field name → the sentences saying what is wrong with it."""

RETRY_GROUP: Final = "retry_config"
"""Where an error about the retry config as a whole (not one field) is shown."""
URL_MISSING: Final = "Enter the URL deliveries are sent to."
NO_STATUSES: Final = "none"
"""Typed into *disable on status*: no status disables the webhook (an empty list)."""
_LIST_SEPARATORS: Final = re.compile(r"[,\n\r]+")
_STATUS_SEPARATORS: Final = re.compile(r"[\s,]+")
_RETRY_CONFIG: Final = TypeAdapter(RetryConfigIn)

TRACE_CHOICES: Final = {"": None, "on": True, "off": False}
"""The *trace propagation* select: the setting's default, always, never."""
YES_NO_CHOICES: Final = {"": None, "yes": True, "no": False}
"""A boolean retry field's select: its default, yes, no."""


@dataclass(frozen=True, slots=True)
class RetryField:
    """One retry-config field of the form: its name (the model's), label and input kind."""

    name: str
    label: str
    kind: str
    """``integer``, ``number``, ``jitter``, ``yes-no`` or ``statuses``."""
    hint: str
    unit: str = ""

    @property
    def default_text(self) -> str:
        """The default value as the field would show it (its placeholder)."""
        return _config_text(DEFAULT_RETRY_CONFIG, self.name)


RETRY_FIELDS: Final = (
    RetryField("max_retries", "Max retries", "integer", "Retries after the first attempt, 0-10."),
    RetryField("base_delay", "Base delay", "number", "Wait before the first retry.", "seconds"),
    RetryField("max_delay", "Max delay", "number", "Cap on any single wait.", "seconds"),
    RetryField("multiplier", "Multiplier", "number", "Each wait is this times the previous, 1-10."),
    RetryField("jitter", "Jitter", "jitter", "How each wait is spread at random."),
    RetryField("jitter_ratio", "Jitter ratio", "number", "Spread of proportional jitter, 0-1."),
    RetryField(
        "max_retry_duration",
        "Retry window",
        "number",
        "Every retry happens within this time after the first attempt (at most 7 days).",
        "seconds",
    ),
    RetryField(
        "respect_retry_after",
        "Respect Retry-After",
        "yes-no",
        "Wait as long as the receiver's Retry-After header asks (capped by max delay).",
    ),
    RetryField(
        "disable_on_status",
        "Disable on status",
        "statuses",
        f"Statuses that disable the webhook at once, e.g. 404, 410; {NO_STATUSES}: never.",
    ),
)
RETRY_FIELD_NAMES: Final = tuple(item.name for item in RETRY_FIELDS)
JITTER_CHOICES: Final = tuple(mode.value for mode in JitterMode)
_LABELS: Final = {item.name: item.label for item in RETRY_FIELDS}


@dataclass(slots=True)
class WebhookFormValues:
    """The webhook form's fields as text, as typed (or as a stored webhook shows them)."""

    url: str = ""
    description: str = ""
    event_types: str = ""
    headers: str = ""
    trace_propagation: str = ""
    retry: dict[str, str] = field(default_factory=lambda: dict.fromkeys(RETRY_FIELD_NAMES, ""))

    @classmethod
    def from_form(cls, form: FormData | Mapping[str, Any]) -> WebhookFormValues:
        return cls(
            url=_text(form, "url"),
            description=_text(form, "description"),
            event_types=_text(form, "event_types"),
            headers=_text(form, "headers"),
            trace_propagation=_text(form, "trace_propagation"),
            retry=retry_values(form),
        )

    @classmethod
    def from_endpoint(cls, endpoint: Endpoint) -> WebhookFormValues:
        """The stored webhook as its edit form shows it: credential headers masked (sending
        the masked value back keeps the stored one), its own retry config filled in (a webhook
        on the defaults, or with a config that cannot be read, shows empty retry fields)."""
        effective = retry_config_of(endpoint)
        retry = dict.fromkeys(RETRY_FIELD_NAMES, "")
        if effective.source == "custom":
            retry = {name: _config_text(effective.config, name) for name in RETRY_FIELD_NAMES}
        trace = {None: "", True: "on", False: "off"}[endpoint.trace_propagation]
        return cls(
            url=endpoint.url,
            description=endpoint.description,
            event_types="\n".join(endpoint.event_types),
            headers="\n".join(f"{n}: {v}" for n, v in masked_headers(endpoint.headers).items()),
            trace_propagation=trace,
            retry=retry,
        )


@dataclass(frozen=True, slots=True)
class Checked:
    """A form read into its API model, or the errors that stopped it (``model`` None)."""

    model: Any
    errors: FieldErrors


def retry_values(form: FormData | Mapping[str, Any]) -> dict[str, str]:
    """The retry fields of ``form`` (a posted form or a query string) as typed."""
    return {name: _text(form, name) for name in RETRY_FIELD_NAMES}


def check_retry_config(values: Mapping[str, str]) -> tuple[RetryConfig | None, FieldErrors]:
    """The retry config the retry fields give (the defaults when all are empty), or the errors
    of the fields that ``RetryConfigIn`` refuses."""
    payload = retry_payload(values)
    try:
        return _RETRY_CONFIG.validate_python(payload or {}), {}
    except ValidationError as exc:
        return None, errors_of(exc, prefix=())


def check_new_webhook(values: WebhookFormValues) -> Checked:
    """The form as a ``WebhookIn``, or its errors."""
    payload, errors = _payload(values)
    try:
        model: Any = WebhookIn.model_validate(payload)
    except ValidationError as exc:
        model = None
        _merge(errors, errors_of(exc, prefix=()))
    return _checked(model, errors, values)


def check_webhook_changes(values: WebhookFormValues, endpoint: Endpoint) -> Checked:
    """The form as a ``WebhookPatch`` of ``endpoint``: every field, but the URL only when it
    changed (an unchanged URL is not vetted again), or its errors."""
    payload, errors = _payload(values)
    if payload.get("url") == endpoint.url:
        del payload["url"]
    try:
        model: Any = WebhookPatch.model_validate(payload)
    except ValidationError as exc:
        model = None
        _merge(errors, errors_of(exc, prefix=()))
    return _checked(model, errors, values)


def refusal_errors(exc: InvalidWebhookField) -> FieldErrors:
    """A service refusal (a blocked address, a masked credential) next to its field."""
    message = readable({"type": exc.kind, "loc": exc.loc, "msg": str(exc)})["msg"]
    name, rest = exc.loc[0], exc.loc[1:]
    if name == "headers" and rest:
        message = f"{rest[0]}: {message}"
    return {name: [message]}


def errors_of(exc: ValidationError, *, prefix: tuple[str | int, ...]) -> FieldErrors:
    """The errors of a model's ``ValidationError`` by form field, each a sentence; an item of
    a list (an event type, a header, a status) is named before its message."""
    found: FieldErrors = {}
    for error in exc.errors():
        loc = tuple(error["loc"])[len(prefix) :]
        message = str(readable(dict(error))["msg"])
        if loc and loc[0] == RETRY_GROUP:
            loc = loc[1:]
            name = str(loc[0]) if loc else RETRY_GROUP
        else:
            name = str(loc[0]) if loc else RETRY_GROUP
        rest = loc[1:]
        if rest and name == "headers":
            message = f"{rest[0]}: {message}"
        elif rest and name in {"event_types", "disable_on_status"}:
            shown = _shown(error.get("input"))
            if shown not in message:  # (an event type's own message quotes it already)
                message = f"\u201c{shown}\u201d: {message}"
        found.setdefault(name, []).append(message)
    return found


def labelled(errors: FieldErrors) -> list[str]:
    """The retry fields' errors as sentences naming their field (the preview lists them)."""
    return [
        f"{_LABELS.get(name, 'Retry config')}: {message}"
        for name, messages in errors.items()
        for message in messages
    ]


def retry_payload(values: Mapping[str, str]) -> dict[str, Any] | None:
    """The retry fields as a request body's ``retry_config`` would carry them; None when every
    field is empty (the defaults)."""
    payload: dict[str, Any] = {}
    for item in RETRY_FIELDS:
        text = values.get(item.name, "").strip()
        if not text:
            continue
        if item.kind in {"integer", "number"}:
            payload[item.name] = _number(text)
        elif item.kind == "yes-no":
            payload[item.name] = YES_NO_CHOICES.get(text, text)
        elif item.kind == "statuses":
            payload[item.name] = _statuses(text)
        else:
            payload[item.name] = text
    return payload or None


def _payload(values: WebhookFormValues) -> tuple[dict[str, Any], FieldErrors]:
    errors: FieldErrors = {}
    headers, header_errors = _headers(values.headers)
    if header_errors:
        errors["headers"] = header_errors
    payload: dict[str, Any] = {
        "url": values.url.strip(),
        "description": values.description,
        "event_types": [t.strip() for t in _LIST_SEPARATORS.split(values.event_types) if t.strip()],
        "headers": headers,
        "retry_config": retry_payload(values.retry),
        "trace_propagation": TRACE_CHOICES.get(values.trace_propagation.strip(), "unknown"),
    }
    return payload, errors


def _checked(model: Any, errors: FieldErrors, values: WebhookFormValues) -> Checked:
    if not values.url.strip():
        errors["url"] = [URL_MISSING]  # rather than "should have at least 1 character"
    return Checked(model=None if errors else model, errors=errors)


def _headers(text: str) -> tuple[dict[str, str], list[str]]:
    """``Name: value`` lines as a mapping; a line without a colon, or a name given twice (in
    any letter case), is an error naming its line."""
    headers: dict[str, str] = {}
    errors: list[str] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not name:
            errors.append(f"Line {number}: write each header as Name: value.")
            continue
        if name.lower() in seen:
            errors.append(
                f"Line {number}: {name} is given twice (names are compared ignoring case)."
            )
            continue
        seen.add(name.lower())
        headers[name] = value.strip()
    return headers, errors


def _number(text: str) -> Any:
    """``"3"`` → 3, ``"2.5"`` → 2.5; anything else as it is (the model says what is wrong)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _statuses(text: str) -> Any:
    if text.lower() == NO_STATUSES:
        return []
    return [_number(token) for token in _STATUS_SEPARATORS.split(text) if token]


def _config_text(config: RetryConfig, name: str) -> str:
    """A config field as its form field shows it."""
    value = getattr(config, name)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, JitterMode):
        return value.value
    if isinstance(value, tuple):
        return ", ".join(str(code) for code in value) if value else NO_STATUSES
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)


def _text(form: FormData | Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _merge(into: FieldErrors, more: FieldErrors) -> None:
    for name, messages in more.items():
        into.setdefault(name, []).extend(messages)
