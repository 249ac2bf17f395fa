"""``AlertSink``: where the services report operator alerts of committed facts (a dead letter,
an endpoint disabled or back). ``observability.alerts.AlertDispatcher`` is the one in use; the
services only see this protocol, so they never wait on a notifier."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class AlertSink(Protocol):
    """Where operator alerts of committed outcomes go (``observability.alerts``)."""

    def delivery_failed(
        self,
        *,
        delivery_id: str,
        endpoint_id: str,
        event_id: str | None,
        reason: str,
        error: str | None,
        attempt: int | None = None,
        status_code: int | None = None,
    ) -> None: ...

    def endpoint_disabled(
        self,
        *,
        endpoint_id: str,
        reason: str,
        trigger: str,
        cancelled_deliveries: int | None = None,
        parked_deliveries: int | None = None,
        fail_since: datetime | None = None,
    ) -> None: ...

    def endpoint_recovered(
        self,
        *,
        endpoint_id: str,
        status: str,
        trigger: str,
        fail_since: datetime | None = None,
        parked_deliveries: int | None = None,
    ) -> None: ...
