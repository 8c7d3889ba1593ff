"""How metric points reach the table: one batch in, the points that were new out, as per-key aggregates.

Called by ``services.metrics_ingest`` (which holds the run's row lock and owns the summary); nothing else writes points.
On PostgreSQL, two paths, each maintaining the block rollups (``MetricRollup``) and returning per-key aggregates of
the new points:

* appending (the common case: every key's steps in the batch come after the last stored step, strictly increasing):
  COPY straight into the points table (PostgreSQL's multi-row insert: about half the time and two thirds of the WAL
  of INSERT … ON CONFLICT), with the block rollups and per-key aggregates computed from the batch in Python, a few
  C-level calls per block, and the rollups upserted in one statement;
* anything else (a retried batch, steps filled in out of order, duplicates inside a batch): COPY into a staging table,
  then one statement that inserts with ON CONFLICT DO NOTHING, folds the new points into the rollups and aggregates
  them, so that only new points are stored and counted.

Elsewhere (SQLite): INSERT … ON CONFLICT DO NOTHING RETURNING in chunks, aggregated in Python, no rollups.
"""
from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import groupby, islice, repeat
from operator import itemgetter, lt
from typing import Any

import orjson
from django.db import connection

from experiments.ingest import Point
from experiments.models import ROLLUP_BLOCK_SIZES, MetricPoint

_SQLITE_CHUNK = 150  # 5 parameters per row, under SQLite's 999-variable limit on old builds


@dataclass(frozen=True, slots=True)
class KeyAggregate:
    """What one batch added to one key: its count, last point, and extremes (ties go to the earliest step)."""

    key: str
    count: int
    last_step: int
    last: float
    min: float
    min_step: int
    max: float
    max_step: int


def _aggregate(rows: Iterable[tuple[str, int, float]]) -> list[KeyAggregate]:
    """Per-key aggregates of newly stored (key, step, value) rows, computed in Python (SQLite and other backends)."""
    by_key: dict[str, list[tuple[int, float]]] = {}
    for key, step, value in rows:
        by_key.setdefault(key, []).append((step, value))
    out = []
    for key, pts in by_key.items():
        last_step, last = max(pts)
        lo_value, lo_step = min((v, s) for s, v in pts)
        hi_value, neg_step = max((v, -s) for s, v in pts)
        out.append(KeyAggregate(key, len(pts), last_step, last, lo_value, lo_step, hi_value, -neg_step))
    return out


def _insert_returning(run_id: int, points: list[Point]) -> list[tuple[str, int, float]]:
    """One INSERT ... ON CONFLICT DO NOTHING RETURNING per chunk (SQLite): the rows that were new, nothing counted
    twice. Other non-PostgreSQL backends: correct but slower (count before and after)."""
    table = connection.ops.quote_name(MetricPoint._meta.db_table)
    rows: list[tuple[str, int, float]] = []
    with connection.cursor() as cur:
        if connection.vendor == "sqlite":
            for i in range(0, len(points), _SQLITE_CHUNK):
                chunk = points[i:i + _SQLITE_CHUNK]
                values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(chunk))
                params: list[Any] = []
                for p in chunk:
                    params += [run_id, p.key, p.step, p.value, p.wall_time]
                cur.execute(
                    f"INSERT INTO {table} (run_id, key, step, value, wall_time) VALUES {values} "
                    "ON CONFLICT (run_id, key, step) DO NOTHING RETURNING key, step, value",
                    params,
                )
                rows += cur.fetchall()
        else:
            before = MetricPoint.objects.filter(run_id=run_id).count()
            MetricPoint.objects.bulk_create(
                [MetricPoint(run_id=run_id, key=p.key, step=p.step, value=p.value, wall_time=p.wall_time)
                 for p in points], ignore_conflicts=True, batch_size=2000)
            if MetricPoint.objects.filter(run_id=run_id).count() - before:
                wanted = {(p.key, p.step) for p in points}
                rows = [(k, s, v) for k, s, v in MetricPoint.objects.filter(run_id=run_id).values_list(
                    "key", "step", "value") if (k, s) in wanted]
    return rows


