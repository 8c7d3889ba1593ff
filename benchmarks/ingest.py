"""Ingestion: points/s through Labbook's HTTP batch API (uvicorn + PostgreSQL) against MLflow's tracking server
(SQLite and PostgreSQL backends), logging identical batches of 1,000 and 10,000 points. Goal: >= 20x.

Both sides get the same points (10 keys x consecutive steps, the same values and timestamps), pre-encoded as JSON
bytes and sent one request at a time over one keep-alive ``requests`` session, so the figure is the server's cost,
not the client's. Labbook takes a 10,000-point batch in one request (its limit), in the column form its client sends.
MLflow's ``runs/log-batch`` REST endpoint accepts at most 1,000 metrics per request, so a 10,000-point batch is sent
as 10 requests of 1,000, which is exactly how ``MlflowClient.log_batch`` splits it. Both servers run one worker
process (uvicorn), as each runs by default on a small machine.

For context each round also measures the floor (no goal): the HTTP round trip of the same bodies to a do-nothing
ASGI app plus a pre-encoded binary COPY of the same points into a bare table with the points' primary key. The report
notes, per batch, Labbook's time, the floor's and the budget that 20x MLflow leaves.

MLflow is an optional dependency kept out of Labbook's virtualenv: its Python comes from ``MLFLOW_PYTHON`` or
``.venv-mlflow/bin/python`` in the repository; when missing it is installed there from requirements-bench.txt (with a message).
"""
from __future__ import annotations

import json
import os
import random
import struct
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import (
    ROOT,
    Context,
    Section,
    at_least,
    free_port,
    log,
    pg_admin,
    port_open,
    progress,
    recreate_pg_database,
    start_process,
)

NAME = "ingest"
TITLE = "Ingestion: points/s through the HTTP batch API vs MLflow's tracking server"
NEEDS_STACK = True
GOAL = 20.0
KEYS = 10
MLFLOW_BATCH_LIMIT = 1000  # mlflow.utils.validation.MAX_METRICS_PER_BATCH; the REST endpoint refuses more
DEFAULT_MLFLOW_VENV = Path(os.environ.get("MLFLOW_VENV", Path(__file__).resolve().parent.parent / ".venv-mlflow"))


# --- the points ------------------------------------------------------------------------------------------------------

def make_batches(batch_size: int, count: int, seed: int = 0) -> list[list[tuple[str, int, float, float]]]:
    """``count`` batches of ``batch_size`` points: KEYS keys, each with consecutive steps (a run logging 10 metrics
    per step)."""
    rng = random.Random(seed)
    per_key = batch_size // KEYS
    t0 = 1_700_000_000.0
    batches = []
    for b in range(count):
        batch = []
        for k in range(KEYS):
            for i in range(per_key):
                step = b * per_key + i
                batch.append((f"metric_{k}", step, rng.random(), t0 + step * 0.01))
        batches.append(batch)
    return batches


def labbook_body(batch) -> bytes:
    """The column form labbook.client sends (one series per key)."""
    series: dict[str, dict] = {}
    for key, step, value, wall in batch:
        s = series.setdefault(key, {"key": key, "steps": [], "values": [], "wall_times": []})
        s["steps"].append(step)
        s["values"].append(value)
        s["wall_times"].append(wall)
    return json.dumps({"series": list(series.values())}).encode()


def mlflow_bodies(run_id: str, batch) -> list[bytes]:
    """log-batch bodies of at most 1,000 metrics each, in order (as MlflowClient.log_batch chunks them)."""
    out = []
    for start in range(0, len(batch), MLFLOW_BATCH_LIMIT):
        chunk = batch[start:start + MLFLOW_BATCH_LIMIT]
        metrics = [{"key": k, "value": v, "timestamp": int(w * 1000), "step": s} for k, s, v, w in chunk]
        out.append(json.dumps({"run_id": run_id, "metrics": metrics}).encode())
    return out


