"""Reads for experiment tracking: owner-scoped querysets, the runs table, series (downsampled or raw), lineage."""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import F, QuerySet

from experiments.models import ROLLUP_BLOCK_SIZES, Artifact, MetricPoint, MetricRollup, Project, Run
from experiments.query import JsonPathValue, QueryError, compile_query, resolve_field


def projects_for(user: AbstractBaseUser) -> QuerySet[Project]:
    return Project.objects.filter(owner=user)


def runs_for(user: AbstractBaseUser) -> QuerySet[Run]:
    """Every read of runs starts here: another user's run is simply not found (404, never a leak)."""
    return Run.objects.filter(owner=user).select_related("project", "parent")


def runs_filtered(user: AbstractBaseUser, q: str = "", *, project: str | None = None, sort: str = "",
                  ids: Iterable[int] | None = None) -> QuerySet[Run]:
    """Runs of ``user`` matching the query language ``q`` (QueryError on a bad query), sorted by a column id.

    ``sort`` is a column id as in the runs table (``created``, ``name``, ``params.lr``, ``metrics.acc``,
    ``metrics.acc.best``), with a leading ``-`` for descending; missing values sort last either way.
    """
    qs = runs_for(user).filter(compile_query(q))
    if project:
        qs = qs.filter(project__slug=project) if not project.isdigit() else qs.filter(project_id=int(project))
    if ids is not None:
        qs = qs.filter(pk__in=list(ids))
    return sort_runs(qs, sort)


_PLAIN_SORTS = {"id": "id", "name": "name", "status": "status", "kind": "kind", "project": "project__name",
                "created": "created_at", "started": "started_at", "ended": "ended_at"}


def sort_runs(qs: QuerySet[Run], sort: str) -> QuerySet[Run]:
    if not sort:
        return qs
    desc = sort.startswith("-")
    name = sort.lstrip("-")
    if name in _PLAIN_SORTS:
        f = F(_PLAIN_SORTS[name])
        return qs.order_by(f.desc(nulls_last=True) if desc else f.asc(nulls_last=True), "-id")
    try:
        kind, target = resolve_field(name)
    except QueryError:
        return qs
    if kind != "json":
        return qs
    column, path = target
    # Numbers first by value, then strings alphabetically; runs without the key last.
    num = JsonPathValue(column, path, "number")
    text = JsonPathValue(column, path, "text")
    if desc:
        return qs.order_by(num.desc(nulls_last=True), text.desc(nulls_last=True), "-id")
    return qs.order_by(num.asc(nulls_last=True), text.asc(nulls_last=True), "-id")


# --- the runs table ------------------------------------------------------------------------------------------------

@dataclass
class Column:
    id: str  # params.lr, metrics.acc, metrics.acc.best
    label: str
    group: str  # params | metrics
    numeric: bool = True


@dataclass
class RunsTable:
    runs: list[Run]
    columns: list[Column] = field(default_factory=list)
    default_visible: list[str] = field(default_factory=list)


def cell_value(run: Run, column_id: str) -> Any:
    if column_id.startswith("params."):
        return (run.params or {}).get(column_id[len("params."):])
    if column_id.startswith("metrics."):
        rest = column_id[len("metrics."):]
        key, agg = rest, "last"
        if rest.endswith(".best"):
            key, agg = rest[: -len(".best")], "best"
        s = (run.metric_summary or {}).get(key) or {}
        return s.get(agg)
    return None


def runs_table(runs: list[Run], *, max_default: int = 6) -> RunsTable:
    """Columns for every param and metric present in ``runs``; by default the params that differ between runs
    and the first metrics (accuracy-like first) are visible."""
    param_values: dict[str, set] = {}
    metric_keys: dict[str, int] = {}
    for run in runs:
        for k, v in (run.params or {}).items():
            param_values.setdefault(k, set()).add(repr(v))
        for k in (run.metric_summary or {}):
            metric_keys[k] = metric_keys.get(k, 0) + 1
    columns: list[Column] = []
    for k in sorted(param_values):
        numeric = all(isinstance(cell_value(r, f"params.{k}"), int | float | type(None)) for r in runs)
        columns.append(Column(f"params.{k}", k, "params", numeric))
    for k in sorted(metric_keys):
        columns.append(Column(f"metrics.{k}", k, "metrics"))
        columns.append(Column(f"metrics.{k}.best", f"{k} (best)", "metrics"))
    varying = [f"params.{k}" for k in sorted(param_values) if len(param_values[k]) > 1 or len(runs) == 1]
    priority = sorted(metric_keys, key=lambda k: (not any(h in k.lower() for h in ("acc", "loss")), k))
    default = varying[:max_default] + [f"metrics.{k}" for k in priority[:max_default]]
    return RunsTable(runs=runs, columns=columns, default_visible=default)


