"""Request and response bodies of the HTTP API (``*In`` in, ``*Out`` out, ``*Patch`` for PATCH).

Bodies are validated here, so a handler gets typed values; every input model refuses unknown
fields. Responses are built from what the services return (ORM rows and service dataclasses).
"""

from hookline.api.schemas.common import ErrorOut, Page
from hookline.api.schemas.deliveries import (
    AttemptOut,
    DeliveryDetailOut,
    DeliveryOut,
    ReplayIn,
    ReplayOut,
)
from hookline.api.schemas.events import EventIn, EventOut, PublishedEventOut
from hookline.api.schemas.operations import HealthOut, ReadinessOut
from hookline.api.schemas.retry_config import RetryConfigIn, RetryConfigOut, RetryScheduleOut
from hookline.api.schemas.stats import WebhookStatsOut
from hookline.api.schemas.webhooks import (
    DiscardedOut,
    EnableIn,
    ProbeOut,
    SecretOut,
    SecretRotateIn,
    WebhookIn,
    WebhookOut,
    WebhookPatch,
    WebhookSendResult,
)

__all__ = [
    "AttemptOut",
    "DeliveryDetailOut",
    "DeliveryOut",
    "DiscardedOut",
    "EnableIn",
    "ErrorOut",
    "EventIn",
    "EventOut",
    "HealthOut",
    "Page",
    "ProbeOut",
    "PublishedEventOut",
    "ReadinessOut",
    "ReplayIn",
    "ReplayOut",
    "RetryConfigIn",
    "RetryConfigOut",
    "RetryScheduleOut",
    "SecretOut",
    "SecretRotateIn",
    "WebhookIn",
    "WebhookOut",
    "WebhookPatch",
    "WebhookSendResult",
    "WebhookStatsOut",
]
