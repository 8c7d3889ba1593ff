"""How metric points reach the table: one batch in, the points that were new out, as per-key aggregates.

Called by ``services.metrics_ingest`` (which holds the run's row lock and owns the summary); nothing else writes points.
On PostgreSQL: COPY into a staging table, then one statement that inserts, maintains the block rollups
(``MetricRollup``) and aggregates the new points. Elsewhere (SQLite): INSERT … ON CONFLICT DO NOTHING RETURNING in
chunks, aggregated in Python, no rollups.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

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


def _rollup_upsert(level: int) -> str:
    """CTE ``r<level>``: INSERT … ON CONFLICT DO UPDATE of the level's blocks from the grouped new points ``g<level>``."""
    t, x = "experiments_metricrollup", "EXCLUDED"

    def pick(names: tuple[str, str, str], op: str) -> str:
        # Replace the stored extreme by the new one when the new one wins in the same (value, step, wall time)
        # order as the read's min(ARRAY[value, step, wall_time]), so that a rollup equals the aggregate of its points.
        mine = ", ".join(f"{t}.{c}{'::float8' if c.endswith('step') else ''}" for c in names)
        theirs = ", ".join(f"{x}.{c}{'::float8' if c.endswith('step') else ''}" for c in names)
        return ", ".join(f"{c} = CASE WHEN ({theirs}) {op} ({mine}) THEN {x}.{c} ELSE {t}.{c} END" for c in names)

    return (
        f"r{level} AS (INSERT INTO {t} (run_id, key, level, block, count, min_value, min_step, min_wall, max_value, "
        "max_step, max_wall, last_step, last_value, last_wall) "
        f"SELECT %(run)s, key, {level}, blk, n, mn[1], {_step('mn[2]')}, mn[3], mx[1], {_step('mx[2]')}, mx[3], "
        f"{_step('ls[1]')}, ls[2], ls[3] FROM g{level} ORDER BY key, blk "  # one lock order for every writer
        f"ON CONFLICT (run_id, key, level, block) DO UPDATE SET count = {t}.count + {x}.count, "
        f"{pick(('min_value', 'min_step', 'min_wall'), '<')}, {pick(('max_value', 'max_step', 'max_wall'), '>')}, "
        f"{pick(('last_step', 'last_value', 'last_wall'), '>')})"
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


def _pg_ingest(run_id: int, points: list[Point]) -> list[KeyAggregate]:
    with connection.cursor() as cur:
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
