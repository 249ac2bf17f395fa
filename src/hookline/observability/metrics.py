"""Prometheus metrics, one registry per runtime (no global state, so tests build many).

Names follow the user's task list (``webhook_delivery_total``, ``webhook_retry_total``) and
Prometheus conventions (``_total`` counters, ``_seconds`` histograms). Labels are low-cardinality
enums, except ``endpoint_id`` on the failure counter, which is bounded by the number of endpoints
and is what the dashboard's "top failing endpoints" panel needs, and on the rate-limited counter
(bounded by the endpoints that have a ``rate_limit_per_s``: which one is held back is the point).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Attempt durations: loopback answers in ~1 ms, slow subscribers take the whole 15 s timeout.
_DURATION_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30)
# Retry delays: from the 1 s minimum through the 2 h default cap and the 10 h window.
_DELAY_BUCKETS_S = (1, 10, 60, 180, 600, 1800, 3600, 7200, 14400, 36000)
# Attempts a delivery took: the default policy allows 1 + 5, a custom one up to 1 + 50.
_ATTEMPT_BUCKETS = (1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 51)


class Metrics:
    """Every metric hookline exports, registered on its own ``registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.delivery_total = Counter(
            "webhook_delivery",
            "Delivery attempts by outcome (delivered, retryable, permanent, gone).",
            ["outcome"],
            registry=r,
        )
        self.retry_total = Counter(
            "webhook_retry",
            "Retries scheduled, by what caused them (status class or network error).",
            ["reason"],
            registry=r,
        )
        self.dead_letter_total = Counter(
            "webhook_dead_letter",
            "Deliveries that ended failed (dead letters), by why.",
            ["reason"],
            registry=r,
        )
        self.endpoint_failure_total = Counter(
            "webhook_endpoint_failure",
            "Failed attempts per endpoint.",
            ["endpoint_id"],
            registry=r,
        )
        self.rate_limited_total = Counter(
            "webhook_rate_limited",
            "Deliveries put back for later because their endpoint's rate_limit_per_s had no "
            "token left for them, per endpoint.",
            ["endpoint_id"],
            registry=r,
        )
        self.endpoint_disabled_total = Counter(
            "webhook_endpoint_disabled",
            "Endpoints disabled automatically or by hand, by reason.",
            ["reason"],
            registry=r,
        )
        self.endpoint_transitions_total = Counter(
            "webhook_endpoint_transitions",
            "Endpoint lifecycle transitions (to disabled, recovering or active), by trigger "
            "(automatic or manual).",
            ["to", "trigger"],
            registry=r,
        )
        self.probes_total = Counter(
            "webhook_endpoint_probes",
            "Probes of disabled endpoints, by result (ok: a 2xx; failed: anything else).",
            ["result"],
            registry=r,
        )
        self.parked_released_total = Counter(
            "webhook_parked_released",
            "Parked deliveries released to the queue by a recovering endpoint's slow start.",
            registry=r,
        )
        self.events_published_total = Counter(
            "webhook_events_published", "Events accepted by POST /events.", registry=r
        )
        self.backpressure_total = Counter(
            "webhook_backpressure_rejections",
            "Publishes refused because the queue was over RETRY_QUEUE_MAX_SIZE.",
            registry=r,
        )
        self.attempt_duration_seconds = Histogram(
            "webhook_delivery_duration_seconds",
            "Wall time of one delivery attempt (connect to first 4 KiB of the response).",
            buckets=_DURATION_BUCKETS_S,
            registry=r,
        )
        self.retry_delay_seconds = Histogram(
            "webhook_retry_delay_seconds",
            "Delay chosen before the next attempt.",
            buckets=_DELAY_BUCKETS_S,
            registry=r,
        )
        self.attempts_per_delivery = Histogram(
            "webhook_delivery_attempts",
            "Attempts a delivery took, observed when it ends (succeeded or failed).",
            ["outcome"],
            buckets=_ATTEMPT_BUCKETS,
            registry=r,
        )
        self.retry_after_honoured_total = Counter(
            "webhook_retry_after_honoured",
            "Retries scheduled no sooner than the subscriber's Retry-After asked (capped at the "
            "config's max_delay and window), for configs that respect it.",
            registry=r,
        )
        # Gauges of stored state: refreshed from the database at scrape time, at most once per
        # a few seconds (``service.stats.StatsRefresher``), so a scrape storm is one query.
        self.queue_depth = Gauge(
            "webhook_queue_depth", "Deliveries due or in flight in the queue.", registry=r
        )
        self.backlog_due = Gauge(
            "webhook_backlog_due",
            "Deliveries whose attempt is due now and that no worker has claimed yet.",
            registry=r,
        )
        self.backlog_oldest_age_seconds = Gauge(
            "webhook_backlog_oldest_age_seconds",
            "How long the oldest due, unclaimed delivery has been waiting (0 when none).",
            registry=r,
        )
        self.dead_letters = Gauge(
            "webhook_dead_letters",
            "Dead letters stored now (deliveries that ended failed and were not replayed).",
            registry=r,
        )
        self.endpoints_disabled = Gauge(
            "webhook_endpoints_disabled",
            "Endpoints disabled now, by reason (failing, not_found, gone, manual).",
            ["reason"],
            registry=r,
        )
        self.parked_deliveries = Gauge(
            "webhook_parked_deliveries",
            "Deliveries parked now (their endpoint is disabled, not gone, or recovering).",
            registry=r,
        )
        self.endpoints_recovering = Gauge(
            "webhook_endpoints_recovering",
            "Endpoints releasing their parked deliveries through the slow start now.",
            registry=r,
        )
        self.recovered_total = Counter(
            "webhook_sweeper_recovered",
            "Deliveries the sweeper put back on the queue, by why.",
            ["reason"],
            registry=r,
        )
        # Every known label value is exported from the start, at 0: Prometheus sees no increase
        # in a series that first appears at 1, so the first dead letter or disable of a process
        # would never alert, and a panel of a counter not yet moved would be empty.
        for outcome in ("delivered", "retryable", "permanent", "gone"):
            self.delivery_total.labels(outcome)
        for reason in ("5xx", "408", "429", "timeout", "connect", "tls", "invalid_response"):
            self.retry_total.labels(reason)
        for reason in (
            "exhausted",
            "permanent",
            "endpoint_gone",
            "unpreparable",
            "unrecordable",
            "parked_overflow",
            "discarded",
        ):
            self.dead_letter_total.labels(reason)
        for to in ("disabled", "recovering", "active"):
            for trigger in ("automatic", "manual"):
                self.endpoint_transitions_total.labels(to, trigger)
        for result in ("ok", "failed"):
            self.probes_total.labels(result)
        for reason in ("failing", "not_found", "gone", "manual"):  # domain.states.DisabledReason
            self.endpoint_disabled_total.labels(reason)
        for reason in ("lease_expired", "missing_from_queue"):
            self.recovered_total.labels(reason)
        for outcome in ("succeeded", "failed"):
            self.attempts_per_delivery.labels(outcome)