# --- series ---------------------------------------------------------------------------------------------------------

def series_keys(run: Run) -> list[str]:
    keys = list((run.metric_summary or {}).keys())
    if not keys:
        keys = list(MetricPoint.objects.filter(run=run).values_list("key", flat=True).distinct())
    return sorted(keys)


@dataclass
class Series:
    key: str
    steps: list[int]
    values: list[float]
    wall_times: list[float]
    count: int
    downsampled: bool

    def as_dict(self) -> dict:
        return {"key": self.key, "steps": self.steps, "values": self.values, "wall_times": self.wall_times,
                "count": self.count, "downsampled": self.downsampled}


def _table() -> str:
    return connection.ops.quote_name(MetricPoint._meta.db_table)


def series_downsampled(run: Run, key: str, *, max_points: int = 1000, x: str = "step") -> Series:
    """At most about ``max_points`` points of a series for a chart.

    The x range (step, or wall time with ``x="time"``) is cut into ``(max_points - 2) // 3`` equal buckets; each
    bucket keeps its minimum, its maximum and its last point (with their true steps), and the first and last
    points of the series are always kept. So spikes survive and the line ends where the data ends. The work
    happens in SQL on PostgreSQL (one grouped pass over the (run, key, step) index); elsewhere in Python.
    """
    max_points = max(8, int(max_points))
    xcol = "step" if x == "step" else "wall_time"
    table = _table()
    with connection.cursor() as cur:
        # min/max of step come from the (run, key, step) index; the count is kept in the run's summary by ingestion.
        cur.execute(f"SELECT min({xcol}), max({xcol}) FROM {table} WHERE run_id = %s AND key = %s", [run.pk, key])
        lo, hi = cur.fetchone()
        if lo is None:
            return Series(key, [], [], [], 0, False)
        count = ((run.metric_summary or {}).get(key) or {}).get("count")
        if count is None or count <= max_points:
            cur.execute(f"SELECT count(*) FROM {table} WHERE run_id = %s AND key = %s", [run.pk, key])
            count = cur.fetchone()[0]
        if count <= max_points:
            cur.execute(f"SELECT step, value, wall_time FROM {table} WHERE run_id = %s AND key = %s ORDER BY step",
                        [run.pk, key])
            rows = cur.fetchall()
            return Series(key, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], count, False)
        buckets = max(1, (max_points - 2) // 3)
        span = float(hi - lo) or 1.0
        picked: dict[int, tuple[int, float, float]] = {}
        rollup_rows = None
        # Rollups carry steps as float8 (as the grouped pass compares them), exact below 2**53.
        if connection.vendor == "postgresql" and xcol == "step" and hi < 2**53:
            with transaction.atomic():  # for SET LOCAL
                rollup_rows = _buckets_from_rollups(cur, run.pk, key, lo, hi, buckets)
        if rollup_rows is not None:
            for mn, mx, last in rollup_rows:
                picked[int(mn[1])] = (int(mn[1]), mn[0], mn[2])
                picked[int(mx[1])] = (int(mx[1]), mx[0], mx[2])
                picked[int(last[0])] = (int(last[0]), last[1], last[2])
        elif connection.vendor == "postgresql":
            if xcol == "step" and (hi - lo + 1) * buckets < 2**62:
                # Integer arithmetic: about 30% faster than float and exact.
                bucket_sql, bucket_params = "(step - %s) * %s / %s", [lo, buckets, hi - lo + 1]
            else:
                bucket_sql, bucket_params = f"LEAST(floor(({xcol} - %s) * %s / %s)::bigint, %s)", [
                    lo, float(buckets), span, buckets - 1]
            # Arrays compare element by element: min(ARRAY[value, step, t]) is the minimum together with its step,
            # so one grouped pass yields each bucket's min, max and last point. JIT compiling it costs ~40 ms and
            # made the pass slower, not faster (measured on 1M points).
            with transaction.atomic():
                cur.execute("SET LOCAL jit = off")
                cur.execute(
                    f"""SELECT min(ARRAY[value, step::float8, wall_time]), max(ARRAY[value, step::float8, wall_time]),
                               max(ARRAY[step::float8, value, wall_time])
                        FROM {table} WHERE run_id = %s AND key = %s GROUP BY {bucket_sql}""",
                    [run.pk, key, *bucket_params],
                )
                grouped = cur.fetchall()
            for mn, mx, last in grouped:
                picked[int(mn[1])] = (int(mn[1]), mn[0], mn[2])
                picked[int(mx[1])] = (int(mx[1]), mx[0], mx[2])
                picked[int(last[0])] = (int(last[0]), last[1], last[2])
        else:
            cur.execute(f"SELECT step, value, wall_time FROM {table} WHERE run_id = %s AND key = %s ORDER BY step",
                        [run.pk, key])
            best: dict[int, list] = {}
            for step, value, wall in cur.fetchall():
                if xcol == "step":
                    b = (step - lo) * buckets // (hi - lo + 1)
                else:
                    b = min(int(math.floor((wall - lo) * buckets / span)), buckets - 1)
                slot = best.get(b)
                point = (step, value, wall)
                if slot is None:
                    best[b] = [point, point, point]
                    continue
                if value < slot[0][1]:
                    slot[0] = point
                if value >= slot[1][1]:  # ties: the latest step, as max(ARRAY[value, step, ...]) on PostgreSQL
                    slot[1] = point
                if step >= slot[2][0]:
                    slot[2] = point
            for slot in best.values():
                for point in slot:
                    picked[point[0]] = point
        for order in ("ASC", "DESC"):  # first and last points of the series, always
            cur.execute(f"SELECT step, value, wall_time FROM {table} WHERE run_id = %s AND key = %s "
                        f"ORDER BY step {order} LIMIT 1", [run.pk, key])
            row = cur.fetchone()
            picked[row[0]] = tuple(row)
    rows = sorted(picked.values())
    return Series(key, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], count, True)


