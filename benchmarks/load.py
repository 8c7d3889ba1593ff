"""Load: N concurrent clients log metrics for D seconds against a running server, then every point is checked.

    .venv/bin/python benchmarks/load.py --url http://127.0.0.1:8000 --token lbk_... [--clients 50] [--duration 60]
    .venv/bin/python benchmarks/load.py --self-host [--clients 10 --duration 10] [--json out.json]

Each client is a thread with its own HTTP session and run: it posts batches of ``--batch`` points (``--keys`` keys ×
consecutive steps) to ``/api/runs/<id>/metrics/`` back to back, timing every request. Afterwards the script reads each
run's series back page by page and checks that every acknowledged point is stored exactly once (no point missing, no
step twice, values as sent). It reports throughput (points/s and requests/s), p50/p95/p99 request latency, errors
(must be 0) and the verification, as a table and optionally as JSON.

``--self-host`` creates a scratch PostgreSQL database (``--pg`` server URL, default the local one), migrates it,
creates a user and token, starts uvicorn (``--web-workers`` processes) on it, runs the load and drops the database.
``run_load(base_url, token, clients, duration_s)`` is the entry point for the benchmarks runner.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
RAW_PAGE = 10_000  # the server's largest raw-series page


@dataclass
class ClientResult:
    run_id: int | None = None
    latencies_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    acked: dict[str, int] = field(default_factory=dict)  # key -> number of consecutive steps acknowledged (0..n-1)
    duplicates_reported: int = 0
    points: int = 0


def _value(client: int, key_index: int, step: int) -> float:
    """A value the verifier can recompute: distinct per client, key and step, exact in binary floating point."""
    return client * 1_000_000 + key_index * 100_000 + step / 4


def _client(i: int, base_url: str, token: str, deadline_box: list[float], batch: int, keys: int, tag: str,
            result: ClientResult, start: threading.Barrier) -> None:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    try:
        r = session.post(f"{base_url}/api/runs/", json={"project": f"load-{tag}", "name": f"client-{i}",
                                                        "client_id": f"load-{tag}-{i}"}, timeout=30)
        r.raise_for_status()
        result.run_id = r.json()["id"]
    except (requests.RequestException, KeyError, ValueError) as exc:
        result.errors.append(f"create run: {exc}")
        start.abort()
        return
    try:
        start.wait()
    except threading.BrokenBarrierError:
        return
    deadline = deadline_box[0]  # set by run_load just before it releases the barrier
    names = [f"load/m{k}" for k in range(keys)]
    per_key = max(1, batch // keys)
    step = 0
    url = f"{base_url}/api/runs/{result.run_id}/metrics/"
    while time.monotonic() < deadline:
        steps = list(range(step, step + per_key))
        body = {"series": [{"key": name, "steps": steps, "values": [_value(i, k, s) for s in steps]}
                           for k, name in enumerate(names)]}
        t0 = time.perf_counter()
        try:
            r = session.post(url, json=body, timeout=60)
            elapsed = time.perf_counter() - t0
        except requests.RequestException as exc:
            result.errors.append(f"step {step}: {type(exc).__name__}: {exc}")
            break  # unknown whether stored: stop this client so verification stays exact
        result.latencies_s.append(elapsed)
        if r.status_code not in (200, 201):
            result.errors.append(f"step {step}: HTTP {r.status_code} {r.text[:200]}")
            break
        result.duplicates_reported += int(r.json().get("duplicates", 0))
        step += per_key
        result.points += per_key * keys
    result.acked = {name: step for name in names}
    session.close()


def _verify(base_url: str, token: str, results: list[ClientResult]) -> dict[str, Any]:
    """Read every series back and compare with what was acknowledged: exactly once, values as sent."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    expected = stored = missing = duplicated = wrong = 0
    for i, res in enumerate(results):
        if res.run_id is None:
            continue
        for key, n in sorted(res.acked.items()):
            expected += n
            seen: set[int] = set()
            after = -1
            while True:
                r = session.get(f"{base_url}/api/runs/{res.run_id}/series/{key}/raw/",
                                params={"after_step": after, "limit": RAW_PAGE}, timeout=60)
                r.raise_for_status()
                page = r.json()
                for step, value, *_ in page["points"]:
                    stored += 1
                    if step in seen:
                        duplicated += 1
                    seen.add(step)
                    if value != _value(i, int(key.rsplit("m", 1)[1]), step):
                        wrong += 1
                if page["next_after_step"] is None:
                    break
                after = page["next_after_step"]
            missing += sum(1 for s in range(n) if s not in seen)
            duplicated += sum(1 for s in seen if s >= n)  # stored but never acknowledged as new
    session.close()
    return {"expected": expected, "stored": stored, "missing": missing, "duplicated": duplicated,
            "wrong_values": wrong, "exact": stored == expected and not (missing or duplicated or wrong)}


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def run_load(base_url: str, token: str, clients: int = 50, duration_s: float = 60.0, *, batch: int = 100,
             keys: int = 4) -> dict[str, Any]:
    """Run the load and the verification; returns the figures (latencies in milliseconds)."""
    base_url = base_url.rstrip("/")
    tag = uuid.uuid4().hex[:8]
    results = [ClientResult() for _ in range(clients)]
    start = threading.Barrier(clients + 1)
    deadline_box: list[float] = []
    threads = []
    for i in range(clients):
        # The deadline is only known once every client has its run; each thread reads it after the barrier.
        t = threading.Thread(target=_client, args=(i, base_url, token, deadline_box, batch, keys, tag, results[i],
                                                   start), daemon=True)
        threads.append(t)
    for t in threads:
        t.start()
    try:
        # Everyone created a run: start the clock, then release them.
        while start.n_waiting < clients and not start.broken:
            time.sleep(0.01)
        deadline_box.append(time.monotonic() + duration_s)
        t0 = time.monotonic()
        start.wait()
    except threading.BrokenBarrierError:
        t0 = time.monotonic()
        deadline_box.append(t0)
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    latencies = sorted(x for r in results for x in r.latencies_s)
    errors = [e for r in results for e in r.errors]
    points = sum(r.points for r in results)
    verification = _verify(base_url, token, results)
    return {
        "clients": clients, "duration_s": round(wall, 2), "batch_points": batch, "keys": keys,
        "requests": len(latencies), "points": points,
        "points_per_s": round(points / wall, 1) if wall else 0.0,
        "requests_per_s": round(len(latencies) / wall, 1) if wall else 0.0,
        "latency_ms": {"p50": round(_percentile(latencies, 0.50) * 1000, 1),
                       "p95": round(_percentile(latencies, 0.95) * 1000, 1),
                       "p99": round(_percentile(latencies, 0.99) * 1000, 1),
                       "mean": round(statistics.fmean(latencies) * 1000, 1) if latencies else float("nan"),
                       "max": round(latencies[-1] * 1000, 1) if latencies else float("nan")},
        "errors": len(errors), "error_samples": errors[:5],
        "duplicates_reported": sum(r.duplicates_reported for r in results),
        "verification": verification,
        "ok": not errors and verification["exact"],
    }


