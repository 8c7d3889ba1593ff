"""Celery tasks: thin, idempotent, taking ids. The Job row decides what happens (see runner.services).

Every worker also runs a maintenance thread (reap lost jobs, dispatch jobs submitted while the broker was down), so
no beat process is needed and the cluster heals as long as one worker is up.
"""
from __future__ import annotations

import logging
import random
import socket
import threading

from celery import shared_task
from celery.signals import worker_ready, worker_shutdown
from django.db import close_old_connections

logger = logging.getLogger(__name__)
_maintenance_stop = threading.Event()


@shared_task(name="runner.execute_job", bind=True, acks_late=True, ignore_result=True)
def execute_job(self, job_id: int) -> str:
    from runner.execution import execute_job as run

    return run(job_id=int(job_id), hostname=self.request.hostname or socket.gethostname(),
               task_id=self.request.id or "")


def maintenance_loop(stop: threading.Event) -> None:
    from runner.conf import job_setting
    from runner.services import jobs_maintain

    while True:
        # Jitter, so that many workers started together do not all query at the same instant.
        interval = job_setting("MAINTENANCE_INTERVAL_S")
        if stop.wait(interval * random.uniform(0.8, 1.2)):
            return
        try:
            close_old_connections()
            done = jobs_maintain()
            if any(done.values()):
                logger.info("job maintenance: %s", done)
        except Exception:  # noqa: BLE001 - keep the loop alive across DB or broker outages
            logger.exception("job maintenance failed; retrying")


@worker_ready.connect
def _start_maintenance(**_kwargs) -> None:
    _maintenance_stop.clear()
    threading.Thread(target=maintenance_loop, args=(_maintenance_stop,), name="job-maintenance", daemon=True).start()


@worker_shutdown.connect
def _stop_maintenance(**_kwargs) -> None:
    _maintenance_stop.set()
