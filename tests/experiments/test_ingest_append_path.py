"""The PostgreSQL appending path (COPY straight into the points table, rollups computed in Python) against the
general path (staging table, INSERT … ON CONFLICT, rollups in SQL): same points stored, same rollups, same summary;
and the referential integrity that replaces the points' foreign key (run row lock + delete trigger)."""
from __future__ import annotations

import random
import threading

import pytest
from django.db import connection, connections, transaction

from experiments import metric_store
from experiments.ingest import Point
from experiments.models import MetricPoint, MetricRollup, Run
from experiments.services import metrics_ingest, run_delete
from tests.experiments.factories import make_run
from tests.experiments.test_ingest_rollups import assert_rollups_exact, expected_summary, points_of, stored_rollups


def appending_batches(seed: int) -> list[list[Point]]:
    """Batches that only append: per key, gappy increasing steps with tied values, batch edges inside blocks, keys
    interleaved in some batches (row form) and grouped in others (column form)."""
    rng = random.Random(seed)
    steps = {"loss": 0, "acc": 40, "lr": 7}
    batches = []
    for b in range(12):
        batch = []
        for key in steps:
            for _ in range(rng.randrange(1, 120)):
                steps[key] += rng.choice([1, 1, 2, 5, 31, 700])
                batch.append(Point(key, steps[key], float(rng.randrange(-8, 8)) / 2, 1e9 + steps[key]))
        if b % 3 == 0:
            batch.sort(key=lambda p: p.step)  # keys interleaved, each still increasing
        batches.append(batch)
    return batches


@pytest.fixture
def path_spy(monkeypatch):
    """Counts which path each batch took."""
    taken = {"append": 0, "stage": 0}
    real = metric_store._pg_append

    def spy(cur, run_id, points):
        result = real(cur, run_id, points)
        taken["append" if result is not None else "stage"] += 1
        return result

    monkeypatch.setattr(metric_store, "_pg_append", spy)
    return taken


@pytest.mark.django_db
def test_appending_batches_take_the_copy_path_and_match_the_general_path(user, path_spy, monkeypatch):
    batches = appending_batches(seed=4)
    fast = make_run(user, name="fast")
    for batch in batches:
        assert metrics_ingest(run=fast, points=batch).stored == len(batch)
    assert path_spy == {"append": len(batches), "stage": 0}

    monkeypatch.setattr(metric_store, "_pg_append", lambda cur, run_id, points: None)  # force the general path
    general = make_run(user, name="general")
    for batch in batches:
        assert metrics_ingest(run=general, points=batch).stored == len(batch)

    assert points_of(fast) == points_of(general)
    assert stored_rollups(fast) == stored_rollups(general)
    assert_rollups_exact(fast)
    fast.refresh_from_db()
    general.refresh_from_db()
    assert fast.metric_summary == general.metric_summary == expected_summary(points_of(fast))


@pytest.mark.django_db
def test_batches_that_do_not_only_append_take_the_general_path_and_store_nothing_twice(user, path_spy):
    run = make_run(user)
    first = [Point("loss", s, 1.0 / (s + 1), 1e9 + s) for s in range(0, 200, 2)]
    metrics_ingest(run=run, points=first)
    cases = [
        ("a retry", first, 0),
        ("a gap filled in", [Point("loss", 51, 0.5, 1e9)], 1),
        ("a duplicate inside the batch", [Point("loss", 500, 1.0, 1e9), Point("loss", 500, 2.0, 1e9)], 1),
        ("steps going back", [Point("loss", 601, 1.0, 1e9), Point("loss", 600, 2.0, 1e9)], 2),
        ("a key that comes back lower", [Point("acc", 10, 1.0, 1e9), Point("loss", 700, 1.0, 1e9),
                                         Point("acc", 9, 1.0, 1e9)], 3),
    ]
    for what, batch, new in cases:
        assert metrics_ingest(run=run, points=batch).stored == new, what
    assert path_spy == {"append": 1, "stage": len(cases)}
    stored = points_of(run)
    assert len(stored) == len({(k, s) for k, s, _, _ in stored}) == 100 + 1 + 1 + 2 + 3
    assert_rollups_exact(run)
    run.refresh_from_db()
    assert run.metric_summary == expected_summary(stored)


def test_appended_series_splits_columns_and_refuses_anything_but_appends():
    pts = [Point("a", 1, 1.0, 10.0), Point("a", 2, 2.0, 11.0), Point("b", 5, 3.0, 12.0), Point("a", 9, 4.0, 13.0)]
    assert metric_store.appended_series(pts) == {"a": ([1, 2, 9], [1.0, 2.0, 4.0], [10.0, 11.0, 13.0]),
                                                 "b": ([5], [3.0], [12.0])}
    assert metric_store.appended_series(pts + [Point("a", 9, 0.0, 0.0)]) is None  # duplicate
    assert metric_store.appended_series(pts + [Point("b", 4, 0.0, 0.0)]) is None  # back in a later run
    assert metric_store.appended_series([Point("a", 3, 0.0, 0.0), Point("a", 2, 0.0, 0.0)]) is None


