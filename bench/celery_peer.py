"""The peer: what a Python team writes by hand to send webhooks with retries, on Celery 5.

One task POSTs the payload with ``requests``, signs it the Standard Webhooks way (as hookline
does), raises on a non-2xx answer and lets Celery retry it: ``autoretry_for=(Exception,)``,
exponential ``retry_backoff`` with jitter, capped, ``max_retries``. Redis is the broker (under
a private ``global_keyprefix``), results are off. The harness starts the worker as

    celery -A bench.celery_peer worker --pool prefork --concurrency 2 ...

with ``BENCH_CELERY_BROKER_URL`` and ``BENCH_CELERY_KEYPREFIX`` in its environment, and sends
tasks from its own process through ``make_app`` with the same two values.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from typing import Final

import requests
from celery import Celery

TASK_NAME: Final = "bench.deliver"
REQUEST_TIMEOUT_S: Final = 15.0

_session: requests.Session | None = None


class DeliveryFailed(Exception):
    """The receiver did not answer 2xx: Celery retries the task."""


def _http() -> requests.Session:
    """One pooled session per worker process (created after the pool forks)."""
    global _session
    if _session is None:
        _session = requests.Session()
    return _session


def deliver(url: str, webhook_id: str, body: str, secret: str) -> None:
    """POST ``body`` to ``url``, signed; raise unless the answer is 2xx."""
    timestamp = str(int(time.time()))
    signed = f"{webhook_id}.{timestamp}.{body}".encode()
    signature = base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest())
    response = _http().post(
        url,
        data=body.encode(),
        headers={
            "content-type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": "v1," + signature.decode(),
        },
        timeout=REQUEST_TIMEOUT_S,
        allow_redirects=False,
    )
    if not 200 <= response.status_code < 300:
        raise DeliveryFailed(f"{url} answered {response.status_code}")


def make_app(broker_url: str, keyprefix: str) -> Celery:
    app = Celery("bench_peer", broker=broker_url)
    app.conf.update(
        broker_transport_options={"global_keyprefix": keyprefix},
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        result_backend=None,
        worker_hijack_root_logger=False,
    )
    app.task(
        name=TASK_NAME,
        autoretry_for=(Exception,),
        retry_backoff=True,  # 1 s, 2 s, 4 s, ... before jitter
        retry_backoff_max=600,
        retry_jitter=True,
        max_retries=10,
    )(deliver)
    return app


app = make_app(
    os.environ.get("BENCH_CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
    os.environ.get("BENCH_CELERY_KEYPREFIX", "bench-celery:"),
)
