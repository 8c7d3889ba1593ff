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
    # run_load's keys are its own: every number becomes a figure (errors with the goal 0), every boolean a check
    # (the exactly-once check), and the whole dict stays in the JSON report.
    for key, value in result.items():
        if isinstance(value, bool):
            section.add(key.replace("_", " "), 1.0 if value else 0.0, "", goal="true", passed=value)
        elif isinstance(value, int | float):
            is_error = "error" in key or "fail" in key
            unit = "ms" if key.endswith("_ms") else "s" if key.endswith("_s") else "req/s" if (
                "throughput" in key or key.endswith("rps")) else ""
            section.add(key.replace("_", " "), float(value), unit, goal="0" if is_error else "",
                        passed=at_most(value, 0) if is_error else None)
    section.notes.append(f"{clients} clients for {duration} s against one uvicorn process; full result in the JSON "
                         "report.")
    return section
