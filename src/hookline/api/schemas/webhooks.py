"""Webhook shapes: ``WebhookIn`` / ``WebhookPatch`` / ``WebhookOut``, enabling, the secret.

The secret never appears in ``WebhookOut`` (so never in a list); it has its own endpoint. Nor do
credential headers (``Authorization``, ...): ``WebhookOut`` shows them masked.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BeforeValidator,
    Field,
    GetJsonSchemaHandler,
    StrictBool,
    TypeAdapter,
    ValidationError,
)
from pydantic.config import JsonDict
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from hookline.api.schemas.common import (
    InputModel,
    OutputModel,
    StorableText,
    UtcDatetime,
)
from hookline.api.schemas.retry_config import RetryConfigIn
from hookline.api.schemas.urls import WEBHOOK_URL_PATTERN
from hookline.domain.envelope import PayloadFormat
from hookline.domain.event_types import PATTERN_FORBIDDEN_REGEX, PATTERN_RULE, validate_pattern
from hookline.domain.retry_config import RetryConfig
from hookline.domain.signing import validate_secret
from hookline.domain.states import DisabledReason, EndpointStatus
from hookline.service.endpoints import (
    CREDENTIAL_HEADERS,
    MASK,
    Recover,
    masked_headers,
    retry_config_of,
)

if TYPE_CHECKING:
    from hookline.service.endpoint_sends import EndpointSendOutcome
    from hookline.service.lifecycle import ProbeOutcome
    from hookline.storage.models import Endpoint

MAX_URL_CHARS: Final = 2048
MAX_EVENT_TYPES: Final = 100
MAX_HEADERS: Final = 20
MAX_HEADER_VALUE_CHARS: Final = 1024
HEADER_NAME_PATTERN: Final = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$"
HEADER_VALUE_PATTERN: Final = r"^[^\x00\r\n]*$"
RESERVED_HEADERS: Final = frozenset(
    {
        "connection",
        "content-length",
        "host",
        "keep-alive",
        "te",
        "transfer-encoding",
        "upgrade",
        "webhook-attempt",
        "webhook-id",
        "webhook-signature",
        "webhook-timestamp",
    }
)
"""Headers hookline or HTTP itself sets; a webhook may not override them."""
RESERVED_HEADERS_PATTERN: Final = "^(?:{})$".format(
    "|".join(
        "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in name)
        for name in sorted(RESERVED_HEADERS)
    )
)
"""``RESERVED_HEADERS`` in any letter case, for the JSON Schema (which has no case flag)."""
WHSEC_PATTERN: Final = (
    r"^whsec_(?:(?:[A-Za-z0-9+/]{4}){8,20}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"
    r"|(?:[A-Za-z0-9+/]{4}){21}(?:[A-Za-z0-9+/]{2}==)?)$"
)
"""``whsec_`` + padded base64 of 24-64 bytes (``domain.signing.decode_secret``)."""

_URL_ADAPTER: Final = TypeAdapter(AnyHttpUrl)
_HEADER_NAME: Final = re.compile(HEADER_NAME_PATTERN)
_USERINFO: Final = re.compile(r"^[hH][tT][tT][pP][sS]?://[^/?#]*@")
"""A URL that carries ``user@`` or ``user:password@`` before its host (any encoding of them)."""
URL_RULE: Final = (
    "must be an absolute http:// or https:// URL whose host is a DNS name, an IPv4 address or "
    "an [IPv6] address, with an optional port 0-65535, and only printable ASCII after it "
    "(percent-encode anything else)"
)


def _no_credentials(value: Any) -> Any:
    """Refuse ``user:password@`` with a message of its own, before the URL pattern (which
    refuses it too, worded as ``URL_RULE`` by the 422 handler) would."""
    if isinstance(value, str) and _USERINFO.match(value):
        raise ValueError(
            "must not carry credentials (user:password@ or user@): put them in headers "
            'instead, e.g. "headers": {"Authorization": "Basic …"}'
        )
    return value


def _http_url(value: str) -> str:
    try:
        url = _URL_ADAPTER.validate_python(value)
    except ValidationError as exc:
        raise ValueError("must be an absolute http:// or https:// URL") from exc
    if url.scheme not in {"http", "https"} or not url.host:
        raise ValueError("must be an absolute http:// or https:// URL")
    return str(url)


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _headers(value: dict[str, str]) -> dict[str, str]:
    for name in value:
        if not _HEADER_NAME.match(name):
            raise ValueError(f"{name!r} is not a valid header name")
        if name.lower() in RESERVED_HEADERS:
            raise ValueError(f"{name!r} is set by hookline and cannot be overridden")
    if len({name.lower() for name in value}) != len(value):
        raise ValueError("header names must be unique regardless of case")
    return value


class _HeaderNamesSchema:
    """States the header-name rules as ``propertyNames`` (pydantic writes the name pattern as
    ``patternProperties``, which would leave other names unconstrained) and the value rules as
    ``additionalProperties``."""

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        ((name_pattern, value_schema),) = schema.pop("patternProperties").items()
        schema["propertyNames"] = {
            **schema.get("propertyNames", {}),
            "pattern": name_pattern,
            "not": {"pattern": RESERVED_HEADERS_PATTERN},
        }
        schema["additionalProperties"] = value_schema
        return schema


WebhookUrl = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_URL_CHARS,
        pattern=WEBHOOK_URL_PATTERN,
        description="Where deliveries are POSTed: an absolute http:// or https:// URL, host a "
        "DNS name, IPv4 or [IPv6] address, no user:password@ (put credentials in headers); "
        "other characters than printable ASCII percent-encoded. A host that is, or resolves "
        "only to, an address that is not public (loopback, private, link-local, ...) is "
        "refused (422) unless the server's ALLOWED_NETWORKS lists it; a name that does not "
        "resolve (yet) is taken.",
        examples=["https://example.com/webhooks/orders"],
    ),
    BeforeValidator(_no_credentials),
    AfterValidator(_http_url),
]
Description = Annotated[StorableText, Field(max_length=1000, description="Free text for people.")]
EventTypePattern = Annotated[
    StorableText,
    Field(
        min_length=1,
        max_length=255,
        json_schema_extra={"not": {"pattern": PATTERN_FORBIDDEN_REGEX}},
    ),
    AfterValidator(validate_pattern),
]
EventTypeFilter = Annotated[
    list[EventTypePattern],
    Field(
        max_length=MAX_EVENT_TYPES,
        description=f"Event types this webhook receives: {PATTERN_RULE}. Empty means all.",
        examples=[["order.created", "invoice.*"]],
    ),
    AfterValidator(_unique),
]
ExtraHeaders = Annotated[
    dict[
        Annotated[str, Field(min_length=1, max_length=128, pattern=HEADER_NAME_PATTERN)],
        Annotated[str, Field(max_length=MAX_HEADER_VALUE_CHARS, pattern=HEADER_VALUE_PATTERN)],
    ],
    _HeaderNamesSchema,
    Field(
        max_length=MAX_HEADERS,
        description="Extra request headers sent with every delivery (not webhook-* or "
        "hop-by-hop headers); names unique regardless of letter case. Credential headers ("
        + ", ".join(sorted(CREDENTIAL_HEADERS))
        + f") are shown masked in answers ({MASK}, after the scheme for Authorization: "
        f'"Bearer {MASK}"); in a PATCH, the masked form of the stored value keeps it.',
        examples=[{"X-Team": "billing"}],
    ),
    AfterValidator(_headers),
]
Secret = Annotated[
    str,
    Field(
        pattern=WHSEC_PATTERN,
        min_length=38,
        max_length=94,
        description="Standard Webhooks signing secret: whsec_ + base64 of 24-64 random bytes.",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    ),
    AfterValidator(validate_secret),
]


_PAYLOAD_FORMAT = (
    'What a delivery\'s body is: "envelope" (the default), the Standard Webhooks shape '
    '{"type": <event_type>, "timestamp": <event created_at>, "data": <payload>}, so a receiver '
    'subscribed to several event types can tell them apart; "raw", the event\'s payload alone. '
    "The same bytes on every attempt; the signature covers them."
)
_RATE_LIMIT = (
    "Most requests per second to this webhook across all workers (a shared token bucket, one "
    "second's worth of burst); null = no limit beyond WORKER_ENDPOINT_CONCURRENCY."
)
_PROBE_ENABLED = (
    "While disabled as failing, probe this webhook with a signed hookline.probe event on a "
    "growing interval and bring it back by itself after PROBE_SUCCESSES 2xx answers."
)
RateLimit = Annotated[float, Field(gt=0, le=10_000, allow_inf_nan=False)]

_TRACE_PROPAGATION = (
    "Send the W3C traceparent header with this webhook's deliveries while tracing is on "
    "(OTEL_EXPORTER_OTLP_ENDPOINT); null = the HOOKLINE_TRACE_PROPAGATION setting."
)


class WebhookIn(InputModel):
    """A new webhook endpoint."""

    url: WebhookUrl
    description: Description = ""
    event_types: EventTypeFilter = Field(default_factory=list)
    headers: ExtraHeaders = Field(default_factory=dict)
    secret: Secret | None = Field(None, description="Generated when absent or null.")
    retry_config: RetryConfigIn | None = Field(
        None, description="How failed deliveries are retried; absent or null = defaults."
    )
    trace_propagation: StrictBool | None = Field(None, description=_TRACE_PROPAGATION)
    payload_format: PayloadFormat = Field(PayloadFormat.ENVELOPE, description=_PAYLOAD_FORMAT)
    rate_limit_per_s: RateLimit | None = Field(None, description=_RATE_LIMIT)
    probe_enabled: StrictBool = Field(True, description=_PROBE_ENABLED)


def _no_default(schema: JsonDict) -> None:
    schema.pop("default", None)


def _omittable() -> Any:
    """Default of a PATCH field: absent means "unchanged". Only ``model_fields_set`` is read,
    so the placeholder never reaches a service; null itself is refused (wrong type)."""
    return Field(None, json_schema_extra=_no_default)


class WebhookPatch(InputModel):
    """The fields to change; absent fields stay as they are (null is not allowed, except for
    ``retry_config``, where it means the defaults, ``trace_propagation``, where it means the
    setting, and ``rate_limit_per_s``, where it means no limit)."""

    url: WebhookUrl = _omittable()
    description: Description = _omittable()
    event_types: EventTypeFilter = _omittable()
    headers: ExtraHeaders = _omittable()
    retry_config: RetryConfigIn | None = Field(
        None,
        json_schema_extra=_no_default,
        description="Replaces the retry config (validated like PUT .../retry-config; absent "
        "fields take their defaults); null goes back to the defaults, like DELETE "
        ".../retry-config.",
    )
    trace_propagation: StrictBool | None = Field(
        None, json_schema_extra=_no_default, description=_TRACE_PROPAGATION
    )
    payload_format: PayloadFormat = _omittable()
    rate_limit_per_s: RateLimit | None = Field(
        None,
        json_schema_extra=_no_default,
        description=_RATE_LIMIT + " In a PATCH, null removes the limit.",
    )
    probe_enabled: StrictBool = _omittable()

    def changes(self) -> dict[str, Any]:
        """The fields the request gave, by name, as validated (``retry_config`` a
        ``RetryConfig`` or None)."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class WebhookOut(OutputModel):
    """A webhook endpoint as the API shows it (never with its secret)."""

    id: str = Field(examples=["wh_01JH8X4T0Q3W8YV4ZK9D3M2N1P"])
    url: str
    description: str
    event_types: list[str]
    headers: dict[str, str] = Field(
        description="The extra request headers; credential headers masked (see WebhookIn)."
    )
    payload_format: PayloadFormat = Field(description=_PAYLOAD_FORMAT)
    rate_limit_per_s: float | None = Field(description=_RATE_LIMIT)
    status: EndpointStatus = Field(
        description="active; disabled (see disabled_reason); recovering: back after a disable, "
        "its parked deliveries being released through a slow start (new events queue behind "
        "them), then active."
    )
    parked: int = Field(
        description="Deliveries parked for this webhook: events that matched it while it was "
        "disabled (not gone) or recovering, waiting to be released."
    )
    disabled_reason: DisabledReason | None
    disabled_at: UtcDatetime | None
    probe_enabled: bool = Field(description=_PROBE_ENABLED)
    next_probe_at: UtcDatetime | None = Field(
        description="When the next automatic probe is due (disabled as failing); else null."
    )
    retry_config: RetryConfig = Field(description="The effective retry config.")
    trace_propagation: bool | None = Field(description=_TRACE_PROPAGATION)
    created_at: UtcDatetime
    updated_at: UtcDatetime

    @classmethod
    def from_endpoint(cls, endpoint: Endpoint, *, parked: int = 0) -> WebhookOut:
        return cls(
            id=endpoint.id,
            url=endpoint.url,
            description=endpoint.description,
            event_types=endpoint.event_types,
            headers=masked_headers(endpoint.headers),
            payload_format=_payload_format(endpoint.payload_format),
            rate_limit_per_s=endpoint.rate_limit_per_s,
            status=EndpointStatus(endpoint.status),
            parked=parked,
            disabled_reason=(
                DisabledReason(endpoint.disabled_reason) if endpoint.disabled_reason else None
            ),
            disabled_at=endpoint.disabled_at,
            probe_enabled=endpoint.probe_enabled,
            next_probe_at=(
                endpoint.probe_next_at
                if endpoint.disabled_reason == DisabledReason.FAILING and endpoint.probe_enabled
                else None
            ),
            retry_config=retry_config_of(endpoint).config,
            trace_propagation=endpoint.trace_propagation,
            created_at=endpoint.created_at,
            updated_at=endpoint.updated_at,
        )


