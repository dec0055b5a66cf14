"""`/healthz` for the load balancer and the operators (docs/health.md): 503 when the database or the broker
does not answer; besides, each queue's consumers and the age of beat's last run, as warnings."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

from .liveness import process_health


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    health = process_health()
    age = health.beat_age_seconds
    body = {
        "ok": not health.problems,
        "problems": health.problems,
        "warnings": health.warnings,
        "database": "ok" if not health.database else health.database,
        "broker": "ok" if not health.broker else health.broker,
        "queues": {name: {"consumers": n} for name, n in health.consumers.items()},
        "beat": {
            "last_run": health.beat_last_run.isoformat() if health.beat_last_run else None,
            "age_seconds": None if age is None else round(age, 1),
            "interval_seconds": health.beat_interval,
            "late": health.beat_late,
        },
    }
    return JsonResponse(body, status=503 if health.problems else 200)
