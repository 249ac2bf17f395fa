"""``EndpointService``: the life of a webhook endpoint, one transaction per use case.

Owns creating, changing and (soft) deleting endpoints, their retry config, their signing secret
and its rotation, disabling and re-enabling them by hand, and their 24-hour figures. Deleting or
disabling an endpoint cancels its queued (``pending``/``retrying``) deliveries in the same
transaction; re-enabling can put the ones the disable cancelled back in the queue. A deleted
endpoint is ``NotFound`` everywhere, like one that never existed.

A URL is vetted (``DestinationVetter``) before it is stored, on create and on change. Credential
headers (``CREDENTIAL_HEADERS``) are stored as given and shown only masked (``masked_headers``);
a change that sends back the masked form of the stored value keeps the stored value.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal, TypedDict

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookline import ids
from hookline.clock import Clock
from hookline.domain.retry_config import DEFAULT_RETRY_CONFIG, RetryConfig
from hookline.domain.schedule import RetrySchedule, plan_schedule
from hookline.domain.signing import generate_secret, validate_secret
from hookline.domain.states import DeliveryState, DisabledReason, EndpointStatus
from hookline.errors import Conflict, NotFound
from hookline.observability.logging import get_logger
from hookline.observability.metrics import Metrics
from hookline.queue.base import DelayedQueue
from hookline.service.alert_sink import AlertSink
from hookline.service.delivery import UnreadableRetryConfig, effective_retry_config
from hookline.service.destinations import DestinationVetter
from hookline.service.pagination import Page, decode_cursor, page_of
from hookline.service.parking import (
    DISCARDED,
    LifecyclePolicy,
    TransitionReporter,
    disable_in,
    recover_in,
)
from hookline.settings import Settings
from hookline.storage.models import Endpoint
from hookline.storage.repositories import deliveries as deliveries_repo
from hookline.storage.repositories import endpoints as repo
from hookline.storage.repositories import lifecycle as lifecycle_repo

log = get_logger("hookline.endpoints")

STATS_WINDOW_S: Final = 24 * 3600.0
"""The window ``stats`` reports on: the last 24 hours."""
ENDPOINT_DELETED: Final = "endpoint_deleted"
"""``last_error`` of deliveries cancelled because their endpoint was deleted."""

CREDENTIAL_HEADERS: Final = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key", "x-auth-token"}
)
"""Headers (any letter case) whose values are credentials: stored, sent, never shown whole."""
MASK: Final = "********"
"""What replaces a credential header's value when it is shown."""
_SCHEMED_HEADERS: Final = frozenset({"authorization", "proxy-authorization"})
_AUTH_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,31}")
"""The first word of an ``Authorization`` value (``Bearer``, ``Basic``, ``AWS4-HMAC-SHA256``)
names the scheme, not the secret: it stays visible."""

RetryConfigSource = Literal["default", "custom", "invalid"]


class EndpointChanges(TypedDict, total=False):
    """The fields a PATCH may change; absent keys stay as they are (``retry_config`` None:
    back to the defaults)."""

    url: str
    description: str
    event_types: list[str]
    headers: dict[str, str]
    retry_config: RetryConfig | None
    trace_propagation: bool | None
    payload_format: str
    rate_limit_per_s: float | None
    probe_enabled: bool


RecoverMode = Literal["parked", "since", "none"]


@dataclass(frozen=True, slots=True)
class Recover:
    """What enabling brings back: the parked deliveries (``parked``, the default), those plus
    the deliveries created since ``since`` that ended without success (``since``), or nothing
    (``none``: the parked ones become dead letters, reason ``discarded``)."""

    mode: RecoverMode = "parked"
    since: datetime | None = None


class InvalidWebhookField(ValueError):
    """A field the request schema took but the service refuses: a ``422`` on ``loc``.

    ``kind`` is the machine-readable reason; ``value`` the offending input (never a secret).
    """

    def __init__(self, loc: tuple[str, ...], message: str, *, kind: str, value: Any) -> None:
        super().__init__(message)
        self.loc = loc
        self.kind = kind
        self.value = value


