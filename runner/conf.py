"""Runner tuning, read at call time from Django settings (``JOBS_*``) or the environment (``LABBOOK_JOBS_*``).

Read lazily so that tests can shorten timeouts with the ``settings`` fixture and test workers with their environment.
"""
from __future__ import annotations

import os

from django.conf import settings

_DEFAULTS: dict[str, float] = {
    # Seconds between two heartbeats of a running job; a few seconds keeps the write load negligible.
    "HEARTBEAT_S": 3.0,
    # A running job whose heartbeat is older than this is marked lost. Ten missed heartbeats rules out a slow DB
    # write or a GC pause, and still tells the user within a minute that the worker died.
    "LOST_AFTER_S": 40.0,
    # How often every worker (and the web process, lazily) reaps lost jobs and re-dispatches undispatched ones.
    "MAINTENANCE_INTERVAL_S": 10.0,
    # After a cancel, the engine gets this long to stop cooperatively (between steps) before SIGTERM,
    # and the same again after SIGTERM before SIGKILL.
    "CANCEL_GRACE_S": 3.0,
    # Metric/log batches are written and published at most this long after being produced (DESIGN: ≤ ~200 ms).
    "FLUSH_INTERVAL_S": 0.2,
    # Job progress (step, ETA) is written to the database at most this often; live viewers get every update.
    "PROGRESS_DB_INTERVAL_S": 1.0,
    # Active (queued + running) jobs one user may have; protects a shared cluster from a runaway script.
    "MAX_ACTIVE_PER_USER": 8,
    # Default and maximum wall-clock limit of a job, in seconds.
    "DEFAULT_TIMEOUT_S": 24 * 3600,
    "MAX_TIMEOUT_S": 7 * 24 * 3600,
    # Live events kept per run in its Redis stream (older ones are trimmed; the database keeps everything).
    "STREAM_MAXLEN": 20000,
    # Log lines stored per job; beyond this the log keeps its tail in the stream only.
    "MAX_LOG_LINES": 50000,
    # A run page holds its event stream open this long, then the browser reconnects (resuming by id).
    "SSE_MAX_S": 600.0,
}


def job_setting(name: str) -> float:
    """``JOBS_<NAME>`` from settings, else ``LABBOOK_JOBS_<NAME>`` from the environment, else the default."""
    value = getattr(settings, f"JOBS_{name}", None)
    if value is None:
        value = os.environ.get(f"LABBOOK_JOBS_{name}")
    if value is None:
        return _DEFAULTS[name]
    return float(value)


def extra_job_modules() -> list[str]:
    """Modules that register additional job kinds (``LABBOOK_JOB_MODULES``, comma-separated; set by operators)."""
    raw = getattr(settings, "JOB_MODULES", None) or os.environ.get("LABBOOK_JOB_MODULES", "")
    if isinstance(raw, str):
        raw = raw.split(",")
    return [m.strip() for m in raw if m and m.strip()]
