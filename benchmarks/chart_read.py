"""Chart read: a 1M-point series read at ``max_points=1000`` through the series API (server time, goal < 150 ms) and
its shape fidelity (per bucket, the returned min and max against the raw series' min and max).

The baseline is the naive full fetch a chart without server-side downsampling needs: every raw point, paged through
``/series/<key>/raw/`` (10,000 per request, the endpoint's limit). Fidelity is also shown against the naive
client-side alternative of keeping every n-th point (stride decimation to the same number of points), which is what
loses spikes.
"""
from __future__ import annotations

import statistics
import time

import numpy as np

from benchmarks.common import Context, Section, at_most, percentile, progress

NAME = "chart_read"
TITLE = "Chart read: 1M-point series at max_points=1000 vs naive full fetch"
NEEDS_STACK = True
GOAL_MS = 150.0
KEY = "loss"
MAX_POINTS = 1000


def make_series(n: int, seed: int = 0) -> np.ndarray:
    """A training-loss-like curve: decay, noise, and rare spikes (what a chart must not hide)."""
    rng = np.random.default_rng(seed)
    steps = np.arange(n)
    values = 2.0 * np.exp(-steps / (n / 5)) + 0.05 * rng.standard_normal(n)
    spikes = rng.choice(n, size=max(1, n // 20_000), replace=False)
    values[spikes] += rng.uniform(1.0, 3.0, size=len(spikes))
    return values


def load_points(run, values: np.ndarray, chunk: int = 50_000) -> None:
    """Store the series in chunks through the ingestion service (the same code path as the batch API)."""
    from experiments import services
    from experiments.ingest import Point

    t0 = 1_700_000_000.0
    for start in progress(range(0, len(values), chunk), desc=f"storing {len(values):,} points", unit="chunk"):
        pts = [Point(KEY, int(i), float(values[i]), t0 + i * 0.01) for i in range(start, min(start + chunk,
                                                                                              len(values)))]
        services.metrics_ingest(run=run, points=pts)


def bucket_errors(values: np.ndarray, steps: list[int], got: list[float], buckets: int) -> float:
    """Largest |raw min - returned min| or |raw max - returned max| over the buckets (same bucketing as the server:
    ``(step - lo) * buckets // n``). A bucket with no returned point counts as its whole raw range missed."""
    n = len(values)
    edges = [(-(-b * n // buckets)) for b in range(buckets + 1)]  # first step of each bucket: ceil(b*n/buckets)
    got_steps = np.asarray(steps)
    got_vals = np.asarray(got)
    worst = 0.0
    for b in range(buckets):
        lo, hi = edges[b], edges[b + 1]
        if hi <= lo:
            continue
        raw = values[lo:hi]
        mask = (got_steps >= lo) & (got_steps < hi)
        if not mask.any():
            worst = max(worst, float(raw.max() - raw.min()))
            continue
        worst = max(worst, abs(float(raw.min()) - float(got_vals[mask].min())),
                    abs(float(raw.max()) - float(got_vals[mask].max())))
    return worst


def run(ctx: Context) -> Section:
    from django.db import connection

    from experiments import selectors, services
    from experiments.models import Run

    section = Section(NAME, TITLE)
    n = 200_000 if ctx.quick else 1_000_000
    repeats = 5 if ctx.quick else 15
    stack = ctx.stack
    project = services.project_get_or_create(owner=stack.user, name="bench-chart")
    run_obj = services.run_create(owner=stack.user, project=project, name=f"chart-{n}")
    values = make_series(n)
    load_points(run_obj, values)
    with connection.cursor() as cur:
        cur.execute("ANALYZE")  # fresh statistics, as autovacuum would have by the time anyone reads the chart

    base = stack.server.url
    http = stack.http()
    url = f"{base}/api/runs/{run_obj.pk}/series/"
    params = {"keys": KEY, "max_points": MAX_POINTS}
    http.get(url, params=params).raise_for_status()  # warm-up: connection, caches
    times = []
    for _ in progress(range(repeats), desc="downsampled reads", unit="req"):
        t = time.perf_counter()
        resp = http.get(url, params=params)
        times.append(time.perf_counter() - t)
        resp.raise_for_status()
    series = resp.json()["series"][0]

    fresh = Run.objects.get(pk=run_obj.pk)
    inproc = []
    for _ in range(repeats):
        t = time.perf_counter()
        selectors.series_downsampled(fresh, KEY, max_points=MAX_POINTS)
        inproc.append(time.perf_counter() - t)

    # Baseline: every raw point, page by page, as a client without downsampling would fetch it.
    raw_url = f"{base}/api/runs/{run_obj.pk}/series/{KEY}/raw/"
    fetched, after, t = 0, None, time.perf_counter()
    with progress(total=n, desc="naive full fetch", unit="pt", unit_scale=True) as bar:
        while True:
            page = http.get(raw_url, params={"limit": 10_000, **({"after_step": after} if after is not None else {})},
                            timeout=120).json()
            fetched += len(page["points"])
            bar.update(len(page["points"]))
            after = page["next_after_step"]
            if after is None:
                break
    full_s = time.perf_counter() - t

    buckets = max(1, (MAX_POINTS - 2) // 3)
    err = bucket_errors(values, series["steps"], series["values"], buckets)
    stride = max(1, n // len(series["steps"]))
    decimated = np.arange(0, n, stride)
    err_stride = bucket_errors(values, decimated.tolist(), values[decimated].tolist(), buckets)
    value_range = float(values.max() - values.min())

    med_ms = statistics.median(times) * 1000
    section.add(f"series read, {n:,} points -> max_points={MAX_POINTS} (HTTP, median)", med_ms, "ms", full_s * 1000,
                f"naive full fetch of {fetched:,} raw points ({-(-n // 10_000)} requests)", goal=f"< {GOAL_MS:g} ms",
                passed=at_most(med_ms, GOAL_MS),
                note=f"p95 {percentile(times, 95) * 1000:.0f} ms over {repeats} reads; in-process selector (SQL only, "
                     f"no HTTP/JSON) median {statistics.median(inproc) * 1000:.0f} ms; {len(series['steps'])} points "
                     f"returned")
    section.add("shape fidelity: max per-bucket error of min/max vs raw", err, "", err_stride,
                f"every {stride}-th point (stride decimation)", goal="0 (exact min/max per bucket)",
                passed=err <= 1e-9 * max(1.0, value_range),
                note=f"{buckets} buckets; series range {value_range:.3f}; first and last points kept: "
                     f"{series['steps'][0] == 0 and series['steps'][-1] == n - 1}")
    section.details = {"points": n, "repeats": repeats, "http_ms": [x * 1000 for x in times],
                       "selector_ms": [x * 1000 for x in inproc], "full_fetch_s": full_s, "returned": len(series["steps"]),
                       "bucket_error": err, "stride_error": err_stride, "range": value_range}
    section.notes.append("Server time is measured at the client on localhost (request to last byte), so it includes "
                         "HTTP and JSON; the in-process figure is the SQL downsampling alone.")
    return section