def send_all(session, url: str, bodies: list[bytes], desc: str, budget_s: float) -> tuple[int, float]:
    """POST each body in order; returns (requests sent, seconds). Stops early after ``budget_s`` seconds (a slow
    baseline then has fewer points, but its rate is still a rate over whole batches)."""
    start = time.perf_counter()
    sent = 0
    for body in progress(bodies, desc=desc, unit="req"):
        _post(session, url, body)
        sent += 1
        if time.perf_counter() - start > budget_s:
            break
    return sent, time.perf_counter() - start


# --- Labbook ---------------------------------------------------------------------------------------------------------

def labbook_rate(ctx: Context, batch_size: int, bodies: list[bytes], budget_s: float) -> dict:
    stack = ctx.stack
    http = stack.http()
    base = stack.server.url
    run = http.post(f"{base}/api/runs/", json={"project": "bench-ingest", "name": f"ingest-{batch_size}"}).json()
    url = f"{base}/api/runs/{run['id']}/metrics/"
    send_all(http, url, bodies[:1], "labbook warm-up", 60)  # connection, first queries, caches
    sent, seconds = send_all(http, url, bodies[1:], f"labbook {batch_size}-pt batches", budget_s)
    points = sent * batch_size
    stored = http.get(f"{base}/api/runs/{run['id']}/").json().get("metric_summary", {})
    count = sum((v or {}).get("count", 0) for v in stored.values())
    return {"points": points, "seconds": seconds, "rate": points / seconds, "requests": sent,
            "stored_points": count, "expected_points": points + batch_size}


# --- the floor: HTTP alone, storage alone ----------------------------------------------------------------------------
# What no server that stores one PostgreSQL row per point and answers over HTTP can beat, measured with the same
# points in the same rounds: the HTTP round trip of the same bodies to a do-nothing ASGI app (benchmarks/null_asgi.py,
# same uvicorn flags, same client) plus a binary COPY of the same points into a bare table with the points table's
# primary key, committed per batch (no authentication, validation, run lock, rollups, summary or live event).

FLOOR_TABLE = "bench_floor_points"


def start_null_server(ctx: Context):
    port = free_port()
    return start_process(
        [sys.executable, "-m", "uvicorn", "benchmarks.null_asgi:app", "--host", "127.0.0.1", "--port", str(port),
         "--no-access-log", "--log-level", "warning"],
        ctx.scratch / "null-asgi.log", ctx.stack.env(), lambda: port_open(port), what="uvicorn (null app)",
        url=f"http://127.0.0.1:{port}")


def http_floor(url: str, bodies: list[bytes]) -> float:
    """Seconds to POST every body after the first (the warm-up) to the null app, as labbook_rate sends them."""
    import requests

    session = requests.Session()
    send_all(session, url, bodies[:1], "null app warm-up", 60)
    return send_all(session, url, bodies[1:], "null app (HTTP floor)", 600)[1]


_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_COPY_TRAILER = struct.pack("!h", -1)


def copy_payload(batch) -> bytes:
    """The batch in PostgreSQL's binary COPY format, rows (run_id=1, key, step, value, wall_time): built before the
    clock starts, so that the storage floor is the server's cost (and the round trips), not Python's."""
    parts = [_COPY_HEADER]
    for key, step, value, wall in batch:
        encoded = key.encode()
        parts.append(struct.pack(f"!hiqi{len(encoded)}siqidid", 5, 8, 1, len(encoded), encoded, 8, step, 8, value,
                                 8, wall))
    parts.append(_COPY_TRAILER)
    return b"".join(parts)


