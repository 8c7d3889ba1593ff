"""Labbook's Python client: log runs from any training script. Needs only ``requests`` (no Django, no Celery).

    import labbook
    with labbook.init(project="resnet-cifar", config={"lr": 0.1}, tags=["w4a4"]) as run:
        for step in range(1000):
            run.log({"loss": loss, "acc": acc}, step=step)

Server and token come from ``url=``/``token=`` or ``LABBOOK_URL``/``LABBOOK_TOKEN``. Points are buffered and sent
by a background thread in batches (every ``flush_interval`` seconds or ``batch_size`` points). While the server is
unreachable the thread retries with exponential backoff; points stay in order, memory stays bounded (past
``max_memory_points`` new points spill to a local file) and nothing is stored twice (the server ignores a
(run, key, step) it already has, and run creation is keyed by a client-chosen id).

Offline (``offline=True`` or ``LABBOOK_MODE=offline``) writes a JSONL file to upload later with
``labbook.client.upload(path)`` or ``python -m labbook.client upload FILE``.
"""
from __future__ import annotations

import atexit
import json
import logging
import math
import os
import platform
import random
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = ["init", "Run", "upload", "LabbookError", "ServerUnreachable"]

logger = logging.getLogger("labbook.client")
KEY_RE = re.compile(r"[A-Za-z0-9_.\-/@]{1,200}")
SERVER_BATCH_LIMIT = 10_000
FORMAT_VERSION = 1
# Points wait at most this long before the background thread sends them: short enough that a live chart is within
# ~0.5 s of the training loop, long enough that a loop logging every step still sends batches of many points.
DEFAULT_FLUSH_INTERVAL_S = 0.2


class LabbookError(RuntimeError):
    pass


class ServerUnreachable(LabbookError):
    """The server did not answer (network error, 5xx, 429) before the deadline."""


def _default_dir() -> Path:
    return Path(os.environ.get("LABBOOK_DIR", Path.cwd() / "labbook-runs"))


# --- environment capture -------------------------------------------------------------------------------------------

