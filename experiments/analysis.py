"""Comparison helpers shared by the compare page and the API: Pareto fronts, config diffs, EMA smoothing.

The same Pareto rule is implemented in static/js/experiments/compare.js for interactive axis changes; this module
is the tested reference (and serves the server-rendered default).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def pareto_front(points: Sequence[tuple[float, float]], *, maximize_x: bool, maximize_y: bool) -> list[int]:
    """Indices of the non-dominated points, ordered by x ascending.

    A point dominates another when it is at least as good on both axes and strictly better on one
    ("good" = larger when maximizing, smaller when minimizing). Points with a non-finite coordinate are ignored;
    exact duplicates are all kept (none dominates the other). O(n log n): sort by x from best to worst, then sweep
    keeping the best y seen so far.
    """
    sx = 1.0 if maximize_x else -1.0
    sy = 1.0 if maximize_y else -1.0
    items = [(sx * x, sy * y, i) for i, (x, y) in enumerate(points)
             if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)]
    # Best x first; among equal x, best y first so that the worse ones at the same x are dominated.
    items.sort(key=lambda t: (-t[0], -t[1]))
    front: list[int] = []
    best_y = -math.inf
    best_at_x: tuple[float, float] | None = None
    for gx, gy, i in items:
        if gy > best_y:
            front.append(i)
            best_y = gy
            best_at_x = (gx, gy)
        elif best_at_x is not None and gx == best_at_x[0] and gy == best_at_x[1]:
            front.append(i)  # an exact duplicate of a front point
    front.sort(key=lambda i: (points[i][0], points[i][1]))
    return front


def config_diff(params_by_run: dict[int, dict[str, Any]]) -> list[dict]:
    """Rows {"key", "values": {run_id: value}, "differs": bool} over the union of keys, differing rows first."""
    keys = sorted({k for params in params_by_run.values() for k in params})
    rows = []
    missing = object()
    for key in keys:
        values = {rid: params.get(key, missing) for rid, params in params_by_run.items()}
        distinct = {repr(v) for v in values.values()}
        rows.append({
            "key": key,
            "values": {rid: (None if v is missing else v) for rid, v in values.items()},
            "missing": [rid for rid, v in values.items() if v is missing],
            "differs": len(distinct) > 1,
        })
    rows.sort(key=lambda r: (not r["differs"], r["key"]))
    return rows


def ema(values: Sequence[float], weight: float) -> list[float]:
    """TensorBoard-style debiased exponential moving average; ``weight`` in [0, 1), 0 = no smoothing."""
    if not 0 <= weight < 1:
        raise ValueError("weight must be in [0, 1)")
    out, last, n = [], 0.0, 0
    for v in values:
        n += 1
        last = last * weight + (1 - weight) * v
        out.append(last / (1 - weight**n) if weight else v)
    return out
