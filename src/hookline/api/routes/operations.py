"""Operations: ``/healthz`` (process up), ``/readyz`` (database and queue), ``/metrics``.

None of them needs a token: load balancers and Prometheus call them.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hookline.api.deps import RuntimeDep
from hookline.api.routing import ApiRoute
from hookline.api.schemas import HealthOut, ReadinessOut
from hookline.service.health import check_readiness

router = APIRouter(tags=["operations"], route_class=ApiRoute)


@router.get("/healthz", summary="The process is up")
async def healthz() -> HealthOut:
    return HealthOut()


@router.get(
    "/readyz",
    response_model=ReadinessOut,
    responses={
        503: {
            "model": ReadinessOut,
            "description": "Database or queue unreachable, or a loop of this process not running.",
        }
    },
    summary="Database and queue are reachable",
)
async def readyz(runtime: RuntimeDep) -> ReadinessOut | JSONResponse:
    readiness = await check_readiness(
        engine=runtime.engine, queue=runtime.queue, loops=runtime.loops
    )
    body = ReadinessOut(
        status="ok" if readiness.ready else "unavailable",
        database="ok" if readiness.database_ok else "unavailable",
        queue="ok" if readiness.queue_ok else "unavailable",
        loops={name: state.value for name, state in readiness.loops.items()},
        detail="; ".join(readiness.problems) or None,
    )
    if readiness.ready:
        return body
    return JSONResponse(body.model_dump(), status_code=503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
    summary="Prometheus metrics",
)
async def metrics(runtime: RuntimeDep) -> Response:
    await runtime.stats.refresh()  # cached for METRICS_CACHE seconds; never raises
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
