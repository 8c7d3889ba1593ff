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
    # run_load's keys are its own: show the usual ones when present, keep the whole dict in the JSON report.
    for key, unit in (("throughput", "req/s"), ("throughput_rps", "req/s"), ("p50_ms", "ms"), ("p95_ms", "ms"),
                      ("p99_ms", "ms")):
        if isinstance(result.get(key), int | float):
            section.add(f"{key} ({clients} clients x {duration} s)", float(result[key]), unit)
    errors = result.get("errors")
    if isinstance(errors, int | float):
        section.add("errors", float(errors), "", goal="0", passed=at_most(errors, 0))
    for key in ("exactly_once", "exactly_once_ok"):
        if key in result:
            section.add("exactly-once check", 1.0 if result[key] else 0.0, "", goal="holds",
                        passed=bool(result[key]))
    section.notes.append(f"{clients} clients for {duration} s against one uvicorn process; full result in the JSON "
                         "report.")
    return section
