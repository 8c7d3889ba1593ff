"""Health of the real components: database, broker (Redis) and at least one Celery worker."""
from __future__ import annotations

import time

from django.conf import settings
from django.db import connection

# How long /healthz waits for a worker to answer a ping; short because load balancers poll it.
WORKER_PING_TIMEOUT_S = 1.5


def check_database() -> dict:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return {"ok": True, "vendor": connection.vendor, "ms": round((time.perf_counter() - started) * 1000, 1)}
    except Exception as exc:  # noqa: BLE001 - health reports every failure as data
        return {"ok": False, "error": str(exc)[:200]}


def check_broker() -> dict:
    import redis

    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
        return {"ok": True}
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": str(exc)[:200]}


def check_workers() -> dict:
    from labbook.celery import app

    try:
        replies = app.control.ping(timeout=WORKER_PING_TIMEOUT_S) or []
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "count": 0, "error": str(exc)[:200]}
    names = sorted(name for reply in replies for name in reply)
    return {"ok": bool(names), "count": len(names), "workers": names}


def health_report() -> dict:
    database = check_database()
    broker = check_broker()
    workers = check_workers() if broker["ok"] else {"ok": False, "count": 0, "error": "broker unreachable"}
    return {
        "ok": database["ok"] and broker["ok"] and workers["ok"],
        "database": database,
        "broker": broker,
        "workers": workers,
    }