def _payload_format(value: str) -> PayloadFormat:
    """The stored format; an unknown value (a hand edit) shows as what is sent: the envelope."""
    try:
        return PayloadFormat(value)
    except ValueError:
        return PayloadFormat.ENVELOPE


RECOVER_PATTERN: Final = (
    r"^(?:parked|none|since:\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?"
    r"(?:Z|z|[+-]\d{2}:\d{2}))$"
)


def _recover(value: str) -> str:
    if value.startswith("since:"):
        try:
            moment = datetime.fromisoformat(value.removeprefix("since:").replace("z", "Z"))
        except ValueError as exc:
            raise ValueError(f"since: needs an RFC 3339 time ({exc})") from exc
        if moment.tzinfo is None:
            raise ValueError("since: needs a time with an offset or Z")
    return value


class EnableIn(InputModel):
    """Options of re-enabling a webhook."""

    replay_cancelled: StrictBool = Field(
        False, description="Re-queue the deliveries that disabling this webhook cancelled."
    )
    recover: Annotated[str, AfterValidator(_recover)] = Field(
        "parked",
        pattern=RECOVER_PATTERN,
        max_length=64,
        description='What comes back: "parked" (the default): the deliveries parked while it '
        "was disabled are released oldest first through a slow start (status recovering, "
        'then active); "since:<RFC 3339>": those, plus its deliveries created since then that '
        'ended without success (failed or cancelled); "none": nothing, the parked deliveries '
        "become dead letters (reason discarded).",
        examples=["parked", "since:2026-12-01T00:00:00Z", "none"],
    )

    def recovery(self) -> Recover:
        """``recover`` as the service takes it."""
        if self.recover.startswith("since:"):
            since = datetime.fromisoformat(self.recover.removeprefix("since:").replace("z", "Z"))
            return Recover(mode="since", since=since.astimezone(UTC))
        return Recover(mode="none" if self.recover == "none" else "parked")


