"""What handlers depend on, as ``Annotated`` aliases: the runtime, its services, checked ids.

The runtime is reached through ``request.app.state.runtime`` (set by ``create_app``), never a
module global. ``ApiRuntime`` is the part of ``hookline.runtime.Runtime`` the API uses, so tests
can hand in a runtime of their own.

An id in a path that cannot be an id of that kind (``hookline.ids.has_prefix``) is answered
``404`` at once, like any unknown id, without reaching the database.
"""

from __future__ import annotations

from typing import Annotated, Protocol, cast

from fastapi import Depends, Path, Request
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from hookline import ids
from hookline.clock import Clock
from hookline.errors import NotFound
from hookline.observability.tracing import Tracing
from hookline.queue.base import DelayedQueue
from hookline.service.console import ConsoleQueries
from hookline.service.dead_letters import DeadLetterService
from hookline.service.endpoint_sends import EndpointSends
from hookline.service.endpoints import EndpointService
from hookline.service.events import EventService
from hookline.service.health import LoopHealth
from hookline.service.lifecycle import LifecycleService
from hookline.service.queries import DeliveryQueries
from hookline.service.stats import StatsRefresher
from hookline.settings import Settings


class MetricsRegistry(Protocol):
    """Whatever holds the Prometheus metrics: only its registry is read here."""

    @property
    def registry(self) -> CollectorRegistry: ...


class ApiRuntime(Protocol):
    """The services and adapters the HTTP API uses (``hookline.runtime.Runtime`` has them)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def engine(self) -> AsyncEngine: ...
    @property
    def queue(self) -> DelayedQueue: ...
    @property
    def metrics(self) -> MetricsRegistry: ...
    @property
    def api_tokens(self) -> tuple[str, ...]: ...
    @property
    def endpoints(self) -> EndpointService: ...
    @property
    def endpoint_sends(self) -> EndpointSends: ...
    @property
    def lifecycle(self) -> LifecycleService: ...
    @property
    def queries(self) -> DeliveryQueries: ...
    @property
    def events(self) -> EventService: ...
    @property
    def dead_letters(self) -> DeadLetterService: ...
    @property
    def loops(self) -> LoopHealth: ...
    @property
    def stats(self) -> StatsRefresher: ...
    @property
    def console(self) -> ConsoleQueries: ...
    @property
    def tracing(self) -> Tracing | None: ...


async def get_runtime(request: Request) -> ApiRuntime:
    return cast(ApiRuntime, request.app.state.runtime)


RuntimeDep = Annotated[ApiRuntime, Depends(get_runtime)]


async def _endpoints(runtime: RuntimeDep) -> EndpointService:
    return runtime.endpoints


async def _endpoint_sends(runtime: RuntimeDep) -> EndpointSends:
    return runtime.endpoint_sends


async def _lifecycle(runtime: RuntimeDep) -> LifecycleService:
    return runtime.lifecycle


async def _queries(runtime: RuntimeDep) -> DeliveryQueries:
    return runtime.queries


async def _events(runtime: RuntimeDep) -> EventService:
    return runtime.events


async def _dead_letters(runtime: RuntimeDep) -> DeadLetterService:
    return runtime.dead_letters


async def _console(runtime: RuntimeDep) -> ConsoleQueries:
    return runtime.console


EndpointsDep = Annotated[EndpointService, Depends(_endpoints)]
EndpointSendsDep = Annotated[EndpointSends, Depends(_endpoint_sends)]
LifecycleDep = Annotated[LifecycleService, Depends(_lifecycle)]
QueriesDep = Annotated[DeliveryQueries, Depends(_queries)]
EventsDep = Annotated[EventService, Depends(_events)]
DeadLettersDep = Annotated[DeadLetterService, Depends(_dead_letters)]
ConsoleDep = Annotated[ConsoleQueries, Depends(_console)]


def _checked(value: str, *, prefix: str, kind: str) -> str:
    if not ids.has_prefix(value, prefix):
        raise NotFound(kind, value[:64])
    return value


async def _webhook_id(
    webhook_id: Annotated[str, Path(description="A webhook id (`wh_…`).")],
) -> str:
    return _checked(webhook_id, prefix=ids.ENDPOINT, kind="webhook")


async def _event_id(event_id: Annotated[str, Path(description="An event id (`evt_…`).")]) -> str:
    return _checked(event_id, prefix=ids.EVENT, kind="event")


async def _delivery_id(
    delivery_id: Annotated[str, Path(description="A delivery id (`dlv_…`).")],
) -> str:
    return _checked(delivery_id, prefix=ids.DELIVERY, kind="delivery")


WebhookId = Annotated[str, Depends(_webhook_id)]
EventId = Annotated[str, Depends(_event_id)]
DeliveryId = Annotated[str, Depends(_delivery_id)]