def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _package_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def capture_environment(seed: int | None = None) -> dict[str, Any]:
    """Git commit and dirty state, command line, versions, host and device. Never imports torch itself (slow);
    CUDA details are read only when the script has imported torch already."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "torch": _package_version("torch"),
        "numpy": _package_version("numpy"),
        "cwd": os.getcwd(),
    }
    device = ""
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            env["torch"] = torch.__version__
            env["cuda"] = torch.version.cuda
            if torch.cuda.is_available():
                env["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
                device = env["cuda_devices"][0]
        except Exception:  # noqa: BLE001 - environment capture must never break a training script
            pass
    if seed is not None:
        env["seed"] = seed
    return {
        "git_commit": commit or "",
        "git_dirty": (bool(status) if status is not None else None),
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "environment": env,
        "device": device or platform.machine(),
    }


# --- transport -----------------------------------------------------------------------------------------------------

class _Http:
    """requests with auth and JSON; raises _Retry for conditions worth retrying."""

    def __init__(self, url: str, token: str, timeout: float = 30.0):
        import requests

        self.requests = requests
        self.base = url.rstrip("/")
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json"})
        self.timeout = timeout

    def call(self, method: str, path: str, payload: Any = None) -> Any:
        try:
            resp = self.session.request(method, self.base + path, json=payload, timeout=self.timeout)
        except self.requests.RequestException as exc:
            raise _Retry(str(exc)) from exc
        if resp.status_code in (408, 425, 429) or resp.status_code >= 500:
            raise _Retry(f"HTTP {resp.status_code}")
        if resp.status_code >= 400:
            raise LabbookError(f"{method} {path}: HTTP {resp.status_code}: {resp.text[:500]}")
        return resp.json() if resp.content else None

    def put_file(self, path: str, local: Path, *, kind: str = "", attempts: int = 5) -> Any:
        delay = 0.5
        for attempt in range(attempts):
            try:
                with open(local, "rb") as fh:
                    resp = self.session.put(self.base + path, data=fh, params={"kind": kind} if kind else None,
                                            headers={"Content-Type": "application/octet-stream"},
                                            timeout=self.timeout)
            except self.requests.RequestException as exc:
                resp, error = None, str(exc)
            else:
                error = f"HTTP {resp.status_code}"
                if resp.status_code < 400:
                    return resp.json()
                if resp.status_code < 500 and resp.status_code not in (408, 429):
                    raise LabbookError(f"PUT {path}: HTTP {resp.status_code}: {resp.text[:500]}")
            if attempt == attempts - 1:
                raise LabbookError(f"PUT {path} failed: {error}")
            time.sleep(delay)
            delay *= 2
        return None

    def call_with_retry(self, method: str, path: str, payload: Any = None, *, deadline: float | None = None) -> Any:
        delay = 0.25
        while True:
            try:
                return self.call(method, path, payload)
            except _Retry as exc:
                if deadline is not None and time.monotonic() + delay > deadline:
                    raise ServerUnreachable(f"server unreachable: {exc}") from exc
                logger.warning("labbook: %s %s failed (%s); retrying in %.1fs", method, path, exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 30.0) * (0.8 + 0.4 * random.random())


class _Retry(Exception):
    pass


def _columnar(points: list[tuple[str, int, float, float]]) -> dict:
    by_key: dict[str, dict[str, list]] = {}
    for key, step, value, wall in points:
        s = by_key.setdefault(key, {"key": key, "steps": [], "values": [], "wall_times": []})
        s["steps"].append(step)
        s["values"].append(value)
        s["wall_times"].append(wall)
    return {"series": list(by_key.values())}


class _Spool:
    """An ordered queue of points: memory first, then a JSONL spill file once memory holds ``max_memory`` points.

    Order is kept because, once spilling starts, every newer point goes to the file until the file is drained.
    """

    def __init__(self, path: Path, max_memory: int):
        self.path = path
        self.max_memory = max_memory
        self.memory: deque = deque()
        self.file_count = 0
        self.read_offset = 0

    def __len__(self) -> int:
        return len(self.memory) + self.file_count

    def put(self, point: tuple) -> None:
        if self.file_count or len(self.memory) >= self.max_memory:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(point) + "\n")
            self.file_count += 1
        else:
            self.memory.append(point)

    def peek(self, n: int) -> list[tuple]:
        out = [self.memory[i] for i in range(min(n, len(self.memory)))]
        if len(out) < n and self.file_count:
            with open(self.path, encoding="utf-8") as fh:
                fh.seek(self.read_offset)
                for _ in range(min(n - len(out), self.file_count)):
                    out.append(tuple(json.loads(fh.readline())))
        return out

    def drop(self, n: int) -> None:
        from_memory = min(n, len(self.memory))
        for _ in range(from_memory):
            self.memory.popleft()
        rest = n - from_memory
        if rest:
            with open(self.path, encoding="utf-8") as fh:
                fh.seek(self.read_offset)
                for _ in range(rest):
                    fh.readline()
                self.read_offset = fh.tell()
            self.file_count -= rest
            if self.file_count == 0:
                self.path.unlink(missing_ok=True)
                self.read_offset = 0


# --- runs ----------------------------------------------------------------------------------------------------------

class Run:
    """A run being logged. Use ``log`` and ``finish`` (or ``with``); thread-safe."""

    def __init__(self, *, create_payload: dict, http: _Http | None, offline_path: Path | None,
                 batch_size: int = 1000, flush_interval: float = DEFAULT_FLUSH_INTERVAL_S, max_memory_points: int = 200_000,
                 spool_dir: Path | None = None, create_timeout: float = 60.0):
        self.client_id = create_payload["client_id"]
        self.create_payload = create_payload
        self.http = http
        self.offline_path = offline_path
        self.batch_size = max(1, min(batch_size, SERVER_BATCH_LIMIT))
        self.flush_interval = flush_interval
        self.id: int | None = None
        self.base_dir = (spool_dir.parent if spool_dir else _default_dir())
        self.url: str | None = None
        self.finished = False
        self._step = -1
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._warned_nonfinite: set[str] = set()
        self.sent = 0
        self.last_error: str | None = None
        if http is not None:
            spool = (spool_dir or _default_dir() / ".spool") / f"{self.client_id}.jsonl"
            self._queue = _Spool(spool, max_memory_points)
            data = http.call_with_retry("POST", "/api/runs/", create_payload,
                                        deadline=time.monotonic() + create_timeout)
            self.id = data["id"]
            self.url = http.base + data.get("url", f"/runs/{self.id}/")
            self._thread = threading.Thread(target=self._sender, name=f"labbook-run-{self.id}", daemon=True)
            self._thread.start()
        else:
            assert offline_path is not None
            offline_path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(offline_path, "a", encoding="utf-8")  # noqa: SIM115 - closed by finish()
            self._write({"type": "run", "version": FORMAT_VERSION, "payload": create_payload})
        atexit.register(self._atexit)

    # public API

    def log(self, metrics: dict[str, float], step: int | None = None, *, wall_time: float | None = None) -> None:
        """Log scalar metrics at ``step`` (default: the previous step + 1). Non-finite values are skipped with a
        warning (a NaN loss would otherwise poison the batch); bad keys raise ValueError at once."""
        if self.finished:
            raise LabbookError("run already finished")
        with self._lock:
            if step is None:
                step = self._step + 1
            if isinstance(step, bool) or not isinstance(step, int) or step < 0:
                raise ValueError(f"step must be a non-negative integer, got {step!r}")
            self._step = max(self._step, step)
            now = time.time() if wall_time is None else float(wall_time)
            points = []
            for key, value in metrics.items():
                if not isinstance(key, str) or not KEY_RE.fullmatch(key):
                    raise ValueError(f"metric key {key!r}: use 1-200 characters from A-Z a-z 0-9 _ . - / @")
                try:
                    value = float(value)  # accepts numpy and 0-d torch tensors
                except (TypeError, ValueError):
                    raise ValueError(f"metric {key!r}: value {value!r} is not a number") from None
                if not math.isfinite(value):
                    if key not in self._warned_nonfinite:
                        logger.warning("labbook: skipping non-finite value of %r at step %s", key, step)
                        self._warned_nonfinite.add(key)
                    continue
                points.append((key, step, value, now))
            if self.http is None:
                if points:
                    self._write({"type": "metrics", "points": points})
                return
            for p in points:
                self._queue.put(p)
            if len(self._queue) >= self.batch_size:
                self._lock.notify_all()

    def log_artifact(self, local_path: str | os.PathLike, path: str | None = None, *, kind: str = "") -> None:
        """Upload a file (checkpoint, report, plot) under ``path`` in the run (default: its file name).

        Streams the file (no copy in memory). Offline, the file's location is recorded and uploaded with the run.
        """
        local = Path(local_path)
        if not local.is_file():
            raise FileNotFoundError(local)
        rel = path or local.name
        if self.http is None:
            self._write({"type": "artifact", "local_path": str(local.resolve()), "path": rel, "kind": kind})
            return
        self.http.put_file(f"/api/runs/{self.id}/artifacts/{quote(rel)}", local, kind=kind)

    def set_tags(self, tags: list[str]) -> None:
        self._update({"tags": list(tags)})

    def set_notes(self, notes: str) -> None:
        self._update({"notes": notes})

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every logged point is stored on the server; False on timeout."""
        if self.http is None:
            self._file.flush()
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._lock.notify_all()
            while len(self._queue):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._lock.wait(timeout=min(0.5, remaining) if remaining is not None else 0.5)
        return True

    def finish(self, status: str = "succeeded", *, timeout: float | None = 300.0) -> None:
        """Send what is left (waiting up to ``timeout`` seconds while the server is down), then close the run.

        If the server stays unreachable, the points not yet sent are written to an offline file that
        ``labbook.client.upload`` sends later, and its path is logged: nothing is lost.
        """
        if self.finished:
            return
        self.finished = True
        ended = time.time()
        if self.http is None:
            self._write({"type": "finish", "status": status, "ended_at": ended})
            self._file.close()
            return
        drained = self.flush(timeout=timeout)
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        self._thread.join(timeout=10)
        if not drained:
            path = self._save_leftovers(status, ended)
            logger.error("labbook: server unreachable; %d points saved to %s (upload with: python -m labbook.client "
                         "upload %s)", len(self._queue), path, path)
            return
        try:
            self.http.call_with_retry("PATCH", f"/api/runs/{self.id}/", {"status": status, "ended_at": _iso(ended)},
                                      deadline=time.monotonic() + (timeout or 60))
        except LabbookError:
            path = self._save_leftovers(status, ended)
            logger.error("labbook: could not mark run %s %s; saved to %s", self.id, status, path)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finish("succeeded")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish("cancelled")
        else:
            self.finish("failed")

    # internals

    def _write(self, record: dict) -> None:
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._file.flush()

    def _update(self, fields: dict) -> None:
        if self.http is None:
            self._write({"type": "update", "fields": fields})
        else:
            self.http.call_with_retry("PATCH", f"/api/runs/{self.id}/", fields, deadline=time.monotonic() + 60)

    def _sender(self) -> None:
        """Background thread: send the oldest batch; on failure retry the same batch with backoff (keeps order)."""
        delay = 0.25
        while True:
            with self._lock:
                if not len(self._queue):
                    if self._stop.is_set():
                        return
                    self._lock.wait(timeout=self.flush_interval)
                    if not len(self._queue):
                        continue
                elif len(self._queue) < self.batch_size and not self._stop.is_set():
                    self._lock.wait(timeout=self.flush_interval)
                batch = self._queue.peek(self.batch_size)
            try:
                self.http.call("POST", f"/api/runs/{self.id}/metrics/", _columnar(batch))
            except _Retry as exc:
                self.last_error = str(exc)
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, 30.0) * (0.8 + 0.4 * random.random())
                continue
            except LabbookError as exc:  # 4xx: the batch itself is bad; keep it on disk rather than lose it
                logger.error("labbook: server refused a batch: %s", exc)
                self._dead_letter(batch)
            delay = 0.25
            with self._lock:
                self._queue.drop(len(batch))
                self.sent += len(batch)
                self._lock.notify_all()

    def _dead_letter(self, batch: list[tuple]) -> None:
        path = self._queue.path.with_suffix(".rejected.jsonl")
        with open(path, "a", encoding="utf-8") as fh:
            for p in batch:
                fh.write(json.dumps(p) + "\n")

    def _save_leftovers(self, status: str, ended: float) -> Path:
        path = self.base_dir / f"{self.client_id}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(json.dumps({"type": "run", "version": FORMAT_VERSION, "payload": self.create_payload}) + "\n")
            while len(self._queue):
                chunk = self._queue.peek(10_000)
                fh.write(json.dumps({"type": "metrics", "points": chunk}) + "\n")
                self._queue.drop(len(chunk))
            fh.write(json.dumps({"type": "finish", "status": status, "ended_at": ended}) + "\n")
        return path

    def _atexit(self) -> None:
        if not self.finished:
            crashed = getattr(sys, "last_value", None) is not None
            self.finish("failed" if crashed else "succeeded", timeout=30)