# --- the PostgreSQL write path ---------------------------------------------------------------------------------------
# COPY (binary) into a per-connection temporary staging table, then one statement that inserts the staged points
# (ON CONFLICT DO NOTHING: the unique (run, key, step) index decides what is new), folds the new ones into the block
# rollups and returns per-key aggregates of the new ones for the run's summary. Measured on 10,000-point batches this
# is ~25% faster than binding four array literals (the server parses 40,000 array items as text), and no Python
# object is made per point on the way out.

_STAGE = "labbook_metric_stage"
_STAGE_DDL = (f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE} (key text, step bigint, value float8, wall_time float8) "
              "ON COMMIT DELETE ROWS")


def _step(expr: str) -> str:
    """A step carried as float8 (for the ARRAY ordering) back to bigint. Exact below 2**53; above, clamped under
    2**63 so that it can't overflow (reads don't use the rollups of such series)."""
    return f"LEAST({expr}, 9223372036854774784)::bigint"


_ROLLUP_COLUMNS = ("run_id, key, level, block, count, min_value, min_step, min_wall, max_value, max_step, max_wall, "
                   "last_step, last_value, last_wall")


def _rollup_merge() -> str:
    """The ON CONFLICT clause that folds a block's new points (EXCLUDED) into its stored rollup row."""
    t, x = "experiments_metricrollup", "EXCLUDED"

    def pick(names: tuple[str, str, str], op: str) -> str:
        # Replace the stored extreme by the new one when the new one wins in the same (value, step, wall time)
        # order as the read's min(ARRAY[value, step, wall_time]), so that a rollup equals the aggregate of its points.
        mine = ", ".join(f"{t}.{c}{'::float8' if c.endswith('step') else ''}" for c in names)
        theirs = ", ".join(f"{x}.{c}{'::float8' if c.endswith('step') else ''}" for c in names)
        return ", ".join(f"{c} = CASE WHEN ({theirs}) {op} ({mine}) THEN {x}.{c} ELSE {t}.{c} END" for c in names)

    return (
        f"ON CONFLICT (run_id, key, level, block) DO UPDATE SET count = {t}.count + {x}.count, "
        f"{pick(('min_value', 'min_step', 'min_wall'), '<')}, {pick(('max_value', 'max_step', 'max_wall'), '>')}, "
        f"{pick(('last_step', 'last_value', 'last_wall'), '>')}"
    )


def _rollup_upsert(level: int) -> str:
    """CTE ``r<level>``: INSERT … ON CONFLICT DO UPDATE of the level's blocks from the grouped new points ``g<level>``."""
    return (
        f"r{level} AS (INSERT INTO experiments_metricrollup ({_ROLLUP_COLUMNS}) "
        f"SELECT %(run)s, key, {level}, blk, n, mn[1], {_step('mn[2]')}, mn[3], mx[1], {_step('mx[2]')}, mx[3], "
        f"{_step('ls[1]')}, ls[2], ls[3] FROM g{level} ORDER BY key, blk "  # one lock order for every writer
        f"{_rollup_merge()})"
    )


# The appending path's rollups, computed in Python from the batch, upserted in one statement. They travel as one JSON
# document (json_to_recordset parses each number with the column type's own input function, so floats, -0.0 and
# 64-bit steps arrive exactly): binding ~4,000 array items one by one cost more than computing the rollups.
_ROLLUP_FIELDS = ("key", "level", "block", "count", "min_value", "min_step", "min_wall", "max_value", "max_step",
                  "max_wall", "last_step", "last_value", "last_wall")
_ROLLUP_JSON = (
    f"INSERT INTO experiments_metricrollup ({_ROLLUP_COLUMNS}) SELECT %s, * FROM json_to_recordset(%s::json) AS t("
    "key text, level int2, block int8, count int8, min_value float8, min_step int8, min_wall float8, max_value float8, "
    "max_step int8, max_wall float8, last_step int8, last_value float8, last_wall float8) "
    f"ORDER BY 1, 2, 3, 4 {_rollup_merge()}"  # key, level, block: one lock order for every writer
)


