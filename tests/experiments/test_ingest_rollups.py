"""The fast metric paths: COPY-staged ingestion (idempotent, summary of new points only, safe under concurrency) and
the block rollups that chart reads use (exact with out-of-order, gappy and re-sent points, and the downsampled read
identical to the one computed from the raw points). Rollups exist on PostgreSQL only; on SQLite the same tests check
the plain path."""
from __future__ import annotations

import math
import random
import threading

import pytest
from django.db import connection, connections

from experiments.ingest import Point
from experiments.models import ROLLUP_BLOCK_SIZES, MetricPoint, MetricRollup, Run
from experiments.selectors import series_downsampled
from experiments.services import metric_is_minimized, metrics_ingest, run_delete
from tests.experiments.factories import make_run


def assert_rollups_exact(run) -> None:
    """Every rollup row equals its block's aggregate of the stored points (PostgreSQL keeps rollups)."""
    expected = expected_rollups(points_of(run)) if connection.vendor == "postgresql" else set()
    assert stored_rollups(run) == expected


def points_of(run) -> list[tuple[str, int, float, float]]:
    return list(MetricPoint.objects.filter(run=run).order_by("key", "step").values_list(
        "key", "step", "value", "wall_time"))


def expected_summary(points) -> dict:
    """The summary as the stored points define it (ties: the earliest step)."""
    out: dict = {}
    for key in {p[0] for p in points}:
        pts = [(s, v) for k, s, v, _ in points if k == key]
        last_step, last = max(pts)
        lo = min(pts, key=lambda p: (p[1], p[0]))
        hi = min(pts, key=lambda p: (-p[1], p[0]))
        best_step, best = lo if metric_is_minimized(key) else hi
        out[key] = {"last": last, "last_step": last_step, "min": lo[1], "max": hi[1], "best": best,
                    "best_step": best_step, "count": len(pts)}
    return out