def _cover(start: int, end: int, levels: list[tuple[int, int]], blocks: list, raw: list, bucket: int) -> None:
    """Cover the steps [start, end) with runs of whole rollup blocks, largest blocks first, and raw step ranges
    (each shorter than the smallest block) at the edges: appends (bucket, level, first block, end block) to
    ``blocks`` and (bucket, first step, end step) to ``raw``."""
    if start >= end:
        return
    if not levels:
        raw.append((bucket, start, end))
        return
    (level, size), rest = levels[0], levels[1:]
    first, stop = -(-start // size), end // size  # the whole blocks inside [start, end)
    if first >= stop:
        _cover(start, end, rest, blocks, raw, bucket)
        return
    blocks.append((bucket, level, first, stop))
    _cover(start, first * size, rest, blocks, raw, bucket)
    _cover(stop * size, end, rest, blocks, raw, bucket)


def _buckets_from_rollups(cur, run_id: int, key: str, lo: int, hi: int, buckets: int) -> list | None:
    """Each step bucket's (min, max, last) as arrays, exactly as the grouped pass over the raw points gives them,
    from the block rollups (``MetricRollup``) plus the raw points of the blocks cut by a bucket edge: for a 1M-point
    series ~10^4 rows instead of 10^6. None when the rollups don't cover the series (points stored some other way
    than ``metrics_ingest``: their count then differs from the summary's), so the caller reads the raw points."""
    rollups = connection.ops.quote_name(MetricRollup._meta.db_table)
    runs = connection.ops.quote_name(Run._meta.db_table)
    # One statement, so the summary's count and the rollups' come from the same snapshot.
    cur.execute(
        f"""SELECT (SELECT (metric_summary -> %s ->> 'count')::bigint FROM {runs} WHERE id = %s),
                   (SELECT sum(count) FROM {rollups} WHERE run_id = %s AND key = %s AND level = %s)""",
        [key, run_id, run_id, key, len(ROLLUP_BLOCK_SIZES) - 1],
    )
    expected, covered = cur.fetchone()
    if expected is None or covered != expected:
        return None
    n = hi - lo + 1
    levels = list(reversed(list(enumerate(ROLLUP_BLOCK_SIZES))))  # largest blocks first
    blocks: list[tuple[int, int, int, int]] = []
    raw: list[tuple[int, int, int]] = []
    for b in range(buckets):
        # Bucket b holds the steps s with (s - lo) * buckets // n == b: [lo + ceil(b n / buckets), ...).
        _cover(lo - (-(b * n) // buckets), lo - (-((b + 1) * n) // buckets), levels, blocks, raw, b)
    # Each range is an index range scan with a LIMIT that can't cut it short (a range of k blocks has at most k
    # rows, a raw range fewer points than the smallest block): the LIMITs keep the planner's row estimates, and so
    # its plan, sane; JIT compilation would cost more than the whole query.
    longest = max((x[3] - x[2] for x in blocks), default=1)
    cur.execute("SET LOCAL jit = off")
    cur.execute(
        f"""SELECT min(mn), max(mx), max(ls) FROM (
                SELECT q.b, ARRAY[r.min_value, r.min_step::float8, r.min_wall] AS mn,
                       ARRAY[r.max_value, r.max_step::float8, r.max_wall] AS mx,
                       ARRAY[r.last_step::float8, r.last_value, r.last_wall] AS ls
                FROM unnest(%s::int[], %s::int[], %s::bigint[], %s::bigint[]) AS q(b, lvl, lo, hi)
                CROSS JOIN LATERAL (SELECT * FROM {rollups} WHERE run_id = %s AND key = %s AND level = q.lvl
                                    AND block >= q.lo AND block < q.hi ORDER BY block LIMIT {int(longest)}) r
                UNION ALL
                SELECT q.b, ARRAY[m.value, m.step::float8, m.wall_time], ARRAY[m.value, m.step::float8, m.wall_time],
                       ARRAY[m.step::float8, m.value, m.wall_time]
                FROM unnest(%s::int[], %s::bigint[], %s::bigint[]) AS q(b, lo, hi)
                CROSS JOIN LATERAL (SELECT step, value, wall_time FROM {_table()}
                                    WHERE run_id = %s AND key = %s AND step >= q.lo AND step < q.hi
                                    ORDER BY step LIMIT {ROLLUP_BLOCK_SIZES[0]}) m
            ) g GROUP BY b""",
        [[x[0] for x in blocks], [x[1] for x in blocks], [x[2] for x in blocks], [x[3] for x in blocks], run_id, key,
         [x[0] for x in raw], [x[1] for x in raw], [x[2] for x in raw], run_id, key],
    )
    return cur.fetchall()


def series_raw_page(run: Run, key: str, *, after_step: int | None = None, limit: int = 1000) -> list[tuple]:
    qs = MetricPoint.objects.filter(run=run, key=key)
    if after_step is not None:
        qs = qs.filter(step__gt=after_step)
    return list(qs.order_by("step").values_list("step", "value", "wall_time")[:limit])


def series_iter(run: Run, keys: list[str] | None = None, chunk: int = 5000) -> Iterator[tuple[str, int, float, float]]:
    """Every point of a run (optionally some keys), ordered by key then step, streamed in chunks."""
    qs = MetricPoint.objects.filter(run=run)
    if keys:
        qs = qs.filter(key__in=keys)
    yield from qs.order_by("key", "step").values_list("key", "step", "value", "wall_time").iterator(chunk_size=chunk)


# --- lineage and artifacts ----------------------------------------------------------------------------------------

def run_lineage(run: Run, *, max_depth: int = 20) -> dict:
    """Ancestors (oldest first) and the descendants tree of ``run``, owner-scoped: {"nodes": [...], "edges": [...]}."""
    nodes: dict[int, Run] = {run.pk: run}
    edges: list[tuple[int, int]] = []
    node, depth = run, 0
    while node.parent_id and depth < max_depth:
        parent = Run.objects.filter(pk=node.parent_id, owner_id=run.owner_id).first()
        if parent is None or parent.pk in nodes:
            break
        nodes[parent.pk] = parent
        edges.append((parent.pk, node.pk))
        node, depth = parent, depth + 1
    frontier, depth = [run.pk], 0
    while frontier and depth < max_depth and len(nodes) < 500:
        children = list(Run.objects.filter(parent_id__in=frontier, owner_id=run.owner_id))
        frontier = []
        for child in children:
            edges.append((child.parent_id, child.pk))
            if child.pk not in nodes:
                nodes[child.pk] = child
                frontier.append(child.pk)
        depth += 1
    return {
        "nodes": [{"id": r.pk, "name": r.name, "kind": r.kind, "status": r.status, "current": r.pk == run.pk}
                  for r in nodes.values()],
        "edges": [{"from": a, "to": b} for a, b in edges],
    }


def artifacts_for(run: Run) -> QuerySet[Artifact]:
    return Artifact.objects.filter(run=run).order_by("path")
