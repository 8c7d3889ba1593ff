"""Start everything a single machine needs: migrations, the embedded Redis (if REDIS_URL is unset), the ASGI web server
and a Celery worker, then print the URL and how to log in. Ctrl-C stops the children."""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # noqa: BLE001 - a broken torch install must not stop the web server
        return False


class Command(BaseCommand):
    help = "Migrate, then run the web server and a worker in the foreground."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("LABBOOK_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("LABBOOK_PORT", "8000")))
        parser.add_argument("--no-worker", action="store_true", help="web only (workers run elsewhere)")

    def handle(self, *args, host: str, port: int, no_worker: bool, **options):
        call_command("migrate", interactive=False, verbosity=0)
        login_hint = self._ensure_first_user()
        env = {**os.environ, "REDIS_URL": settings.REDIS_URL, "PYTHONUNBUFFERED": "1"}
        procs: list[subprocess.Popen] = [
            subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "labbook.asgi:application", "--host", host, "--port", str(port),
                 "--timeout-graceful-shutdown", "5"],
                env=env,
            )
        ]
        if not no_worker:
            queues = "cpu,gpu" if _cuda_available() else "cpu"
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "labbook", "worker", "-Q", queues, "-c", "1",
                     "--hostname", f"{queues.replace(',', '+')}@%h", "--loglevel", "INFO"],
                    env=env,
                )
            )
        self.stdout.write(self.style.SUCCESS(f"\nLabbook is running at http://{host}:{port}/"))
        self.stdout.write(login_hint)
        self.stdout.write(f"Broker: {settings.REDIS_URL}   Database: {settings.DATABASES['default']['ENGINE']}\n")

        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        while not stopping and all(p.poll() is None for p in procs):
            time.sleep(0.5)
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()

    def _ensure_first_user(self) -> str:
        User = get_user_model()
        if User.objects.exists():
            return "Log in with your account (python manage.py changepassword NAME resets a password)."
        username = os.environ.get("LABBOOK_ADMIN_USER", "admin")
        if sys.stdin.isatty() and not os.environ.get("LABBOOK_NONINTERACTIVE"):
            self.stdout.write("No user yet: create the first (administrator) account.")
            call_command("createsuperuser", username=username, interactive=True)
            return f"Log in as {username!r} with the password you just chose."
        # Non-interactive start: a random one-time password, printed once, never stored in clear.
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        return (
            f"First start: log in as {username!r} with the one-time password {password!r}\n"
            "then change it at /admin/password_change/."
        )
