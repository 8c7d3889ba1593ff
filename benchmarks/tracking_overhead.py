"""Tracking overhead: the engine's training loop (runner.engine.train.fit, the small CNN on digits) with and without
the Python client logging every step to the running server. Goal: throughput with logging >= 0.97 of without.

Both arms run the same loop with ``log_every=1``: the baseline's reporter drops the metrics, the tracked arm's calls
``run.log()`` for each of them (4 metrics per step plus the epoch summary). The arms alternate in short pairs
(A B, A B, ...) so that the load of a shared machine falls on both; the figure is the median of the per-pair ratios.
Torch runs one thread here: with two threads on a busy 2-core machine, oversubscription swings the throughput by
several times from one minute to the next and hides a 3 % effect. The server runs on the same machine, so its CPU
time for ingesting the points is part of the overhead measured here.
"""
from __future__ import annotations

import statistics
import time

from benchmarks.common import Context, Section, at_least, percentile, progress

NAME = "tracking_overhead"
TITLE = "Tracking overhead: digits training with vs without the client logging every step"
NEEDS_STACK = True
GOAL = 0.97


class ClientReporter:
    """An engine reporter that logs every metric through labbook.client (what a training script does)."""

    def __init__(self, run):
        self.run = run

    def on_metrics(self, step, metrics, *, epoch=None):
        self.run.log(metrics, step=step)

    def on_progress(self, *, step, total, epoch=None, message=""):
        pass

    def on_log(self, line):
        pass

    def on_artifact(self, path, *, kind, meta=None):
        pass

    def on_cost(self, report, *, step=None, label=""):
        pass

    def should_stop(self):
        return False


def train_once(data, epochs: int, reporter) -> tuple[float, int]:
    """Seconds and samples of one training run from the same seed."""
    import torch

    from runner.engine.models import build_model
    from runner.engine.spec import TRAIN
    from runner.engine.train import fit

    hp = {name: p.default for name, p in TRAIN.items()} | {"epochs": epochs, "log_every": 1}
    torch.manual_seed(0)
    model = build_model("cnn", data.input_shape, data.num_classes)
    start = time.perf_counter()
    result = fit(model, data, hp, epochs=epochs, device=torch.device("cpu"), reporter=reporter, seed=0)
    seconds = time.perf_counter() - start
    return seconds, result.step * hp["batch_size"]


def run(ctx: Context) -> Section:
    import torch

    import labbook
    from runner.engine.datasets import load_dataset
    from runner.engine.reporter import NullReporter

    section = Section(NAME, TITLE)
    epochs, pairs = (1, 3) if ctx.quick else (2, 15)
    data = load_dataset("digits", seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_once(data, 1, NullReporter())  # warm-up: allocator, kernels
        base, tracked, logged = [], [], 0
        for i in progress(range(pairs), desc="training pairs (without, with logging)", unit="pair"):
            s, n = train_once(data, epochs, NullReporter())
            base.append(n / s)
            run = labbook.init(project="bench-overhead", name=f"overhead-{i}", url=ctx.stack.server.url,
                               token=ctx.stack.token, capture_env=False, offline_dir=str(ctx.scratch / "client"))
            s, n = train_once(data, epochs, ClientReporter(run))
            tracked.append(n / s)
            run.finish()  # after the clock stopped: sending what is left is the background thread's job
            logged += run.sent
    finally:
        torch.set_num_threads(threads)
    ratios = [t / b for b, t in zip(base, tracked, strict=True)]
    ratio = statistics.median(ratios)
    q1, q3 = percentile(ratios, 25), percentile(ratios, 75)
    section.add("training throughput with logging every step / without", ratio, "", 1.0, "without logging (=1)",
                goal=f">= {GOAL:g}", passed=at_least(ratio, GOAL),
                note=f"median of {pairs} alternating pairs of {epochs} epochs (interquartile range of the pair ratios "
                     f"{q1:.3f}-{q3:.3f}); median samples/s {statistics.median(tracked):,.0f} with vs "
                     f"{statistics.median(base):,.0f} without; {logged:,} points logged")
    spread = max(base) / min(base) - 1
    section.details = {"epochs": epochs, "pairs": pairs, "samples_per_s_without": base, "samples_per_s_with": tracked,
                       "pair_ratios": ratios, "points_logged": logged, "baseline_spread": spread}
    section.notes.append(f"Spread of the baseline alone across the run: {spread * 100:.1f} % (max/min - 1), from the "
                         "machine's other load; read the ratio against the interquartile range above.")
    return section
