"""Pareto fronts, config diffs and smoothing used by the compare page."""
from __future__ import annotations

import itertools
import random

import pytest

from experiments.analysis import config_diff, ema, pareto_front


def brute_force_front(points, maximize_x, maximize_y):
    sx, sy = (1 if maximize_x else -1), (1 if maximize_y else -1)

    def dominates(a, b):
        return sx * a[0] >= sx * b[0] and sy * a[1] >= sy * b[1] and (a[0], a[1]) != (b[0], b[1])

    return sorted((i for i, p in enumerate(points) if not any(dominates(q, p) for q in points)),
                  key=lambda i: (points[i][0], points[i][1]))


def test_accuracy_vs_macs_front():
    # (macs, acc): fewer MACs and more accuracy are better
    points = [(10.0, 0.90), (20.0, 0.93), (15.0, 0.89), (30.0, 0.93), (5.0, 0.70), (25.0, 0.95)]
    assert pareto_front(points, maximize_x=False, maximize_y=True) == [4, 0, 1, 5]


@pytest.mark.parametrize(("mx", "my"), list(itertools.product([True, False], repeat=2)))
def test_matches_the_definition_on_random_points(mx, my):
    rng = random.Random(42)
    for _ in range(50):
        points = [(rng.randint(0, 8) * 1.0, rng.randint(0, 8) * 1.0) for _ in range(rng.randint(1, 25))]
        assert pareto_front(points, maximize_x=mx, maximize_y=my) == brute_force_front(points, mx, my)


def test_non_finite_points_are_ignored():
    assert pareto_front([(1.0, float("nan")), (2.0, 1.0)], maximize_x=True, maximize_y=True) == [1]


def test_config_diff_puts_differences_first_and_marks_missing():
    rows = config_diff({1: {"lr": 0.1, "bits": 4}, 2: {"lr": 0.1, "bits": 8, "extra": True}})
    assert [(r["key"], r["differs"]) for r in rows] == [("bits", True), ("extra", True), ("lr", False)]
    assert rows[1]["missing"] == [1]


def test_ema_is_debiased_and_zero_weight_is_identity():
    assert ema([1.0, 2.0, 3.0], 0) == [1.0, 2.0, 3.0]
    assert ema([5.0, 5.0], 0.9) == pytest.approx([5.0, 5.0])
