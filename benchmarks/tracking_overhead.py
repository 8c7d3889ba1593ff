"""Tracking overhead: the engine's training loop (runner.engine.train.fit, the small CNN on digits) with and without
the Python client logging every step to the running server. Goal: throughput with logging >= 0.97 of without.

Both arms run the same loop with ``log_every=1``: the baseline's reporter drops the metrics, the tracked arm's calls
``run.log()`` for each of them (4 metrics per step plus the epoch summary). The arms alternate in short pairs
(A B, A B, ...) so that the load of a shared machine falls on both; the figure is the median of the per-pair ratios.
Torch runs one thread here: with two threads on a busy 2-core machine, oversubscription swings the throughput by
several times from one minute to the next and hides a 3 % effect. For the same reason there are two figures: samples
per CPU-second of the training process (which includes the client's sender thread; robust to the machine's other
load, and what the throughput is when a core is free) and samples per wall-clock second (the literal goal, which a
shared machine makes noisy: it is reported as inconclusive when the interquartile range of the pair ratios is wider
than the effect it should resolve). The server's CPU time for ingesting the points is reported beside them.
"""
from __future__ import annotations

import os
import statistics
import time

from benchmarks.common import Context, Section, at_least, percentile, progress
from runner.engine.reporter import NullReporter

NAME = "tracking_overhead"
TITLE = "Tracking overhead: digits training with vs without the client logging every step"
NEEDS_STACK = True
GOAL = 0.97


class ClientReporter(NullReporter):
    """An engine reporter that logs every metric through labbook.client (what a training script does)."""

    def __init__(self, run):
        self.run = run

    def on_metrics(self, step, metrics, *, epoch=None):
        self.run.log(metrics, step=step)


def server_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc); 0 where unavailable."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115 - tiny read
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def train_once(data, epochs: int, reporter) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds of this process and samples of one training run from the same seed."""
    import torch

    from runner.engine.models import build_model
    from runner.engine.spec import TRAIN
    from runner.engine.train import fit

    hp = {name: p.default for name, p in TRAIN.items()} | {"epochs": epochs, "log_every": 1}
    torch.manual_seed(0)
    model = build_model("cnn", data.input_shape, data.num_classes)
    start, cpu = time.perf_counter(), time.process_time()
    result = fit(model, data, hp, epochs=epochs, device=torch.device("cpu"), reporter=reporter, seed=0)
    return time.perf_counter() - start, time.process_time() - cpu, result.step * hp["batch_size"]


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
        base, tracked, base_cpu, tracked_cpu, logged, server_s = [], [], [], [], 0, 0.0
        pid = ctx.stack.server.popen.pid
        for i in progress(range(pairs), desc="training pairs (without, with logging)", unit="pair"):
            s, c, n = train_once(data, epochs, NullReporter())
            base.append(n / s)
            base_cpu.append(n / c)
            run = labbook.init(project="bench-overhead", name=f"overhead-{i}", url=ctx.stack.server.url,
                               token=ctx.stack.token, capture_env=False, offline_dir=str(ctx.scratch / "client"))
            before = server_cpu_s(pid)
            s, c, n = train_once(data, epochs, ClientReporter(run))
            tracked.append(n / s)
            tracked_cpu.append(n / c)
            run.finish()  # after the clock stopped: sending what is left is the background thread's job
            server_s += server_cpu_s(pid) - before
            logged += run.sent
    finally:
        torch.set_num_threads(threads)
    cpu_ratios = [t / b for b, t in zip(base_cpu, tracked_cpu, strict=True)]
    ratios = [t / b for b, t in zip(base, tracked, strict=True)]
    cpu_ratio, ratio = statistics.median(cpu_ratios), statistics.median(ratios)
    q1, q3 = percentile(ratios, 25), percentile(ratios, 75)
    c1, c3 = percentile(cpu_ratios, 25), percentile(cpu_ratios, 75)
    noisy = (q3 - q1) > 2 * (1 - GOAL)
    section.add("throughput per CPU-second of the training process, with logging / without", cpu_ratio, "", 1.0,
                "without logging (=1)", goal=f">= {GOAL:g}", passed=at_least(cpu_ratio, GOAL),
                note=f"median of {pairs} alternating pairs of {epochs} epochs, IQR {c1:.3f}-{c3:.3f}; median "
                     f"{statistics.median(tracked_cpu):,.0f} vs {statistics.median(base_cpu):,.0f} samples per CPU-s; "
                     f"{logged:,} points logged; the server spent {server_s:.1f} CPU-s ingesting them")
    section.add("throughput per wall-clock second, with logging / without", ratio, "", 1.0, "without logging (=1)",
                goal=f">= {GOAL:g}", passed=None if noisy else at_least(ratio, GOAL),
                note=(f"INCONCLUSIVE on this machine: the pair ratios' IQR {q1:.3f}-{q3:.3f} is wider than the 3 % "
                      "to resolve" if noisy else f"IQR of the pair ratios {q1:.3f}-{q3:.3f}")
                + f"; median samples/s {statistics.median(tracked):,.0f} with vs {statistics.median(base):,.0f} without")
    spread = max(base) / min(base) - 1
    section.details = {"epochs": epochs, "pairs": pairs, "samples_per_s_without": base, "samples_per_s_with": tracked,
                       "samples_per_cpu_s_without": base_cpu, "samples_per_cpu_s_with": tracked_cpu,
                       "pair_ratios_wall": ratios, "pair_ratios_cpu": cpu_ratios, "points_logged": logged,
                       "server_cpu_s": server_s, "baseline_spread_wall": spread}
    section.notes.append(f"Spread of the wall-clock baseline alone across the run: {spread * 100:.1f} % (max/min - 1), "
                         "from the machine's other load.")
    return section
