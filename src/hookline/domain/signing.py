"""Standard Webhooks signatures (https://www.standardwebhooks.com): what a subscriber verifies.

A secret is ``whsec_`` + base64 of 24-64 random bytes. The signature of one attempt is
``v1,`` + base64(HMAC-SHA256(key, f"{msg_id}.{timestamp}." + body)); during a secret rotation
the ``webhook-signature`` header carries one signature per secret, separated by spaces, and a
receiver accepts the message when any of them matches.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import secrets as _secrets
from collections.abc import Callable, Sequence
from typing import Final

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - the public prefix, not a secret
SECRET_BYTES: Final = 32
"""Length of a generated key; 256 bits like the HMAC-SHA256 output."""
MIN_KEY_BYTES: Final = 24
MAX_KEY_BYTES: Final = 64
SIGNATURE_VERSION: Final = "v1"
DEFAULT_TOLERANCE_S: Final = 300
"""How far a ``webhook-timestamp`` may be from the receiver's clock (the spec's 5 minutes)."""


def generate_secret(rng_bytes: Callable[[int], bytes] = _secrets.token_bytes) -> str:
    """A new signing secret, ``whsec_`` + base64 of 32 bytes from ``rng_bytes``."""
    return SECRET_PREFIX + base64.b64encode(rng_bytes(SECRET_BYTES)).decode("ascii")


@functools.lru_cache(maxsize=1024)
def decode_secret(secret: str) -> bytes:
    """The HMAC key inside ``secret`` (with or without ``whsec_``).

    ``ValueError`` unless the rest is strict, padded base64 of 24-64 bytes. Decoded keys are
    remembered (a bounded number): every attempt signs with its endpoint's secret again.
    """
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise ValueError("secret is not valid base64 after the whsec_ prefix") from exc
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError(
            f"secret must hold {MIN_KEY_BYTES}-{MAX_KEY_BYTES} bytes, it holds {len(key)}"
        )
    return key


def validate_secret(secret: str) -> str:
    """``secret`` unchanged if it is a usable ``whsec_`` secret; else ``ValueError`` (pydantic)."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"secret must start with {SECRET_PREFIX!r}")
    decode_secret(secret)
    return secret


def _signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    return f"{msg_id}.{timestamp}.".encode() + body


def sign(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 signature>`` of one message with one secret."""
    digest = hmac.new(
        decode_secret(secret), _signed_content(msg_id, timestamp, body), hashlib.sha256
    ).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signature_header(*, secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one signature per secret (rotation), space-separated."""
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    return " ".join(
        sign(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body) for secret in secrets
    )


def signed_headers(
    *, secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` for one attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(
            secrets=secrets, msg_id=msg_id, timestamp=timestamp, body=body
        ),
    }


def verify(
    *,
    secret: str,
    msg_id: str,
    timestamp: int,
    body: bytes,
    signature_header: str,
    now_s: float,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> bool:
    """Whether any ``v1`` signature in ``signature_header`` is ``secret``'s for this message.

    ``False`` too when ``timestamp`` is more than ``tolerance_s`` away from ``now_s`` (replay
    protection). Signatures are compared in constant time.
    """
    if abs(now_s - timestamp) > tolerance_s:
        return False
    expected = sign(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body).encode("ascii")
    matched = False
    for candidate in signature_header.split():
        # Check every candidate, so the time taken does not tell which one matched.
        matched |= hmac.compare_digest(expected, candidate.encode("utf-8"))
    return matched