def storage_floor(payloads: list[bytes], rows_sent: int) -> float:
    """Seconds to COPY every payload (copy_payload) after the first into a fresh bare table, one transaction (and
    commit) each; checks that all ``rows_sent`` rows arrived."""
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {FLOOR_TABLE}")
        conn.execute(f'CREATE TABLE {FLOOR_TABLE} (run_id bigint, key text COLLATE "C", step bigint, value float8, '
                     "wall_time float8, PRIMARY KEY (run_id, key, step))")
        cur = conn.cursor()
        start = 0.0
        for i, payload in enumerate(payloads):
            if i == 1:
                start = time.perf_counter()
            with conn.transaction(), cur.copy(f"COPY {FLOOR_TABLE} FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(payload)
        seconds = time.perf_counter() - start
        count = conn.execute(f"SELECT count(*) FROM {FLOOR_TABLE}").fetchone()[0]
        conn.execute(f"DROP TABLE {FLOOR_TABLE}")
    if count != rows_sent:
        raise RuntimeError(f"storage floor: {count} rows stored, {rows_sent} sent")
    return seconds


def floor_rate(null_url: str | None, batch_size: int, bodies: list[bytes], payloads: list[bytes] | None) -> dict:
    """The floor for one round: HTTP alone (when the null app runs), storage alone (on PostgreSQL: ``payloads``)."""
    points = (len(bodies) - 1) * batch_size
    out = {"points": points, "http_seconds": 0.0, "storage_seconds": 0.0}
    if null_url:
        out["http_seconds"] = http_floor(null_url, bodies)
    if payloads:
        out["storage_seconds"] = storage_floor(payloads, len(payloads) * batch_size)
    out["seconds"] = out["http_seconds"] + out["storage_seconds"]
    out["rate"] = points / out["seconds"] if out["seconds"] else None
    return out


# --- MLflow ----------------------------------------------------------------------------------------------------------

def mlflow_python() -> tuple[str | None, str]:
    """The Python of a virtualenv with MLflow; installs it on demand. Returns (path or None, message)."""
    candidates = [os.environ.get("MLFLOW_PYTHON"), str(DEFAULT_MLFLOW_VENV / "bin" / "python")]
    for python in filter(None, candidates):
        if Path(python).exists():
            probe = subprocess.run([python, "-c", "import mlflow; print(mlflow.__version__)"], capture_output=True,
                                   text=True, check=False)
            if probe.returncode == 0:
                return python, f"MLflow {probe.stdout.strip()} from {python}"
    if os.environ.get("LABBOOK_BENCH_NO_INSTALL"):
        return None, "MLflow not found (set MLFLOW_PYTHON) and LABBOOK_BENCH_NO_INSTALL is set"
    log(f"MLflow is not installed: installing requirements-bench.txt into {DEFAULT_MLFLOW_VENV} "
        "(a separate virtualenv; Labbook's .venv is left alone). This takes a few minutes, once.")
    try:
        if not (DEFAULT_MLFLOW_VENV / "bin" / "python").exists():
            subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(DEFAULT_MLFLOW_VENV)],
                           check=True)
        subprocess.run([str(DEFAULT_MLFLOW_VENV / "bin" / "python"), "-m", "pip", "install", "-q", "-r",
                        str(ROOT / "requirements-bench.txt")], check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        return None, f"could not install MLflow into {DEFAULT_MLFLOW_VENV}: {exc}"
    return str(DEFAULT_MLFLOW_VENV / "bin" / "python"), f"MLflow installed into {DEFAULT_MLFLOW_VENV}"


def start_mlflow(ctx: Context, python: str, backend_uri: str, label: str):
    import requests

    port = free_port()
    artifacts = ctx.scratch / f"mlartifacts-{label}"
    artifacts.mkdir(exist_ok=True)

    def healthy() -> bool:
        if not port_open(port):
            return False
        try:
            return requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    log(f"starting MLflow tracking server ({label}); the first start creates its schema")
    return start_process(
        [python, "-m", "mlflow", "server", "--backend-store-uri", backend_uri, "--default-artifact-root",
         artifacts.as_uri(), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        ctx.scratch / f"mlflow-{label}.log", {**os.environ, "MLFLOW_TRACKING_URI": ""}, healthy,
        timeout=240, what=f"mlflow server ({label})", cwd=ctx.scratch, url=f"http://127.0.0.1:{port}")


def mlflow_rate(server_url: str, batch_size: int, batches, budget_s: float) -> dict:
    import requests

    s = requests.Session()
    api = f"{server_url}/api/2.0/mlflow"
    exp = s.post(f"{api}/experiments/create", json={"name": f"bench-{batch_size}-{time.time_ns()}"}).json()
    run = s.post(f"{api}/runs/create", json={"experiment_id": exp["experiment_id"],
                                              "start_time": int(time.time() * 1000)}).json()
    run_id = run["run"]["info"]["run_id"]
    url = f"{api}/runs/log-batch"
    bodies = [mlflow_bodies(run_id, b) for b in batches]
    send_all(s, url, bodies[0], "mlflow warm-up", 60)
    start = time.perf_counter()
    done = 0
    with progress(total=len(bodies) - 1, desc=f"mlflow {batch_size}-pt batches", unit="batch") as bar:
        for group in bodies[1:]:
            for body in group:  # one logical batch = len(group) requests
                _post(s, url, body)
            done += 1
            bar.update()
            if time.perf_counter() - start > budget_s:
                break
    seconds = time.perf_counter() - start
    return {"points": done * batch_size, "seconds": seconds, "rate": done * batch_size / seconds,
            "requests": done * len(bodies[0])}


def _post(session, url: str, body: bytes) -> None:
    resp = session.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=120)
    if resp.status_code >= 400:
        raise RuntimeError(f"{url}: HTTP {resp.status_code}: {resp.text[:300]}")


# --- the benchmark ---------------------------------------------------------------------------------------------------

def _checkpoint() -> None:
    """Flush PostgreSQL's dirty pages before a measurement, so that none pays for the writes of the one before it
    (the servers share one PostgreSQL). Skipped where the bench user may not (or there is no PostgreSQL)."""
    if not port_open(5432):
        return
    try:
        pg_admin("CHECKPOINT")
    except Exception as exc:  # noqa: BLE001 - a missing privilege only makes the figures noisier
        log(f"CHECKPOINT skipped: {exc}")


def _accumulate(total: dict | None, part: dict) -> dict:
    if total is None:
        return dict(part)
    out = dict(total)
    for field in ("points", "seconds", "requests", "stored_points", "expected_points", "http_seconds",
                  "storage_seconds"):
        if field in part:
            out[field] = out.get(field, 0) + part[field]
    out["rate"] = out["points"] / out["seconds"] if out["seconds"] else None
    return out


def run(ctx: Context) -> Section:
    section = Section(NAME, TITLE)
    total_points = 20_000 if ctx.quick else 100_000
    budget_s = 15.0 if ctx.quick else 60.0
    rounds = 2 if ctx.quick else 5
    sizes = (1_000, 10_000)
    plan = {size: make_batches(size, total_points // size + 1, seed=size) for size in sizes}
    # Encoded once: Labbook and the null app get the same bodies; the storage floor its COPY data (PostgreSQL only).
    bodies = {size: [labbook_body(b) for b in plan[size]] for size in sizes}
    on_postgres = os.environ.get("DATABASE_URL", "").startswith("postgres")
    payloads = {size: [copy_payload(b) for b in plan[size]] if on_postgres else None for size in sizes}

    python, message = mlflow_python()
    section.notes.append(message if python else f"MLflow baseline missing: {message}")
    backends: list[tuple[str, str]] = []
    if python:
        backends.append(("sqlite", f"sqlite:///{ctx.scratch / 'mlflow.sqlite3'}"))
        if port_open(5432):
            backends.append(("postgresql", recreate_pg_database("mlflow_bench").replace(
                # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; MLflow's documented driver is psycopg2.
                "postgres://", "postgresql+psycopg2://", 1)))
        else:
            section.notes.append("No PostgreSQL: MLflow's PostgreSQL backend was not measured.")
    servers = {}
    null_server = None
    try:
        try:
            null_server = start_null_server(ctx)
        except (RuntimeError, TimeoutError) as exc:
            section.notes.append(f"The null ASGI app (HTTP floor) did not start: {str(exc)[:300]}")
        for label, uri in backends:
            try:
                servers[label] = start_mlflow(ctx, python, uri, label)
            except (RuntimeError, TimeoutError) as exc:
                section.notes.append(f"MLflow ({label}) did not start: {str(exc)[:300]}")
        backends = [(label, uri) for label, uri in backends if label in servers]
        # Interleaved rounds: this machine's speed drifts by tens of percent over minutes (other tenants), so each
        # round measures Labbook and then each MLflow backend back to back, each on a fresh run, and the rates are
        # totals over all rounds: drift hits both sides alike instead of whichever ran in a slow minute.
        results: dict[str, dict] = {}
        for size in sizes:
            for r in range(rounds):
                log(f"ingest, {size:,}-point batches: round {r + 1} of {rounds}")
                _checkpoint()
                key = f"labbook/{size}"
                results[key] = _accumulate(results.get(key), labbook_rate(ctx, size, bodies[size], budget_s=600))
                _checkpoint()
                key = f"floor/{size}"
                results[key] = _accumulate(results.get(key), floor_rate(null_server and null_server.url, size,
                                                                        bodies[size], payloads[size]))
                for label, _ in backends:
                    _checkpoint()
                    key = f"mlflow-{label}/{size}"
                    results[key] = _accumulate(results.get(key), mlflow_rate(servers[label].url, size, plan[size],
                                                                           budget_s / rounds))
    finally:
        for server in [*servers.values(), *filter(None, [null_server])]:
            server.stop()

    section.details = {"results": results, "keys_per_batch": KEYS, "mlflow_request_limit": MLFLOW_BATCH_LIMIT}
    for size in sizes:
        ours = results[f"labbook/{size}"]
        if ours["stored_points"] != ours["expected_points"]:
            section.notes.append(f"{size}-point batches: {ours['stored_points']} points stored, "
                                 f"{ours['expected_points']} expected")
        measured = [label for label, _ in backends if f"mlflow-{label}/{size}" in results]
        for label in measured or ["(none)"]:
            base = results.get(f"mlflow-{label}/{size}")
            base_rate = base["rate"] if base else None
            ratio = ours["rate"] / base_rate if base_rate else None
            base_label = (f"MLflow 3.17.2, {label} backend" + (" (10 requests of 1,000)" if size > 1000 else "")
                          if base else "MLflow not measured")
            section.add(f"points/s, {size:,}-point batches", ours["rate"], "points/s", base_rate, base_label,
                        goal=f">= {GOAL:g}x baseline", passed=at_least(ratio, GOAL),
                        note=f"{ours['points']:,} points in {ours['requests']} requests; MLflow "
                             f"{base['points']:,} points" if base else "")
    for size in sizes:
        floor, ours = results.get(f"floor/{size}"), results[f"labbook/{size}"]
        rated = [results[f"mlflow-{label}/{size}"] for label, _ in backends if f"mlflow-{label}/{size}" in results]
        if not floor or not floor["storage_seconds"]:  # no PostgreSQL: no storage floor to compare with
            continue
        fastest = max(rated, key=lambda r: r["rate"], default=None)  # the strictest baseline
        section.add(f"floor (HTTP round trip + COPY, no Django), {size:,}-point batches", floor["rate"], "points/s",
                    fastest["rate"] if fastest else None,
                    "the faster MLflow backend" if fastest else "MLflow not measured", goal="", passed=None,
                    note="context: the most a server storing one PostgreSQL row per point could reach")
        per_batch = {name: 1000 * floor[f"{name}_seconds"] * size / floor["points"] for name in ("http", "storage")}
        line = (f"{size:,}-point batches, per batch: Labbook {1000 * size / ours['rate']:.1f} ms; floor "
                f"{sum(per_batch.values()):.1f} ms (HTTP round trip {per_batch['http']:.1f} ms + COPY and commit "
                f"{per_batch['storage']:.1f} ms)")
        if fastest:
            line += (f"; MLflow {1000 * size / fastest['rate']:.1f} ms, so {GOAL:g}x needs "
                     f"<= {1000 * size / fastest['rate'] / GOAL:.1f} ms")
        section.notes.append(line + ".")
    section.notes.append("One client, sequential requests, bodies pre-encoded; both servers: uvicorn, 1 worker process. "
                         "MLflow's log-batch takes at most 1,000 metrics per request, so each 10,000-point batch is 10 "
                         f"requests, as MlflowClient.log_batch splits it. {rounds} interleaved rounds (Labbook, then each "
                         "MLflow backend, each on a fresh run, each after a CHECKPOINT); each MLflow backend sends for "
                         f"{budget_s / rounds:g} s per round (a rate over whole batches); rates are totals over the rounds.")
    return section
