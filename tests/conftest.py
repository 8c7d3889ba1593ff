"""Shared fixtures. Real components only: the database is PostgreSQL when ./lab test finds it on 127.0.0.1 (SQLite
otherwise), Redis is the real server on 127.0.0.1:6379 (or the embedded one), workers and web servers are real
subprocesses, the browser is real headless Chromium."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in the test thread; the ORM calls made by the same tests are still
# synchronous, so Django's async-safety check would be a false alarm here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url_for_subprocess() -> str:
    """The URL of the test database (not the dev one), so child processes see what the test wrote."""
    from django.db import connection

    sd = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{sd['NAME']}"
    user = sd.get("USER") or ""
    password = f":{sd['PASSWORD']}" if sd.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{sd.get('HOST') or '127.0.0.1'}:{sd.get('PORT') or 5432}/{sd['NAME']}"


def subprocess_env(**extra: str) -> dict[str, str]:
    from django.conf import settings

    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_subprocess(),
        "REDIS_URL": settings.REDIS_URL,
        "LABBOOK_DATA_DIR": str(settings.DATA_DIR),
        "LABBOOK_ARTIFACT_ROOT": str(settings.ARTIFACT_ROOT),
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "labbook.settings",
    }
    env.update(extra)
    return env


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05, message: str = "condition"):
    """Poll for an event instead of sleeping a fixed time; returns the predicate's truthy value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


# --- users and clients -------------------------------------------------------------------------------------------

@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(username="alice", password="correct horse battery staple")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user(username="mallory", password="another long passphrase")


@pytest.fixture
def auth_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def api_token(user) -> str:
    from labbook.core.services import token_create

    _, raw = token_create(user=user, name="tests")
    return raw


@pytest.fixture
def api_client(api_token):
    from rest_framework.test import APIClient

    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token}")
    return c


# --- real processes ----------------------------------------------------------------------------------------------

class Proc:
    def __init__(self, popen: subprocess.Popen, log_path: Path, **info):
        self.popen = popen
        self.log_path = log_path
        self.__dict__.update(info)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig_kill: bool = False) -> None:
        if self.popen.poll() is None:
            (self.popen.kill if sig_kill else self.popen.terminate)()
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


def start_celery_worker(tmp_path: Path, queues: str = "cpu,gpu", **env_extra: str) -> Proc:
    """Start a real ``celery -A labbook worker`` on the test database and wait until it answers a ping."""
    from labbook.celery import app

    hostname = f"test-{uuid.uuid4().hex[:8]}@localhost"
    log_path = tmp_path / f"worker-{hostname.split('@')[0]}.log"
    popen = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "labbook", "worker", "-Q", queues, "-c", "1", "--pool", "prefork",
         "--hostname", hostname, "--loglevel", "INFO", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=subprocess_env(**env_extra), stdout=log_path.open("w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    proc = Proc(popen, log_path, hostname=hostname)

    def answered():
        if popen.poll() is not None:
            raise AssertionError(f"worker exited early:\n{proc.log()}")
        return app.control.ping(destination=[hostname], timeout=0.5)

    wait_until(answered, timeout=60, interval=0.2, message="celery worker to answer ping")
    return proc


@pytest.fixture
def celery_worker(transactional_db, tmp_path) -> Iterator[Proc]:
    proc = start_celery_worker(tmp_path)
    yield proc
    proc.stop()


def start_asgi_server(tmp_path: Path, **env_extra: str) -> Proc:
    port = _free_port()
    log_path = tmp_path / f"uvicorn-{port}.log"
    popen = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "labbook.asgi:application", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=subprocess_env(**env_extra), stdout=log_path.open("w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    proc = Proc(popen, log_path, url=f"http://127.0.0.1:{port}", port=port)

    def up():
        if popen.poll() is not None:
            raise AssertionError(f"uvicorn exited early:\n{proc.log()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    wait_until(up, timeout=60, message="uvicorn to listen")
    return proc


@pytest.fixture
def asgi_server(transactional_db, tmp_path) -> Iterator[Proc]:
    proc = start_asgi_server(tmp_path)
    yield proc
    proc.stop()


# --- browser -----------------------------------------------------------------------------------------------------

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium driven by Playwright. Missing Chromium is an error, never a skip (./lab test installs it)."""
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    assert executable, "Chromium not found: ./lab test installs it (apt-get install chromium); or set CHROMIUM=/path"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page_factory(chromium):
    contexts = []

    def make(server: Proc, user=None):
        context = chromium.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
        contexts.append(context)
        if user is not None:
            login_browser(context, server, user)
        page = context.new_page()
        page.set_default_timeout(15000)
        return page

    yield make
    for context in contexts:
        context.close()


def login_browser(context, server: Proc, user) -> None:
    """Log in through a real session cookie created on the server's database (no password typing needed)."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session.session_key,
                          "domain": "127.0.0.1", "path": "/"}])