class DiscardedOut(OutputModel):
    """How many parked deliveries became dead letters."""

    discarded: int


class SecretOut(OutputModel):
    """The signing secret; while a rotation's grace period lasts, the old one signs too."""

    secret: str
    previous_secret_expires_at: UtcDatetime | None = Field(
        description="Until when the previous secret still signs; null when it no longer does."
    )


class SecretRotateIn(InputModel):
    """The new secret, or nothing to have one generated."""

    secret: Secret | None = None


class WebhookSendResult(OutputModel):
    """What one signed message sent to a webhook now came to (a test send, or a probe); it is
    recorded as an attempt of the webhook with this ``trigger``."""

    attempt_id: str = Field(examples=["att_01JH8X4T0Q3W8YV4ZK9D3M2N1P"])
    webhook_id: str = Field(examples=["wh_01JH8X4T0Q3W8YV4ZK9D3M2N1P"])
    message_id: str = Field(
        description="The webhook-id header sent: a msg_… id of its own (the message is no "
        "event, so receivers never take it for one they deduplicate).",
        examples=["msg_01JH8X4T0Q3W8YV4ZK9D3M2N1P"],
    )
    trigger: Literal["test", "probe"]
    status_code: int | None = Field(description="The webhook's answer; null when none arrived.")
    duration_ms: int
    error: str | None = Field(
        description="timeout, connect, tls, blocked_address, redirect, ...; null for an "
        "HTTP answer that needs no explanation.",
    )
    succeeded: bool = Field(description="The webhook answered 2xx.")
    started_at: UtcDatetime

    @classmethod
    def from_outcome(cls, webhook_id: str, outcome: EndpointSendOutcome) -> WebhookSendResult:
        return cls(
            attempt_id=outcome.attempt_id,
            webhook_id=webhook_id,
            message_id=outcome.message_id,
            trigger=outcome.trigger,
            status_code=outcome.status_code,
            duration_ms=outcome.duration_ms,
            error=outcome.error,
            succeeded=outcome.ok,
            started_at=outcome.started_at,
        )


class ProbeOut(OutputModel):
    """A probe's answer, and where the webhook stands after it."""

    attempt: WebhookSendResult
    successes: int = Field(description="2xx probes in a row so far (0 after a failed one).")
    successes_needed: int = Field(description="2xx probes in a row that bring it back.")
    status: EndpointStatus = Field(
        description="The webhook's status after this probe: disabled, or recovering/active "
        "when this probe was the last one needed."
    )
    next_probe_at: UtcDatetime | None = Field(
        description="When the next automatic probe is due; null when none is planned."
    )

    @classmethod
    def from_outcome(cls, webhook_id: str, outcome: ProbeOutcome, *, needed: int) -> ProbeOut:
        return cls(
            attempt=WebhookSendResult.from_outcome(webhook_id, outcome.send),
            successes=outcome.successes,
            successes_needed=needed,
            status=EndpointStatus(outcome.status),
            next_probe_at=outcome.next_probe_at,
        )
