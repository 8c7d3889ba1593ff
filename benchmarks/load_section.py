"""Load: many concurrent clients against the running stack, through ``benchmarks/load.py``'s
``run_load(base_url, token, clients, duration_s) -> dict`` (throughput, latency percentiles, errors, exactly-once
check). That file is written separately; until it is there this section is skipped with a message."""
from __future__ import annotations

import importlib.util

from benchmarks.common import Context, Section, at_most

NAME = "load"
TITLE = "Load: concurrent clients against the API (benchmarks/load.py)"
NEEDS_STACK = True


def run(ctx: Context) -> Section:
    section = Section(NAME, TITLE)
    if importlib.util.find_spec("benchmarks.load") is None:
        section.skipped = "benchmarks/load.py is not there yet (it provides run_load); nothing measured"
        return section
    from benchmarks.load import run_load

    clients, duration = (10, 10) if ctx.quick else (50, 60)
    result = run_load(ctx.stack.server.url, ctx.stack.token, clients, duration)
    section.details = {"clients": clients, "duration_s": duration, "result": result}
    lat = result.get("latency_ms", {})
    verify = result.get("verification", {})
    section.add("points/s (batches of {} points, {} keys)".format(result.get("batch_points"), result.get("keys")),
                result.get("points_per_s"), "points/s")
    section.add("requests/s", result.get("requests_per_s"), "req/s")
    for pct in ("p50", "p95", "p99"):
        section.add(f"request latency {pct}", lat.get(pct), "ms")
    section.add("errors", result.get("errors"), "", goal="0", passed=at_most(result.get("errors"), 0))
    section.add("points stored exactly once", float(verify.get("stored", 0)), "points",
                goal=f"= {verify.get('expected')} sent, none missing or duplicated", passed=bool(verify.get("exact")),
                note=f"missing {verify.get('missing')}, duplicated {verify.get('duplicated')}, "
                     f"wrong values {verify.get('wrong_values')}")
    section.notes.append(f"{clients} clients for {duration} s against one uvicorn process; full result in the JSON "
                         "report.")
    return section