def test_series_rollups_break_ties_like_the_sql_path():
    rows: list[tuple] = []
    steps, values = [0, 1, 2, 3, 40], [5.0, 1.0, 9.0, 1.0, 9.0]
    agg = metric_store.series_rollups("loss", steps, values, [100.0 + s for s in steps], rows)
    # level 0, block 0 (steps 0-3): min 1.0 at the earliest step (1), max 9.0 at step 2, last step 3.
    assert rows[0] == ("loss", 0, 0, 4, 1.0, 1, 101.0, 9.0, 2, 102.0, 3, 1.0, 103.0)
    assert rows[1] == ("loss", 0, 1, 1, 9.0, 40, 140.0, 9.0, 40, 140.0, 40, 9.0, 140.0)
    # level 1 (one block of 1,024 steps): of the tied maxima the latest step wins, as max(ARRAY[value, step, ...]).
    assert rows[2] == ("loss", 1, 0, 5, 1.0, 1, 101.0, 9.0, 40, 140.0, 40, 9.0, 140.0)
    # The summary's aggregate takes the earliest step among ties for both extremes.
    assert (agg.count, agg.min, agg.min_step, agg.max, agg.max_step, agg.last_step) == (5, 1.0, 1, 9.0, 2, 40)


@pytest.mark.django_db
def test_points_have_no_per_row_foreign_key_but_go_with_their_run_whatever_deletes_it(user):
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_constraint WHERE conrelid = 'experiments_metricpoint'::regclass "
                    "AND contype = 'f'")
        assert cur.fetchone()[0] == 0
    run = make_run(user)
    metrics_ingest(run=run, points=[Point("loss", s, 1.0, 1e9) for s in range(100)])
    with connection.cursor() as cur:  # not through the ORM's cascade
        cur.execute("DELETE FROM experiments_run WHERE id = %s", [run.pk])
    assert not MetricPoint.objects.filter(run_id=run.pk).exists()
    assert not MetricRollup.objects.filter(run_id=run.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_a_run_deleted_while_a_batch_is_being_written_leaves_no_orphan_points(user):
    run = make_run(user)
    metrics_ingest(run=run, points=[Point("loss", 0, 1.0, 1e9)])
    written, release, deleted = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with transaction.atomic():
                metrics_ingest(run=Run.objects.get(pk=run.pk), points=[Point("loss", s, 1.0, 1e9)
                                                                       for s in range(1, 500)])
                written.set()
                release.wait(10)  # hold the run's row lock (and the uncommitted points) while the delete starts
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    def deleter() -> None:
        try:
            with transaction.atomic():
                run_delete(run=Run.objects.get(pk=run.pk))  # waits for the writer's lock on the run row
            deleted.set()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    w = threading.Thread(target=writer)
    w.start()
    assert written.wait(10)
    d = threading.Thread(target=deleter)
    d.start()
    assert not deleted.wait(0.5)  # blocked behind the writer
    release.set()
    w.join(10)
    d.join(10)
    assert not errors and deleted.is_set()
    assert not Run.objects.filter(pk=run.pk).exists()
    assert MetricPoint.objects.filter(run_id=run.pk).count() == 0


@pytest.mark.django_db
def test_extreme_floats_and_steps_reach_the_rollups_exactly(user, path_spy):
    import math

    run = make_run(user)
    values = [-0.0, 5e-324, 1.7976931348623157e308, 0.1 + 0.2, -1.7976931348623157e308, 1 / 3]
    steps = [0, 1, 2, 2**40 + 1, 2**50, 2**53 - 1]  # exact as float8 too, as the SQL path and the reads need
    metrics_ingest(run=run, points=[Point("x", s, v, 1e9 + i / 7) for i, (s, v) in enumerate(zip(steps, values, strict=False))])
    assert path_spy == {"append": 1, "stage": 0}
    assert points_of(run) == [("x", s, v, 1e9 + i / 7) for i, (s, v) in enumerate(zip(steps, values, strict=False))]
    block0 = MetricRollup.objects.get(run=run, key="x", level=0, block=0)  # steps 0, 1, 2
    assert (block0.count, block0.min_step, block0.max_value, block0.last_step) == (3, 0, 1.7976931348623157e308, 2)
    assert block0.min_value == 0.0 and math.copysign(1.0, block0.min_value) == -1.0  # -0.0 kept, not 0.0
    assert_rollups_exact(run)


@pytest.mark.django_db
def test_metric_keys_compare_bytewise_on_postgresql():
    with connection.cursor() as cur:
        cur.execute("SELECT table_name, collation_name FROM information_schema.columns WHERE column_name = 'key' "
                    "AND table_name IN ('experiments_metricpoint', 'experiments_metricrollup') ORDER BY 1")
        assert cur.fetchall() == [("experiments_metricpoint", "C"), ("experiments_metricrollup", "C")]
