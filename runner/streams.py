"""Live events per run in Redis Streams, served to browsers as Server-Sent Events.

Every event a job produces (metrics, progress, log, cost, status, artifact) is appended with XADD to the stream of its
run; the stream entry id doubles as the SSE ``id:``. A browser that reconnects sends ``Last-Event-ID`` (or
``?last_id=``) and reading resumes strictly after that entry: nothing lost, nothing repeated. Many viewers read the same
stream independently (XREAD, no consumer groups), so all of them receive everything. Streams are capped with
``MAXLEN ~`` so an endless job cannot fill Redis; the database keeps the full history.
"""
from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator
from functools import lru_cache
from typing import Any

import orjson
import redis
from django.conf import settings

from runner.conf import job_setting

logger = logging.getLogger(__name__)

EVENT_TYPES = ("metrics", "progress", "log", "cost", "status", "artifact")
_ID_RE = re.compile(r"^\d{1,20}-\d{1,20}$")
# An SSE comment this often keeps proxies from closing an idle connection (seconds).
KEEPALIVE_S = 15.0
# How far back a freshly rendered page replays the stream (ms): longer than any metrics batch takes to be written.
PAGE_REPLAY_MS = 10_000


def stream_key(run_id: int) -> str:
    return f"labbook:run:{int(run_id)}:events"


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    # Short timeouts: a publisher must never stall a training job because Redis is slow or gone.
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2, health_check_interval=30)


def client() -> redis.Redis:
    return _client(settings.REDIS_URL)


def valid_event_id(value: str | None) -> str | None:
    value = (value or "").strip()
    return value if _ID_RE.match(value) else None


def publish(run_id: int, event: str, data: dict[str, Any]) -> str | None:
    """Append one event to the run's stream; returns its id, or None when Redis is unreachable (logged, not raised)."""
    payload = orjson.dumps({"run": int(run_id), **data}, default=str, option=orjson.OPT_NON_STR_KEYS)
    try:
        entry_id = client().xadd(
            stream_key(run_id), {"event": event, "data": payload},
            maxlen=int(job_setting("STREAM_MAXLEN")), approximate=True,
        )
    except redis.RedisError as exc:
        logger.warning("live event for run %s not published: %s", run_id, exc)
        return None
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


def reset(run_id: int) -> None:
    """Start a run's stream afresh (a new run: ids of a recreated database may match old streams' keys)."""
    try:
        client().delete(stream_key(run_id))
    except redis.RedisError as exc:
        logger.warning("stream of run %s not reset: %s", run_id, exc)


def last_event_id(run_id: int) -> str:
    """Id of the newest event of a run ("0-0" when none): a page rendered now resumes after it, missing nothing."""
    try:
        entries = client().xrevrange(stream_key(run_id), count=1)
    except redis.RedisError:
        return "0-0"
    if not entries:
        return "0-0"
    entry_id = entries[0][0]
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


def page_resume_id(run_id: int) -> str:
    """Where a page rendered now should resume the stream: a few seconds back (by the Redis clock), so that events
    published while the page read its history from the database are replayed rather than lost (the page drops what
    it already has). Stream ids are "<ms>-<seq>" timestamps, which is what makes this a plain string."""
    try:
        seconds, micros = client().time()
    except redis.RedisError:
        return "0-0"
    return f"{max(0, seconds * 1000 + micros // 1000 - PAGE_REPLAY_MS)}-0"


def read_events(run_id: int, after: str = "0-0", count: int = 1000) -> list[tuple[str, str, dict]]:
    """Events strictly after ``after`` as (id, event, data); used by the CLI and tests."""
    entries = client().xrange(stream_key(run_id), min=f"({after}" if after != "0-0" else "-", count=count)
    return [_decode(entry_id, fields) for entry_id, fields in entries]


def _decode(entry_id, fields) -> tuple[str, str, dict]:
    entry_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    event = fields.get(b"event", fields.get("event", b"message"))
    data = fields.get(b"data", fields.get("data", b"{}"))
    event = event.decode() if isinstance(event, bytes) else event
    data = data.decode() if isinstance(data, bytes) else data
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = {}
    return entry_id, event, parsed


def format_sse(entry_id: str | None, event: str, data: str) -> str:
    head = f"id: {entry_id}\n" if entry_id else ""
    return f"{head}event: {event}\ndata: {data}\n\n"


async def sse_events(run_id: int, last_id: str | None, max_seconds: float | None = None) -> AsyncIterator[str]:
    """Yield SSE frames for a run: everything after ``last_id`` (or only new events when None), then live ones.

    Uses redis.asyncio with blocking XREAD, so an idle viewer costs one socket and no thread. The cursor is always a
    concrete id, never ``$``, so that no event published between two reads can slip through.
    """
    import redis.asyncio as aioredis

    conn = aioredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2)
    key = stream_key(run_id)
    deadline = time.monotonic() + (max_seconds if max_seconds is not None else job_setting("SSE_MAX_S"))
    try:
        yield "retry: 1000\n\n"
        if last_id is None:
            newest = await conn.xrevrange(key, count=1)
            cursor = (newest[0][0].decode() if newest else "0-0")
        else:
            cursor = last_id
            oldest = await conn.xrange(key, count=1)
            if oldest and last_id != "0-0" and _id_tuple(oldest[0][0].decode()) > _id_tuple(last_id):
                # Events between last_id and the oldest kept one were trimmed: tell the page to reload its history.
                yield format_sse(None, "gap", json.dumps({"run": run_id, "oldest": oldest[0][0].decode()}))
        while time.monotonic() < deadline:
            block_ms = int(min(KEEPALIVE_S, max(0.05, deadline - time.monotonic())) * 1000)
            result = await conn.xread({key: cursor}, count=500, block=block_ms)
            if not result:
                yield ": keepalive\n\n"
                continue
            for _key, entries in result:
                for entry_id, fields in entries:
                    entry_id, event, data = _decode(entry_id, fields)
                    cursor = entry_id
                    yield format_sse(entry_id, event, json.dumps(data, separators=(",", ":")))
    finally:
        await conn.aclose()


def _id_tuple(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