def _iso(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).isoformat()


def init(project: str = "default", config: dict | None = None, *, name: str = "", tags: list[str] | None = None,
         kind: str = "other", parent: int | None = None, notes: str = "", seed: int | None = None,
         url: str | None = None, token: str | None = None, offline: bool | None = None,
         offline_dir: str | os.PathLike | None = None, batch_size: int = 1000,
         flush_interval: float = DEFAULT_FLUSH_INTERVAL_S,
         max_memory_points: int = 200_000, capture_env: bool = True, create_timeout: float = 60.0,
         offline_fallback: bool = True) -> Run:
    """Start a run. Returns a Run to ``log`` to; see the module docstring.

    When the server cannot be reached within ``create_timeout`` seconds and ``offline_fallback`` is on, the run is
    logged to an offline file instead (its path is logged) so that training never waits on the tracker.
    """
    if offline is None:
        offline = os.environ.get("LABBOOK_MODE", "").lower() == "offline"
    client_id = uuid.uuid4().hex
    payload: dict[str, Any] = {
        "project": project, "name": name, "kind": kind, "config": config or {}, "tags": list(tags or []),
        "notes": notes, "client_id": client_id, "started_at": _iso(time.time()),
    }
    if parent is not None:
        payload["parent"] = parent
    if seed is not None:
        payload["seed"] = seed
    if capture_env:
        payload.update(capture_environment(seed))
    if offline:
        directory = Path(offline_dir) if offline_dir else _default_dir()
        return Run(create_payload=payload, http=None, offline_path=directory / f"{client_id}.jsonl")
    url = url or os.environ.get("LABBOOK_URL")
    token = token or os.environ.get("LABBOOK_TOKEN")
    if not url or not token:
        raise LabbookError("set url= and token= (or LABBOOK_URL and LABBOOK_TOKEN), or use offline=True")
    try:
        return Run(create_payload=payload, http=_Http(url, token), offline_path=None, batch_size=batch_size,
                   flush_interval=flush_interval, max_memory_points=max_memory_points,
                   spool_dir=Path(offline_dir) / ".spool" if offline_dir else None, create_timeout=create_timeout)
    except ServerUnreachable as exc:
        if not offline_fallback:
            raise
        path = (Path(offline_dir) if offline_dir else _default_dir()) / f"{client_id}.jsonl"
        logger.warning("labbook: %s; logging offline to %s (upload later: python -m labbook.client upload %s)",
                       exc, path, path)
        return Run(create_payload=payload, http=None, offline_path=path)


