"""``/healthz``, ``/readyz`` and ``/metrics``: the same routes, documented the same way, on every service."""

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Response
from faststream.kafka import KafkaBroker
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel
from pymongo import AsyncMongoClient

ReadinessCheck = Callable[[], Awaitable[bool]]


class Alive(BaseModel):
    status: str = "alive"


def kafka_reachable(broker: KafkaBroker, timeout: float = 2.0) -> ReadinessCheck:
    async def check() -> bool:
        return await broker.ping(timeout=timeout)

    return check


def mongodb_reachable(client: AsyncMongoClient[dict[str, Any]]) -> ReadinessCheck:
    async def check() -> bool:
        try:
            await client.admin.command("ping")
        except Exception:
            return False
        return True

    return check


def ops_router(registry: CollectorRegistry, checks: dict[str, ReadinessCheck]) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> Alive:
        return Alive()

    @router.get(
        "/readyz",
        summary="Readiness: every dependency answers (200), or which ones do not (503)",
        responses={503: {"description": "A dependency does not answer", "model": dict[str, bool]}},
    )
    async def readyz(response: Response) -> dict[str, bool]:
        results = {name: await check() for name, check in checks.items()}
        if not all(results.values()):
            response.status_code = 503
        return results

    @router.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}, "description": "Text"}},
    )
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
