"""Engine quality: test accuracy of dense, structured-pruned (50% of MACs, fine-tuned), W8A8 PTQ and W4A4 QAT models
on digits and mnist1d, each produced by ``runner.engine.jobs.run_job`` from a plain job spec (what the worker runs),
against the bars of the engine issue:

    digits CNN >= 98 %; pruned within 1 point of dense; W4A4 QAT within 1 point of fp32; W8A8 PTQ within 0.5 point.

The specs are all in ``SPECS`` below (one place to adjust epochs or methods); ``--quick`` swaps in ``QUICK`` budgets
(a smoke run: its accuracies say nothing about the bars). Test sets are small (digits: 359 images, so one image is
0.28 point; mnist1d: 1,000 sequences), which bounds how finely the bars can be checked.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path

from benchmarks.common import Context, Section, at_least, at_most, progress
from runner.engine.reporter import NullReporter

NAME = "engine_quality"
TITLE = "Engine quality: dense, pruned, W8A8 PTQ and W4A4 QAT accuracy on digits and mnist1d"
NEEDS_STACK = False

# dataset -> step -> spec. "checkpoint" is filled in from the dense run. Hyperparameters not given take the engine's
# defaults (runner/engine/spec.py).
SPECS: dict[str, dict[str, dict]] = {
    ds: {
        "dense": {"kind": "train", "model": model, "dataset": ds, "device": "cpu", "seed": 0,
                  "hyperparameters": {"epochs": 20, "batch_size": 64, "lr": 0.05, "optimizer": "sgd",
                                      "schedule": "cosine"}},
        "pruned": {"kind": "prune", "dataset": ds, "device": "cpu", "seed": 0,
                   "hyperparameters": {"method": "structured", "importance": "l1", "target_macs": 0.5, "steps": 1,
                                       "finetune_epochs": 10, "lr": 0.01}},
        "w8a8_ptq": {"kind": "quantize", "dataset": ds, "device": "cpu", "seed": 0,
                     "hyperparameters": {"method": "ptq", "w_bits": 8, "a_bits": 8, "observer": "minmax",
                                         "granularity": "per_channel", "calib_batches": 8}},
        "w4a4_qat": {"kind": "quantize", "dataset": ds, "device": "cpu", "seed": 0,
                     "hyperparameters": {"method": "qat", "w_bits": 4, "a_bits": 4, "learned_step": True,
                                         "finetune_epochs": 5, "lr": 1e-3, "optimizer": "adamw"}},
    }
    for ds, model in (("digits", "cnn"), ("mnist1d", "cnn1d"))
}
QUICK = {"dense": {"epochs": 3}, "pruned": {"finetune_epochs": 1}, "w4a4_qat": {"finetune_epochs": 1}}

# Bars: (description, check(value, reference) -> bool). Reference is the dense/fp32 accuracy of the same dataset.
DENSE_BAR = {"digits": 0.98}
DROP_BARS = {"pruned": 0.01, "w8a8_ptq": 0.005, "w4a4_qat": 0.01}


class LogReporter(NullReporter):
    """Keeps the engine's log lines (the pruning report) and drops the rest."""

    def __init__(self):
        self.lines: list[str] = []

    def on_log(self, line):
        self.lines.append(line)


def specs_for(quick: bool) -> dict[str, dict[str, dict]]:
    specs = copy.deepcopy(SPECS)
    if quick:
        for steps in specs.values():
            for step, hp in QUICK.items():
                steps[step]["hyperparameters"].update(hp)
    return specs


def run(ctx: Context) -> Section:
    from runner.engine.jobs import run_job

    section = Section(NAME, TITLE)
    specs = specs_for(ctx.quick)
    results: dict[str, dict[str, dict]] = {}
    todo = [(ds, step) for ds, steps in specs.items() for step in steps]
    for ds, step in progress(todo, desc="engine jobs", unit="job"):
        spec = specs[ds][step]
        out = ctx.scratch / "engine" / ds / step
        if step != "dense":
            spec["checkpoint"] = str(Path(ctx.scratch / "engine" / ds / "dense" / "checkpoint.pt"))
        reporter = LogReporter()
        t0 = time.perf_counter()
        summary = run_job(spec, out, reporter)
        results.setdefault(ds, {})[step] = {"summary": summary, "seconds": time.perf_counter() - t0,
                                            "log_tail": reporter.lines[-3:]}

    for ds, res in results.items():
        dense = res["dense"]["summary"]["test_acc"]
        bar = DENSE_BAR.get(ds)
        section.add(f"{ds}: dense {specs[ds]['dense']['model']} test accuracy", dense * 100, "%",
                    goal=f">= {bar * 100:g} %" if bar else "", passed=at_least(dense, bar) if bar else None,
                    note=f"{specs[ds]['dense']['hyperparameters']['epochs']} epochs, {res['dense']['seconds']:.0f} s")
        for step, limit in DROP_BARS.items():
            s = res[step]["summary"]
            # quantize jobs evaluate their own fp32 reference from the same checkpoint; it equals the dense figure.
            reference = s.get("fp32_acc", dense)
            drop = reference - s["test_acc"]
            note = f"{res[step]['seconds']:.0f} s; drop {drop * 100:+.2f} pt"
            if step == "pruned":
                note += (f"; MACs kept {s['macs_ratio'] * 100:.1f} % ({s['macs']:,} of {s['base_macs']:,}), "
                         f"{specs[ds][step]['hyperparameters']['finetune_epochs']} fine-tune epochs")
            if step == "w8a8_ptq" and (s.get("real_int8") or {}).get("supported"):
                note += f"; real int8 on CPU ({s['real_int8']['engine']}): {s['real_int8']['test_acc'] * 100:.2f} %"
            section.add(f"{ds}: {step.replace('_', ' ')} test accuracy", s["test_acc"] * 100, "%", reference * 100,
                        "dense fp32", goal=f"within {limit * 100:g} pt of dense",
                        passed=at_most(round(drop, 6), limit), note=note)
    section.details = {"specs": specs, "results": results}
    section.notes.append("Specs: benchmarks/engine_quality.py SPECS (one place); every job through "
                         "runner.engine.jobs.run_job on CPU, seed 0.")
    return section