def _pg_ingest_sql() -> str:
    # Level 0 groups the new points; each higher level groups the level below (sizes are multiples of each other).
    size = ROLLUP_BLOCK_SIZES[0]
    groups = [
        f"g0 AS (SELECT key, step / {size} AS blk, count(*) AS n, min(ARRAY[value, step::float8, wall_time]) AS mn, "
        "max(ARRAY[value, step::float8, wall_time]) AS mx, max(ARRAY[step::float8, value, wall_time]) AS ls "
        f"FROM new GROUP BY key, step / {size})"
    ]
    for level in range(1, len(ROLLUP_BLOCK_SIZES)):
        ratio = ROLLUP_BLOCK_SIZES[level] // ROLLUP_BLOCK_SIZES[level - 1]
        groups.append(f"g{level} AS (SELECT key, blk / {ratio} AS blk, sum(n) AS n, min(mn) AS mn, max(mx) AS mx, "
                      f"max(ls) AS ls FROM g{level - 1} GROUP BY key, blk / {ratio})")
    return (
        "WITH new AS ("
        "INSERT INTO experiments_metricpoint (run_id, key, step, value, wall_time) "
        f"SELECT %(run)s, key, step, value, wall_time FROM {_STAGE} "
        "ON CONFLICT (run_id, key, step) DO NOTHING RETURNING key, step, value, wall_time), "
        + ", ".join(groups) + ", "
        + ", ".join(_rollup_upsert(level) for level in range(len(ROLLUP_BLOCK_SIZES)))
        # Per key, for the summary, with exact (bigint) steps: count, last point, min and max with the earliest step
        # among ties.
        + ", k AS (SELECT key, count(*) AS n, max(step) AS last_step, min(value) AS lo, max(value) AS hi "
        "FROM new GROUP BY key) "
        "SELECT k.key, k.n, k.last_step, max(new.value) FILTER (WHERE new.step = k.last_step), k.lo, "
        "min(new.step) FILTER (WHERE new.value = k.lo), k.hi, min(new.step) FILTER (WHERE new.value = k.hi) "
        "FROM k JOIN new ON new.key = k.key GROUP BY k.key, k.n, k.last_step, k.lo, k.hi"
    )


_PG_INGEST = _pg_ingest_sql()

# Each key's last stored step (a backward index probe per key, whatever the series' length); NULL for a new key.
_PG_LAST_STEPS = (
    "SELECT t.key, (SELECT p.step FROM experiments_metricpoint p WHERE p.run_id = %(run)s AND p.key = t.key "
    "ORDER BY p.step DESC LIMIT 1) FROM unnest(%(keys)s::text[]) AS t(key)"
)
_COPY_POINTS = "COPY experiments_metricpoint (run_id, key, step, value, wall_time) FROM STDIN (FORMAT BINARY)"
_KEY, _STEP, _VALUE, _WALL = itemgetter(0), itemgetter(1), itemgetter(2), itemgetter(3)


def appended_series(points: list[Point]) -> dict[str, tuple[list, list, list]] | None:
    """{key: (steps, values, wall_times)} when, in the batch's order, each key's steps strictly increase (so the
    batch holds no duplicate); None otherwise. Runs of one key are split into columns with C-level builtins, so a
    column-form batch costs a few calls per series, not a Python loop per point."""
    out: dict[str, tuple[list, list, list]] = {}
    for key, run in groupby(points, key=_KEY):
        rows = list(run)
        steps = list(map(_STEP, rows))
        if len(steps) > 1 and not all(map(lt, steps, islice(steps, 1, None))):
            return None
        columns = out.get(key)
        if columns is None:
            out[key] = (steps, list(map(_VALUE, rows)), list(map(_WALL, rows)))
        elif steps[0] <= columns[0][-1]:
            return None
        else:
            columns[0].extend(steps)
            columns[1].extend(map(_VALUE, rows))
            columns[2].extend(map(_WALL, rows))
    return out


