"""The 24-hour figures of one webhook."""

from __future__ import annotations

from pydantic import Field

from hookline.api.schemas.common import OutputModel, UtcDatetime
from hookline.domain.states import DeliveryState
from hookline.service.endpoints import EndpointStats


class DeliveryStateCounts(OutputModel):
    """Deliveries per state."""

    pending: int
    delivering: int
    succeeded: int
    retrying: int
    failed: int
    cancelled: int


class AttemptCountsOut(OutputModel):
    total: int
    succeeded: int = Field(description="Attempts answered with a 2xx.")
    failed: int


class WebhookStatsOut(OutputModel):
    """A webhook's last 24 hours: deliveries created then, by state, and attempts made then."""

    webhook_id: str
    window_s: float
    since: UtcDatetime
    until: UtcDatetime
    deliveries: DeliveryStateCounts
    attempts: AttemptCountsOut
    success_rate: float | None = Field(
        description="Succeeded attempts / attempts (0-1); null when there were none."
    )

    @classmethod
    def from_stats(cls, stats: EndpointStats) -> WebhookStatsOut:
        return cls(
            webhook_id=stats.endpoint_id,
            window_s=stats.window_s,
            since=stats.since,
            until=stats.until,
            deliveries=DeliveryStateCounts(
                **{state.value: stats.deliveries.get(state.value, 0) for state in DeliveryState}
            ),
            attempts=AttemptCountsOut(
                total=stats.attempts_total,
                succeeded=stats.attempts_succeeded,
                failed=stats.attempts_failed,
            ),
            success_rate=stats.success_rate,
        )