def print_table(report: dict[str, Any]) -> None:
    v = report["verification"]
    lat = report["latency_ms"]
    rows = [
        ("clients", report["clients"]), ("duration (s)", report["duration_s"]),
        ("requests", report["requests"]), ("points", report["points"]),
        ("throughput (points/s)", report["points_per_s"]), ("throughput (requests/s)", report["requests_per_s"]),
        ("latency p50 (ms)", lat["p50"]), ("latency p95 (ms)", lat["p95"]), ("latency p99 (ms)", lat["p99"]),
        ("latency max (ms)", lat["max"]), ("errors (must be 0)", report["errors"]),
        ("stored / expected", f"{v['stored']} / {v['expected']}"),
        ("missing / duplicated / wrong", f"{v['missing']} / {v['duplicated']} / {v['wrong_values']}"),
        ("every point stored exactly once", "yes" if v["exact"] else "NO"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{'metric':<{width}}  value")
    print(f"{'-' * width}  {'-' * 20}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    for sample in report["error_samples"]:
        print(f"error: {sample}", file=sys.stderr)


# --- --self-host: a scratch database and a uvicorn of our own ---------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _psql(pg_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql)


class SelfHosted:
    """A scratch PostgreSQL database with a migrated schema, a user with a token, and uvicorn serving it."""

    def __init__(self, pg_url: str, redis_url: str, web_workers: int):
        self.pg_url = pg_url.rstrip("/")
        self.db = f"labbook_load_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.redis_url = redis_url
        self.web_workers = web_workers
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.token = ""

    def env(self) -> dict[str, str]:
        base, _, _ = self.pg_url.rpartition("/")
        return {**os.environ, "DATABASE_URL": f"{base}/{self.db}", "REDIS_URL": self.redis_url,
                "DJANGO_SETTINGS_MODULE": "labbook.settings", "LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}

    def __enter__(self) -> SelfHosted:
        _psql(self.pg_url, f'CREATE DATABASE "{self.db}"')
        try:
            py = sys.executable
            subprocess.run([py, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=self.env(), check=True)
            subprocess.run([py, "manage.py", "shell", "-v", "0", "-c",
                            "from django.contrib.auth import get_user_model as g; "
                            "g().objects.create_user('load', password=None)"], cwd=ROOT, env=self.env(), check=True)
            self.token = subprocess.run([py, "manage.py", "create_token", "load", "--name", "load"], cwd=ROOT,
                                        env=self.env(), check=True, capture_output=True, text=True).stdout.strip()
            port = _free_port()
            self.proc = subprocess.Popen(
                [py, "-m", "uvicorn", "labbook.asgi:application", "--host", "127.0.0.1", "--port", str(port),
                 "--workers", str(self.web_workers), "--no-access-log", "--log-level", "warning"],
                cwd=ROOT, env=self.env(), start_new_session=True)
            self.url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:  # listening (healthz would wait on a worker ping; the load needs no worker)
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        break
                except OSError:
                    pass
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("uvicorn did not start")
                time.sleep(0.2)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        _psql(self.pg_url, f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("LABBOOK_URL"), help="server base URL")
    parser.add_argument("--token", default=os.environ.get("LABBOOK_TOKEN"), help="API token")
    parser.add_argument("--self-host", action="store_true", help="start uvicorn on a scratch PostgreSQL database")
    parser.add_argument("--pg", default=os.environ.get("LOAD_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
                        help="PostgreSQL server for --self-host (a database URL; a scratch database is made)")
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
                        help="Redis for --self-host (live updates are published there)")
    parser.add_argument("--web-workers", type=int, default=2, help="uvicorn worker processes for --self-host")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of logging")
    parser.add_argument("--batch", type=int, default=100, help="points per request")
    parser.add_argument("--keys", type=int, default=4, help="metric keys per client")
    parser.add_argument("--json", dest="json_path", help="also write the report as JSON to this file")
    args = parser.parse_args(argv)
    if args.self_host:
        with SelfHosted(args.pg, args.redis, args.web_workers) as server:
            report = run_load(server.url, server.token, args.clients, args.duration, batch=args.batch, keys=args.keys)
    else:
        if not args.url or not args.token:
            parser.error("give --url and --token (or LABBOOK_URL/LABBOOK_TOKEN), or --self-host")
        report = run_load(args.url, args.token, args.clients, args.duration, batch=args.batch, keys=args.keys)
    print_table(report)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