def series_rollups(key: str, steps: list[int], values: list[float], walls: list[float],
                   into: list[tuple]) -> KeyAggregate:
    """Append the block rollups of one key's new points (steps strictly increasing) to ``into``, one tuple in
    _ROLLUP_FIELDS order per block, and return their aggregate for the summary. The same order as the SQL path's
    min/max(ARRAY[value, step, wall]): a block's min is its smallest value at the earliest step, its max the largest
    value at the latest step, its last the largest step; the summary's min and max both take the earliest step among
    ties."""
    n = len(steps)
    for level, size in enumerate(ROLLUP_BLOCK_SIZES):
        start = 0
        while start < n:
            block = steps[start] // size
            end = bisect_left(steps, (block + 1) * size, start)
            chunk = values[start:end]
            lo = start + chunk.index(min(chunk))
            hi_value = max(chunk)
            hi = end - 1 - chunk[::-1].index(hi_value)
            into.append((key, level, block, end - start, values[lo], steps[lo], walls[lo], values[hi], steps[hi],
                         walls[hi], steps[end - 1], values[end - 1], walls[end - 1]))
            start = end
    lo_value, hi_value = min(values), max(values)
    return KeyAggregate(key, n, steps[-1], values[-1], lo_value, steps[values.index(lo_value)], hi_value,
                        steps[values.index(hi_value)])


def _pg_append(cur, run_id: int, points: list[Point]) -> list[KeyAggregate] | None:
    """The appending path; None (nothing written) when the batch doesn't only append. Safe because every writer of
    a run's points holds the run's row lock: nothing can be stored between the probe and the COPY."""
    series = appended_series(points)
    if series is None:
        return None
    cur.execute(_PG_LAST_STEPS, {"run": run_id, "keys": list(series)})
    for key, last in cur.fetchall():
        if last is not None and series[key][0][0] <= last:
            return None
    rollups: list[tuple] = []
    with cur.cursor.copy(_COPY_POINTS) as copy:
        copy.set_types(["int8", "text", "int8", "float8", "float8"])
        for key, (steps, values, walls) in series.items():
            # Rows made and written by C-level iteration (zip, map); deque(maxlen=0) only drains the map.
            deque(map(copy.write_row, zip(repeat(run_id), repeat(key), steps, values, walls)), maxlen=0)
        # Computed while the server is still digesting the COPY data already sent, before the block waits for it.
        aggregates = [series_rollups(key, *columns, into=rollups) for key, columns in series.items()]
        document = orjson.dumps([dict(zip(_ROLLUP_FIELDS, row, strict=True)) for row in rollups]).decode()
    cur.execute(_ROLLUP_JSON, [run_id, document])
    return aggregates


def _pg_ingest(run_id: int, points: list[Point]) -> list[KeyAggregate]:
    with connection.cursor() as cur:
        appended = _pg_append(cur, run_id, points)
        if appended is not None:
            return appended
        # Every time (a cheap catalog lookup once it exists): a flag on the connection would go stale when the
        # transaction that created the table rolls back.
        cur.execute(_STAGE_DDL)
        with cur.cursor.copy(f"COPY {_STAGE} (key, step, value, wall_time) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["text", "int8", "float8", "float8"])
            write = copy.write_row
            for p in points:  # a Point is a (key, step, value, wall_time) tuple
                write(p)
        cur.execute(_PG_INGEST, {"run": run_id})
        aggregates = [KeyAggregate(*row) for row in cur.fetchall()]
        if len(connection.atomic_blocks) > 1:
            # Inside a caller's transaction ON COMMIT won't come before the next batch: empty the stage now.
            cur.execute(f"DELETE FROM {_STAGE}")
    return aggregates


def insert_points(run_id: int, points: list[Point]) -> list[KeyAggregate]:
    """Store ``points`` (finite values, wall times set), skipping any (run, key, step) already stored; return what the
    new points add to each key. Call inside a transaction that holds the run's row lock."""
    if not connection.in_atomic_block:  # in autocommit the staged rows would vanish with the COPY's own commit
        raise RuntimeError("insert_points must run inside a transaction (services.metrics_ingest)")
    if connection.vendor == "postgresql":
        return _pg_ingest(run_id, points)
    return _aggregate(_insert_returning(run_id, points))