def expected_rollups(points) -> set[tuple]:
    """Every rollup row recomputed from the stored points: (key, level, block, count, min, max, last) with the same
    (value, step, wall time) ordering as the read's ARRAY comparisons."""
    groups: dict[tuple, list] = {}
    for key, step, value, wall in points:
        for level, size in enumerate(ROLLUP_BLOCK_SIZES):
            groups.setdefault((key, level, step // size), []).append((step, value, wall))
    rows = set()
    for (key, level, block), pts in groups.items():
        mn = min((v, float(s), w) for s, v, w in pts)
        mx = max((v, float(s), w) for s, v, w in pts)
        ls = max(pts)
        rows.add((key, level, block, len(pts), mn[0], int(mn[1]), mn[2], mx[0], int(mx[1]), mx[2], ls[0], ls[1],
                  ls[2]))
    return rows


def stored_rollups(run) -> set[tuple]:
    return set(MetricRollup.objects.filter(run=run).values_list(
        "key", "level", "block", "count", "min_value", "min_step", "min_wall", "max_value", "max_step", "max_wall",
        "last_step", "last_value", "last_wall"))


def reference_downsample(points, max_points: int) -> list[tuple[int, float, float]]:
    """The chart read's contract computed in Python from raw (step, value, wall) points: equal-width step buckets,
    each keeping its min, max and last point, plus the series' first and last points."""
    points = sorted(points)
    lo, hi = points[0][0], points[-1][0]
    buckets = max(1, (max_points - 2) // 3)
    slots: dict[int, list] = {}
    for step, value, wall in points:
        b = (step - lo) * buckets // (hi - lo + 1)
        slots.setdefault(b, []).append((step, value, wall))
    picked = {points[0][0]: points[0], points[-1][0]: points[-1]}
    for pts in slots.values():
        for p in (min(pts, key=lambda p: (p[1], p[0], p[2])), max(pts, key=lambda p: (p[1], p[0], p[2])), max(pts)):
            picked[p[0]] = p
    return sorted(picked.values())


def as_rows(series) -> list[tuple[int, float, float]]:
    return list(zip(series.steps, series.values, series.wall_times, strict=True))


def gappy_points(key: str, n: int, seed: int) -> list[Point]:
    """``n`` points with random gaps between steps (some gaps longer than a whole block), values with ties."""
    rng = random.Random(seed)
    step, out = rng.randrange(0, 5000), []
    for _ in range(n):
        step += rng.choice([1, 1, 1, 2, 7, 33, 1500])
        out.append(Point(key, step, float(rng.randrange(-50, 50)) / 4, 1e9 + step / 10))
    return out


@pytest.mark.django_db
def test_retried_and_overlapping_batches_store_each_point_once(user):
    run = make_run(user)
    first = [Point(k, s, math.sin(s) + len(k), 1e9 + s) for k in ("loss", "acc") for s in range(0, 1000)]
    assert metrics_ingest(run=run, points=first).stored == 2000
    assert metrics_ingest(run=run, points=first).stored == 0  # the retry
    overlapping = [Point(k, s, math.cos(s), 1e9 + s) for k in ("loss", "acc") for s in range(500, 1500)]
    result = metrics_ingest(run=run, points=overlapping + overlapping[:10])  # and duplicates inside one batch
    assert (result.received, result.stored) == (2010, 1000)
    skipped = [Point("loss", 5000, math.nan, 1e9), Point("loss", 5001, math.inf, 1e9)]
    assert metrics_ingest(run=run, points=skipped).stored == 0

    stored = points_of(run)
    assert len(stored) == 3000 and len({(k, s) for k, s, _, _ in stored}) == 3000
    # The first write of a (key, step) wins; the overlap's values were not stored twice or overwritten.
    assert dict(((k, s), v) for k, s, v, _ in stored)[("loss", 600)] == math.sin(600) + 4
    run.refresh_from_db()
    assert run.metric_summary == expected_summary(stored)
    assert_rollups_exact(run)


@pytest.mark.django_db
def test_rollups_stay_exact_with_out_of_order_gappy_and_resent_points(user):
    run = make_run(user)
    pts = gappy_points("val/loss", 6000, seed=1) + gappy_points("acc", 3000, seed=2)
    rng = random.Random(3)
    rng.shuffle(pts)  # steps arrive in any order, keys interleaved
    batches = [pts[i:i + 700] for i in range(0, len(pts), 700)]
    for batch in batches:
        metrics_ingest(run=run, points=batch)
    for batch in rng.sample(batches, 4):  # re-sent, in another order
        assert metrics_ingest(run=run, points=list(reversed(batch))).stored == 0
    stored = points_of(run)
    assert len(stored) == 9000
    assert_rollups_exact(run)
    run.refresh_from_db()
    assert run.metric_summary == expected_summary(stored)


@pytest.mark.django_db
@pytest.mark.parametrize("max_points", [8, 100, 1000, 2000])
def test_a_read_through_the_rollups_equals_the_downsample_of_the_raw_points(user, max_points):
    run = make_run(user)
    pts = gappy_points("loss", 20_000, seed=max_points)
    random.Random(0).shuffle(pts)
    for i in range(0, len(pts), 5000):
        metrics_ingest(run=run, points=pts[i:i + 5000])
    raw = [(s, v, w) for _, s, v, w in points_of(run)]
    fast = series_downsampled(Run.objects.get(pk=run.pk), "loss", max_points=max_points)
    assert fast.downsampled and fast.count == 20_000
    assert as_rows(fast) == reference_downsample(raw, max_points)

    # The same points stored behind ingestion's back (no summary, no rollups) are read by the grouped pass over the
    # raw points: both paths give the very same answer.
    other = make_run(user)
    MetricPoint.objects.bulk_create([MetricPoint(run=other, key="loss", step=s, value=v, wall_time=w)
                                     for s, v, w in raw])
    assert not MetricRollup.objects.filter(run=other).exists()
    slow = series_downsampled(Run.objects.get(pk=other.pk), "loss", max_points=max_points)
    assert as_rows(slow) == as_rows(fast)


@pytest.mark.django_db
def test_steps_near_the_bigint_limit_are_stored_and_summarised_exactly(user):
    run = make_run(user)
    top = 2**63 - 1
    pts = [Point("loss", top - i, float(i % 3), 1e9 + i) for i in range(2000)]
    assert metrics_ingest(run=run, points=pts).stored == 2000
    assert metrics_ingest(run=run, points=pts[:100]).stored == 0
    run.refresh_from_db()
    assert run.metric_summary["loss"] == {"last": 0.0, "last_step": top, "min": 0.0, "max": 2.0, "best": 0.0,
                                          "best_step": top - 1998, "count": 2000}
    s = series_downsampled(Run.objects.get(pk=run.pk), "loss", max_points=100)  # read from the raw points
    assert s.downsampled and s.count == 2000 and len(s.steps) <= 102


@pytest.mark.django_db
def test_rollups_are_deleted_with_their_run(user):
    run = make_run(user)
    metrics_ingest(run=run, points=[Point("loss", s, 1.0 / (s + 1), 1e9 + s) for s in range(3000)])
    assert MetricRollup.objects.filter(run=run).exists() == (connection.vendor == "postgresql")
    run_delete(run=run)
    assert not MetricRollup.objects.filter(run_id=run.pk).exists()
    assert not MetricPoint.objects.filter(run_id=run.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_overlapping_batches_for_one_run_lose_nothing(user):
    run = make_run(user)
    # 4 writers, each sending 6 batches that overlap the other writers' (same keys, shifted step windows).
    plans = [[[Point(k, s, float((s * 7 + w) % 101), 1e9 + s) for k in ("loss", "acc")
               for s in range(b * 300 + w * 100, b * 300 + w * 100 + 400)] for b in range(6)] for w in range(4)]
    stored_by = [0] * 4
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def writer(w: int) -> None:
        try:
            start.wait()
            for batch in plans[w]:
                stored_by[w] += metrics_ingest(run=Run.objects.get(pk=run.pk), points=batch).stored
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and not any(t.is_alive() for t in threads)
    stored = points_of(run)
    distinct = {(p.key, p.step) for plan in plans for batch in plan for p in batch}
    assert len(stored) == len(distinct) == sum(stored_by)
    run.refresh_from_db()
    assert run.metric_summary == expected_summary(stored)
    assert_rollups_exact(run)