def read_offline(path: str | os.PathLike) -> tuple[dict, list[tuple], list[dict], dict | None]:
    """Parse an offline file: (create payload, points in order, updates, finish record or None)."""
    payload, points, updates, finish = None, [], [], None
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                # A crash can cut the last line short; everything before it is still good.
                logger.warning("labbook: %s:%d is not valid JSON; skipped", path, lineno)
                continue
            kind = record.get("type")
            if kind == "run":
                payload = record["payload"]
            elif kind == "metrics":
                points.extend(tuple(p) for p in record["points"])
            elif kind == "update":
                updates.append(record["fields"])
            elif kind == "artifact":
                updates.append({"_artifact": record})
            elif kind == "finish":
                finish = record
    if payload is None:
        raise LabbookError(f"{path}: no run record (is this a Labbook offline file?)")
    return payload, points, updates, finish


def upload(path: str | os.PathLike, *, url: str | None = None, token: str | None = None) -> int:
    """Send an offline file to the server; returns the run id. Safe to repeat: nothing is stored twice."""
    url = url or os.environ.get("LABBOOK_URL")
    token = token or os.environ.get("LABBOOK_TOKEN")
    if not url or not token:
        raise LabbookError("set url= and token= (or LABBOOK_URL and LABBOOK_TOKEN)")
    payload, points, updates, finish = read_offline(path)
    http = _Http(url, token)
    deadline = time.monotonic() + 600
    run = http.call_with_retry("POST", "/api/runs/", payload, deadline=deadline)
    run_id = run["id"]
    for start in range(0, len(points), SERVER_BATCH_LIMIT):
        http.call_with_retry("POST", f"/api/runs/{run_id}/metrics/",
                             _columnar(points[start:start + SERVER_BATCH_LIMIT]), deadline=deadline)
    for fields in updates:
        if "_artifact" in fields:
            art = fields["_artifact"]
            http.put_file(f"/api/runs/{run_id}/artifacts/{quote(art['path'])}", Path(art["local_path"]),
                          kind=art.get("kind", ""))
            continue
        http.call_with_retry("PATCH", f"/api/runs/{run_id}/", fields, deadline=deadline)
    if finish is not None:
        http.call_with_retry("PATCH", f"/api/runs/{run_id}/",
                             {"status": finish.get("status", "succeeded"), "ended_at": _iso(finish["ended_at"])},
                             deadline=deadline)
    return run_id


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m labbook.client", description="Labbook client tools")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("upload", help="upload offline run files (JSONL)")
    up.add_argument("files", nargs="+")
    up.add_argument("--url", default=None)
    up.add_argument("--token", default=None)
    args = parser.parse_args(argv)
    status = 0
    for f in args.files:
        try:
            run_id = upload(f, url=args.url, token=args.token)
            print(f"{f}: run {run_id}")
        except (LabbookError, OSError) as exc:
            print(f"{f}: {exc}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
