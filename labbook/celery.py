"""The Celery app: ``celery -A labbook worker -Q cpu`` (or ``-Q gpu`` on a GPU host, one worker process per GPU)."""
from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labbook.settings")

app = Celery("labbook")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Queues per device class: a job asks for cpu or gpu and only workers serving that class take it.
app.conf.task_queues = [Queue(name) for name in ("cpu", "gpu")]
app.autodiscover_tasks()


@app.task(name="labbook.health", acks_late=False)
def health() -> dict:
    """Round trip through the broker: answered by any worker, used by /healthz and the tests."""
    import socket

    return {"ok": True, "host": socket.gethostname(), "pid": os.getpid()}
