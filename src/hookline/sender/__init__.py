"""The only code that talks to subscriber URLs.

Owns the outbound HTTP client (``Sender``: one pooled aiohttp session, timeouts, no redirects,
response read capped at 4 KiB) and the SSRF guard (``AddressGuard`` + ``GuardedResolver``:
resolve, refuse private/loopback/link-local/metadata addresses unless allow-listed, and connect to
exactly the vetted address). It neither signs nor classifies: the delivery service builds the
headers and turns a ``SendResult`` into an outcome.

May import: ``hookline.domain`` (``AttemptError``), ``hookline.clock``, ``hookline.errors``.
"""

from hookline.sender.address_guard import AddressGuard, BlockedAddress
from hookline.sender.client import (
    RESPONSE_BODY_LIMIT_BYTES,
    OutboundRequest,
    Sender,
    SendResult,
    describe_failure,
)
from hookline.sender.resolver import GuardedResolver

__all__ = [
    "RESPONSE_BODY_LIMIT_BYTES",
    "AddressGuard",
    "BlockedAddress",
    "GuardedResolver",
    "OutboundRequest",
    "SendResult",
    "Sender",
    "describe_failure",
]