def masked_value(name: str, value: str) -> str:
    """Header ``name``'s ``value`` as it is shown: a credential header's value is ``MASK``,
    after the scheme for ``Authorization`` (``Bearer ********``); others are unchanged."""
    lowered = name.lower()
    if lowered not in CREDENTIAL_HEADERS or not value:
        return value
    scheme, space, credentials = value.partition(" ")
    keeps_scheme = lowered in _SCHEMED_HEADERS and space and credentials.strip()
    if keeps_scheme and _AUTH_SCHEME.fullmatch(scheme):
        return f"{scheme} {MASK}"
    return MASK


def masked_headers(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` as they are shown: every credential value masked (``masked_value``)."""
    return {name: masked_value(name, value) for name, value in headers.items()}


def _unmasked(given: dict[str, str], stored: dict[str, str]) -> dict[str, str]:
    """``given`` with each credential header that is the masked form of the stored value (as a
    GET shows it) replaced by the stored value; a masked form that is not is refused."""
    stored_by_name = {name.lower(): value for name, value in stored.items()}
    result: dict[str, str] = {}
    for name, value in given.items():
        if name.lower() in CREDENTIAL_HEADERS and MASK in value:
            kept = stored_by_name.get(name.lower())
            if kept is None or masked_value(name, kept) != value:
                raise InvalidWebhookField(
                    ("headers", name),
                    f"{MASK} is how hookline shows a stored credential, not a credential: give "
                    "the real value, or send back the value GET shows to keep the stored one",
                    kind="masked_credential",
                    value=value,
                )
            value = kept
        result[name] = value
    return result


@dataclass(frozen=True, slots=True)
class EffectiveRetryConfig:
    """The config the engine uses for an endpoint, and whether it is its own or the defaults.

    ``invalid``: the stored config cannot be read; ``config`` is then the defaults (what a reset
    would give), ``problem`` says why, and the worker dead-letters the endpoint's deliveries.
    """

    config: RetryConfig
    source: RetryConfigSource
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class EndpointSecret:
    """The signing secret, and until when the previous one still signs (None: it no longer does)."""

    secret: str
    previous_secret_expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class EndpointStats:
    """One endpoint's last ``window_s`` seconds: deliveries created then, by state, and attempts.

    ``success_rate`` is succeeded attempts over all attempts (None when there were none).
    """

    endpoint_id: str
    window_s: float
    since: datetime
    until: datetime
    deliveries: dict[str, int]
    attempts_total: int
    attempts_succeeded: int

    @property
    def attempts_failed(self) -> int:
        return self.attempts_total - self.attempts_succeeded

    @property
    def success_rate(self) -> float | None:
        if self.attempts_total == 0:
            return None
        return self.attempts_succeeded / self.attempts_total


@dataclass(frozen=True, slots=True)
class RecentAttempts:
    """One endpoint's attempts of the last ``window_s`` seconds, counted as ``EndpointStats``
    counts them: all of them, and those answered with a 2xx."""

    endpoint_id: str
    window_s: float
    total: int
    succeeded: int

    @property
    def failed(self) -> int:
        return self.total - self.succeeded

    @property
    def failure_rate(self) -> float | None:
        """Failed attempts over all attempts; None when there were none."""
        return None if self.total == 0 else self.failed / self.total


@dataclass(frozen=True, slots=True)
class EnableOutcome:
    """What enabling did: the endpoint, the deliveries it put back in the queue, and how many
    wait parked for the slow start (or were discarded, for ``recover: none``)."""

    endpoint: Endpoint
    replayed_delivery_ids: tuple[str, ...]
    parked: int = 0
    discarded: int = 0


def retry_config_of(endpoint: Endpoint) -> EffectiveRetryConfig:
    """The endpoint's effective retry config with its source; never raises for a stored
    config that cannot be read (one bad row must not break the reads of the others)."""
    source: RetryConfigSource = "default" if endpoint.retry_config is None else "custom"
    try:
        return EffectiveRetryConfig(config=effective_retry_config(endpoint), source=source)
    except UnreadableRetryConfig as exc:
        return EffectiveRetryConfig(config=DEFAULT_RETRY_CONFIG, source="invalid", problem=str(exc))


def _endpoint_id(row: Endpoint) -> str:
    return row.id


class EndpointService:
    """Endpoint use cases over the database (and the queue, for re-queued deliveries)."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        queue: DelayedQueue,
        clock: Clock,
        settings: Settings,
        destinations: DestinationVetter | None = None,
        metrics: Metrics | None = None,
        alerts: AlertSink | None = None,
        lifecycle: LifecyclePolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """``destinations`` vets URLs before they are stored; without one (a test of something
        else) URLs are stored unvetted, and only the sender vets them, on every attempt.
        ``metrics`` and ``alerts`` hear of disables and enables by hand."""
        self._lifecycle = lifecycle or LifecyclePolicy()
        self._rng = rng or random.Random()
        self._transitions = TransitionReporter(metrics=metrics, alerts=alerts)
        self._metrics = metrics
        self._alerts = alerts
        self._sessions = sessions
        self._queue = queue
        self._clock = clock
        self._settings = settings
        self._destinations = destinations

    async def create(
        self,
        *,
        url: str,
        description: str = "",
        event_types: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
        secret: str | None = None,
        retry_config: RetryConfig | None = None,
        trace_propagation: bool | None = None,
        payload_format: str = "envelope",
        rate_limit_per_s: float | None = None,
        probe_enabled: bool = True,
    ) -> Endpoint:
        """A new active endpoint; a secret is generated when none is given (``ValueError`` for
        a malformed one). ``retry_config`` None means the defaults. ``InvalidWebhookField``
        for a URL deliveries could not go to, or a masked credential header."""
        await self._vet_url(url)
        given_headers = _unmasked(dict(headers or {}), stored={})
        now = self._clock.now()
        endpoint = Endpoint(
            id=ids.new_id(ids.ENDPOINT, at=now),
            url=url,
            description=description,
            event_types=list(event_types),
            headers=given_headers,
            secret=validate_secret(secret) if secret is not None else generate_secret(),
            previous_secret=None,
            previous_secret_expires_at=None,
            status=EndpointStatus.ACTIVE.value,
            disabled_reason=None,
            disabled_at=None,
            retry_config=_stored(retry_config),
            trace_propagation=trace_propagation,
            payload_format=payload_format,
            rate_limit_per_s=rate_limit_per_s,
            probe_enabled=probe_enabled,
            probe_next_at=None,
            lifecycle=None,
            failing_since=None,
            last_success_at=None,
            created_at=now,
            updated_at=now,
            deleted_at=None,
        )
        async with self._sessions.begin() as session:
            repo.add_endpoint(session, endpoint=endpoint)
        log.info("endpoint.created", endpoint_id=endpoint.id)
        return endpoint

    async def list_endpoints(
        self, *, status: str | None = None, limit: int, cursor: str | None = None
    ) -> Page[Endpoint]:
        """Live endpoints, newest first; ``InvalidCursor`` (a ``ValueError``) for a bad cursor."""
        before_id = decode_cursor(cursor, prefix=ids.ENDPOINT)
        async with self._sessions() as session:
            rows = await repo.list_endpoints(
                session, status=status, before_id=before_id, limit=limit + 1
            )
        return page_of(rows, limit=limit, id_of=_endpoint_id)

    async def get(self, *, endpoint_id: str) -> Endpoint:
        """The endpoint; ``NotFound`` if unknown or deleted."""
        async with self._sessions() as session:
            return await _load(session, endpoint_id)

    async def update(self, *, endpoint_id: str, changes: EndpointChanges) -> Endpoint:
        """Apply a PATCH: only the keys present in ``changes`` change, all or none of them
        (``InvalidWebhookField`` as for ``create``)."""
        if "url" in changes:
            await self._vet_url(changes["url"])  # before the row lock: DNS may take a while
        async with self._sessions.begin() as session:
            endpoint = await _load(session, endpoint_id, for_update=True)
            if "url" in changes:
                endpoint.url = changes["url"]
            if "description" in changes:
                endpoint.description = changes["description"]
            if "event_types" in changes:
                endpoint.event_types = list(changes["event_types"])
            if "headers" in changes:
                endpoint.headers = _unmasked(dict(changes["headers"]), stored=endpoint.headers)
            if "retry_config" in changes:
                endpoint.retry_config = _stored(changes["retry_config"])
            if "trace_propagation" in changes:
                endpoint.trace_propagation = changes["trace_propagation"]
            if "payload_format" in changes:
                endpoint.payload_format = changes["payload_format"]
            if "rate_limit_per_s" in changes:
                endpoint.rate_limit_per_s = changes["rate_limit_per_s"]
            if "probe_enabled" in changes:
                endpoint.probe_enabled = changes["probe_enabled"]
            endpoint.updated_at = self._clock.now()
        return endpoint

    async def delete(self, *, endpoint_id: str) -> None:
        """Soft-delete the endpoint and cancel its queued deliveries."""
        now = self._clock.now()
        async with self._sessions.begin() as session:
            endpoint = await _load(session, endpoint_id, for_update=True)
            endpoint.deleted_at = now
            endpoint.updated_at = now
            cancelled = await deliveries_repo.cancel_deliveries(
                session,
                now=now,
                reason=ENDPOINT_DELETED,
                endpoint_id=endpoint_id,
                states=(*deliveries_repo.QUEUED_STATES, DeliveryState.PARKED.value),
            )
        log.info("endpoint.deleted", endpoint_id=endpoint_id, cancelled_deliveries=len(cancelled))

    async def get_retry_config(self, *, endpoint_id: str) -> EffectiveRetryConfig:
        """The effective retry config and whether it is the endpoint's own."""
        return retry_config_of(await self.get(endpoint_id=endpoint_id))

    async def set_retry_config(
        self, *, endpoint_id: str, config: RetryConfig | None
    ) -> EffectiveRetryConfig:
        """Replace the endpoint's retry config; None goes back to the defaults.

        Deliveries already waiting keep their due time; the new config decides from their next
        attempt on.
        """
        async with self._sessions.begin() as session:
            endpoint = await _load(session, endpoint_id, for_update=True)
            endpoint.retry_config = _stored(config)
            endpoint.updated_at = self._clock.now()
        return retry_config_of(endpoint)

    async def get_retry_schedule(self, *, endpoint_id: str) -> RetrySchedule:
        """The planned retry timeline of the endpoint's effective config."""
        effective = await self.get_retry_config(endpoint_id=endpoint_id)
        return plan_schedule(effective.config)

    async def disable(
        self, *, endpoint_id: str, reason: DisabledReason = DisabledReason.MANUAL
    ) -> Endpoint:
        """Disable the endpoint; its queued deliveries are parked (for ``gone``: cancelled,
        ``last_error`` ``endpoint_disabled``), and so are the events that match it from now on.
        An endpoint already disabled is returned unchanged."""
        now = self._clock.now()
        async with self._sessions.begin() as session:
            endpoint = await _load(session, endpoint_id, for_update=True)
            if endpoint.status == EndpointStatus.DISABLED:
                return endpoint
            transition = await disable_in(
                session,
                endpoint_id=endpoint_id,
                reason=DisabledReason(reason),
                trigger="manual",
                now=now,
                policy=self._lifecycle,
                rng=self._rng,
                from_statuses=(EndpointStatus.ACTIVE.value, EndpointStatus.RECOVERING.value),
                fail_since=endpoint.failing_since,
            )
        if transition is not None:
            await self._forget_parked(transition.parked)
            self._transitions.report(transition)
        return endpoint

    async def enable(
        self,
        *,
        endpoint_id: str,
        replay_cancelled: bool = False,
        recover: Recover | None = None,
    ) -> Endpoint:
        """``enable_with_outcome``'s endpoint."""
        outcome = await self.enable_with_outcome(
            endpoint_id=endpoint_id, replay_cancelled=replay_cancelled, recover=recover
        )
        return outcome.endpoint

    async def enable_with_outcome(
        self,
        *,
        endpoint_id: str,
        replay_cancelled: bool = False,
        recover: Recover | None = None,
    ) -> EnableOutcome:
        """Bring a disabled endpoint back and clear its failure record.

        ``recover`` (default ``parked``): with parked deliveries the endpoint goes
        ``recovering`` and the lifecycle loop releases them, oldest first, through the slow
        start; with none it is ``active`` at once. ``since``: the deliveries created since then
        that ended without success (``failed``, ``cancelled``) are parked first, to go the same
        way. ``none``: the parked ones become dead letters (``discarded``).

        With ``replay_cancelled``, the deliveries a disable cancelled (``cancelled``,
        ``last_error`` ``endpoint_disabled``, finished at or after ``disabled_at``) go back to
        ``pending``, due now, with a fresh retry round. An endpoint that is not disabled is
        returned unchanged.
        """
        recover = recover or Recover()
        now = self._clock.now()
        replayed: list[str] = []
        discarded: list[str] = []
        async with self._sessions.begin() as session:
            endpoint = await _load(session, endpoint_id, for_update=True)
            if endpoint.status != EndpointStatus.DISABLED:
                return EnableOutcome(endpoint=endpoint, replayed_delivery_ids=())
            disabled_at = endpoint.disabled_at
            if recover.mode == "since" and recover.since is not None:
                await lifecycle_repo.park_unsucceeded(
                    session, endpoint_id=endpoint_id, created_since=recover.since, now=now
                )
            elif recover.mode == "none":
                discarded = await lifecycle_repo.fail_parked(
                    session, now=now, last_error=DISCARDED, endpoint_id=endpoint_id
                )
            if replay_cancelled and disabled_at is not None:
                replayed = await deliveries_repo.requeue(
                    session,
                    now=now,
                    states=(DeliveryState.CANCELLED.value,),
                    endpoint_id=endpoint_id,
                    completed_since=disabled_at,
                    last_error=deliveries_repo.ENDPOINT_DISABLED,
                )
            # (its UPDATE ... RETURNING refreshes ``endpoint`` itself: no read after it)
            transition = await recover_in(
                session, endpoint=endpoint, trigger="manual", now=now, policy=self._lifecycle
            )
        if replayed:
            # Committed first: if this fails, the sweeper finds them due in SQL.
            await self._queue.add_missing([(delivery_id, now) for delivery_id in replayed])
        if discarded and self._metrics is not None:
            self._metrics.dead_letter_total.labels(DISCARDED).inc(len(discarded))
        if transition is not None:
            self._transitions.report(transition)
        log.info(
            "endpoint.enabled",
            endpoint_id=endpoint_id,
            replayed=len(replayed),
            recover=recover.mode,
            parked=0 if transition is None else transition.parked_count,
            discarded=len(discarded),
        )
        return EnableOutcome(
            endpoint=endpoint,
            replayed_delivery_ids=tuple(replayed),
            parked=0 if transition is None else transition.parked_count,
            discarded=len(discarded),
        )

    async def discard_parked(self, *, endpoint_id: str) -> int:
        """Make the endpoint's parked deliveries dead letters (``last_error`` ``discarded``);
        how many. They can be replayed from the dead letters like any other."""
        now = self._clock.now()
        async with self._sessions.begin() as session:
            await _load(session, endpoint_id, for_update=True)
            discarded = await lifecycle_repo.fail_parked(
                session, now=now, last_error=DISCARDED, endpoint_id=endpoint_id
            )
        if discarded and self._metrics is not None:
            self._metrics.dead_letter_total.labels(DISCARDED).inc(len(discarded))
        log.info("endpoint.parked_discarded", endpoint_id=endpoint_id, discarded=len(discarded))
        return len(discarded)

    async def parked_counts(self, *, endpoint_ids: Sequence[str]) -> dict[str, int]:
        """How many deliveries each of ``endpoint_ids`` has parked, in one grouped statement;
        every id given is in the result (0 when none)."""
        async with self._sessions() as session:
            counts = await lifecycle_repo.parked_counts(session, endpoint_ids=endpoint_ids)
        return {endpoint_id: counts.get(endpoint_id, 0) for endpoint_id in endpoint_ids}

    async def _forget_parked(self, delivery_ids: Sequence[str]) -> None:
        """Take parked deliveries out of the queue (Redis memory stays flat while an endpoint
        is down). A failure here is harmless: a claim of a parked delivery is given up."""
        if not delivery_ids:
            return
        try:
            await self._queue.discard(list(delivery_ids))
        except Exception as exc:
            log.warning(
                "endpoint.unqueue_parked_failed",
                deliveries=len(delivery_ids),
                error=f"{type(exc).__name__}: {exc}"[:300],
            )

    async def get_secret(self, *, endpoint_id: str) -> EndpointSecret:
        """The current signing secret."""
        return self._secret_of(await self.get(endpoint_id=endpoint_id))

    async def rotate_secret(
        self, *, endpoint_id: str, new_secret: str | None = None
    ) -> EndpointSecret:
        """Replace the secret (generated when None; ``ValueError`` for a malformed one).

        The old one keeps signing beside the new one for ``SECRET_ROTATION_GRACE`` seconds, so
        receivers can switch without dropping a delivery. ``Conflict`` if ``new_secret`` is the
        current one.
        """
        secret = validate_secret(new_secret) if new_secret is not None else generate_secret()
        now = self._clock.now()
        grace_s = self._settings.secret_rotation_grace_s
        async with self._sessions.begin() as session:
            endpoint = await _load(session, endpoint_id, for_update=True)
            if secret == endpoint.secret:
                raise Conflict("the new secret is the current one")
            endpoint.previous_secret = endpoint.secret if grace_s > 0 else None
            endpoint.previous_secret_expires_at = (
                now + timedelta(seconds=grace_s) if grace_s > 0 else None
            )
            endpoint.secret = secret
            endpoint.updated_at = now
        log.info("endpoint.secret_rotated", endpoint_id=endpoint_id, grace_s=grace_s)
        return self._secret_of(endpoint)

    async def stats(self, *, endpoint_id: str) -> EndpointStats:
        """Deliveries by state and attempts of the last 24 hours."""
        until = self._clock.now()
        since = until - timedelta(seconds=STATS_WINDOW_S)
        async with self._sessions() as session:
            await _load(session, endpoint_id)
            counts = await repo.delivery_state_counts(
                session, endpoint_id=endpoint_id, created_since=since
            )
            attempts = await repo.attempt_counts(
                session, endpoint_id=endpoint_id, started_since=since
            )
        return EndpointStats(
            endpoint_id=endpoint_id,
            window_s=STATS_WINDOW_S,
            since=since,
            until=until,
            deliveries={state.value: counts.get(state.value, 0) for state in DeliveryState},
            attempts_total=attempts.total,
            attempts_succeeded=attempts.succeeded,
        )

    async def recent_attempts(self, *, endpoint_ids: Sequence[str]) -> dict[str, RecentAttempts]:
        """The last 24 hours' attempts of each of ``endpoint_ids`` (as ``stats`` counts them),
        in one grouped statement however many there are: a list page's figures without a
        query per row. Every id given is in the result; one without attempts (or unknown, or
        deleted) has zeros."""
        since = self._clock.now() - timedelta(seconds=STATS_WINDOW_S)
        async with self._sessions() as session:
            counts = await repo.attempt_counts_by_endpoint(
                session, endpoint_ids=endpoint_ids, started_since=since
            )
        result: dict[str, RecentAttempts] = {}
        for endpoint_id in endpoint_ids:
            found = counts.get(endpoint_id)
            result[endpoint_id] = RecentAttempts(
                endpoint_id=endpoint_id,
                window_s=STATS_WINDOW_S,
                total=0 if found is None else found.total,
                succeeded=0 if found is None else found.succeeded,
            )
        return result

    async def _vet_url(self, url: str) -> None:
        if self._destinations is None:
            return
        refusal = await self._destinations.refusal(url)
        if refusal is not None:
            raise InvalidWebhookField(("url",), refusal, kind="blocked_address", value=url)

    def _secret_of(self, endpoint: Endpoint) -> EndpointSecret:
        expires = endpoint.previous_secret_expires_at
        still_signing = endpoint.previous_secret is not None and expires is not None
        if still_signing and expires is not None and expires <= self._clock.now():
            still_signing = False
        return EndpointSecret(
            secret=endpoint.secret,
            previous_secret_expires_at=expires if still_signing else None,
        )


async def _load(session: AsyncSession, endpoint_id: str, *, for_update: bool = False) -> Endpoint:
    endpoint = await repo.get_endpoint(session, endpoint_id=endpoint_id, for_update=for_update)
    if endpoint is None:
        raise NotFound("webhook", endpoint_id)
    return endpoint


def _stored(config: RetryConfig | None) -> dict[str, object] | None:
    return None if config is None else config.model_dump(mode="json")
