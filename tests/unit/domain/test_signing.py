"""Standard Webhooks signing: the spec's test vector, rotation, and the reference verifier."""

from __future__ import annotations

import base64
import json
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from hookline.domain.signing import (
    SECRET_PREFIX,
    decode_secret,
    generate_secret,
    sign,
    signature_header,
    signed_headers,
    validate_secret,
    verify,
)

# The example of the Standard Webhooks specification (and svix's documentation).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

OLD_SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
NEW_SECRET = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
BODY = json.dumps({"type": "order.paid", "customer": "Zoë", "amount": 4200}).encode()


def _secret_of(length: int) -> str:
    return SECRET_PREFIX + base64.b64encode(b"k" * length).decode()


def test_the_specification_example() -> None:
    signature = sign(
        secret=SPEC_SECRET, msg_id=SPEC_MSG_ID, timestamp=SPEC_TIMESTAMP, body=SPEC_BODY
    )
    assert signature == SPEC_SIGNATURE


def test_generate_secret_uses_32_bytes_of_the_given_randomness() -> None:
    requested: list[int] = []

    def fake_bytes(n: int) -> bytes:
        requested.append(n)
        return b"\x01" * n

    assert generate_secret(fake_bytes) == "whsec_" + base64.b64encode(b"\x01" * 32).decode()
    assert requested == [32]


def test_generated_secrets_are_valid_and_distinct() -> None:
    first, second = generate_secret(), generate_secret()
    assert first != second
    assert validate_secret(first) == first
    assert len(decode_secret(first)) == 32


def test_decode_secret_with_or_without_prefix() -> None:
    key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert decode_secret(SPEC_SECRET) == key
    assert decode_secret(SPEC_SECRET.removeprefix("whsec_")) == key


@pytest.mark.parametrize("length", [24, 32, 64])
def test_key_lengths_24_to_64_bytes_are_accepted(length: int) -> None:
    assert len(decode_secret(_secret_of(length))) == length


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        (_secret_of(23), "24-64 bytes, it holds 23"),
        (_secret_of(65), "24-64 bytes, it holds 65"),
        ("whsec_", "it holds 0"),
        ("whsec_not base64!", "not valid base64"),
        ("whsec_" + base64.b64encode(b"k" * 32).decode().rstrip("="), "not valid base64"),
        ("whsec_é" + "A" * 43, "not valid base64"),
    ],
)
def test_bad_secrets_are_refused(secret: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_secret(secret)
    with pytest.raises(ValueError, match=message):
        validate_secret(secret)


def test_validate_secret_wants_the_prefix() -> None:
    with pytest.raises(ValueError, match="must start with 'whsec_'"):
        validate_secret(SPEC_SECRET.removeprefix("whsec_"))
    assert validate_secret(SPEC_SECRET) == SPEC_SECRET


def test_signature_header_has_one_signature_per_secret() -> None:
    header = signature_header(
        secrets=[OLD_SECRET, NEW_SECRET], msg_id="evt_1", timestamp=10, body=b"{}"
    )
    old = sign(secret=OLD_SECRET, msg_id="evt_1", timestamp=10, body=b"{}")
    new = sign(secret=NEW_SECRET, msg_id="evt_1", timestamp=10, body=b"{}")
    assert header == f"{old} {new}"
    assert old != new
    with pytest.raises(ValueError, match="at least one secret"):
        signature_header(secrets=[], msg_id="evt_1", timestamp=10, body=b"{}")


def test_signed_headers() -> None:
    headers = signed_headers(
        secrets=[SPEC_SECRET], msg_id=SPEC_MSG_ID, timestamp=SPEC_TIMESTAMP, body=SPEC_BODY
    )
    assert headers == {
        "webhook-id": SPEC_MSG_ID,
        "webhook-timestamp": "1614265330",
        "webhook-signature": SPEC_SIGNATURE,
    }


def _verify(header: str, *, secret: str = NEW_SECRET, body: bytes = BODY, now_s: float = 1000.0,
            timestamp: int = 1000, tolerance_s: float = 300) -> bool:  # fmt: skip
    return verify(
        secret=secret,
        msg_id="evt_1",
        timestamp=timestamp,
        body=body,
        signature_header=header,
        now_s=now_s,
        tolerance_s=tolerance_s,
    )


def test_verify_accepts_any_matching_signature() -> None:
    header = signature_header(
        secrets=[OLD_SECRET, NEW_SECRET], msg_id="evt_1", timestamp=1000, body=BODY
    )
    assert _verify(header, secret=NEW_SECRET)
    assert _verify(header, secret=OLD_SECRET)
    assert not _verify(header, secret=generate_secret())


def test_verify_refuses_tampering_and_foreign_versions() -> None:
    header = signature_header(secrets=[NEW_SECRET], msg_id="evt_1", timestamp=1000, body=BODY)
    assert not _verify(header, body=BODY + b" ")
    assert not _verify(header.replace("v1,", "v2,"))
    assert not _verify("")
    assert not _verify("v1,garbage v1,ÿ")


def test_verify_refuses_stale_and_future_timestamps() -> None:
    header = signature_header(secrets=[NEW_SECRET], msg_id="evt_1", timestamp=1000, body=BODY)
    assert _verify(header, now_s=1300)
    assert _verify(header, now_s=700)
    assert not _verify(header, now_s=1300.5)
    assert not _verify(header, now_s=699)
    assert _verify(header, now_s=5000, tolerance_s=4000)


@pytest.mark.parametrize("secrets_in_header", [[NEW_SECRET], [OLD_SECRET, NEW_SECRET]])
def test_the_reference_library_verifies_our_headers(secrets_in_header: list[str]) -> None:
    # standardwebhooks checks the timestamp against the real clock; this is not a time-logic test.
    timestamp = int(time.time())
    headers = signed_headers(
        secrets=secrets_in_header, msg_id="evt_01JREF", timestamp=timestamp, body=BODY
    )
    for secret in secrets_in_header:
        assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(generate_secret()).verify(BODY, headers)
    tampered = {**headers, "webhook-id": "evt_other"}
    with pytest.raises(WebhookVerificationError):
        Webhook(secrets_in_header[0]).verify(BODY, tampered)
