"""Pruning sensitivity: validation accuracy after pruning each layer alone at each ratio, without fine-tuning.

The layers x ratios matrix goes to ``sensitivity.json`` ({layers, ratios, acc[layer][ratio], baseline}), which the run
page draws as a heatmap (runner.costs.sensitivity_get, static/js/runner/cost.js).
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from runner.engine.common import evaluate, example_input
from runner.engine.models import NOT_STRUCTURALLY_PRUNABLE
from runner.engine.prune import out_channels, out_pruning_fn, prunable_layers, setup_from_checkpoint
from runner.engine.reporter import Reporter


def _prune_layer_copy(model: nn.Module, layer_name: str, ratio: float, example: torch.Tensor, p: int) -> nn.Module:
    """A copy of ``model`` with ``ratio`` of one layer's output channels (lowest L_p norm) removed, together with
    everything that depends on them."""
    clone = copy.deepcopy(model)
    layer = dict(clone.named_modules())[layer_name]
    n = out_channels(layer)
    k = min(n - 1, int(round(ratio * n)))
    if k <= 0:
        return clone
    dg = tp.DependencyGraph().build_dependency(clone, example_inputs=example)
    norms = layer.weight.detach().flatten(1).norm(p=p, dim=1)
    idxs = torch.argsort(norms)[:k].tolist()
    group = dg.get_pruning_group(layer, out_pruning_fn(layer), idxs=idxs)
    if dg.check_pruning_group(group):
        group.prune()
    return clone


def sensitivity_job(spec: dict[str, Any], out_dir: Path, reporter: Reporter) -> dict[str, Any]:
    """Validation accuracy after pruning each layer alone at each ratio (no fine-tuning): a layers x ratios matrix
    written to sensitivity.json ({layers, ratios, acc, baseline_acc}) for the run page heatmap."""
    hp, device, data, ckpt, model = setup_from_checkpoint(spec)
    if ckpt["arch"]["model"] in NOT_STRUCTURALLY_PRUNABLE:
        raise ValueError(f"sensitivity analysis uses structured pruning, which does not support {ckpt['arch']['model']}")
    model.eval()
    x, y = data.x_val, data.y_val
    if hp["max_eval_samples"]:
        x, y = x[: hp["max_eval_samples"]], y[: hp["max_eval_samples"]]
    example = example_input(data).to(device)
    baseline = evaluate(model, x, y, device, hp["eval_batch_size"])["acc"]
    layers, ratios = [n for n, _ in prunable_layers(model)], hp["ratios"]
    p = 1 if hp["importance"] == "l1" else 2
    acc: list[list[float]] = []
    t0, done, total = time.perf_counter(), 0, len(layers) * len(ratios)
    for name in layers:
        row = []
        for ratio in ratios:
            row.append(evaluate(_prune_layer_copy(model, name, ratio, example, p), x, y, device,
                                hp["eval_batch_size"])["acc"])
            done += 1
            reporter.on_progress(step=done, total=total, message=f"{name} at {ratio:.2f}")
            if reporter.should_stop():
                break
        acc.append(row)
        reporter.on_log(f"{name}: " + ", ".join(f"{r:.2f}->{a:.3f}" for r, a in zip(ratios, row, strict=False)))
        if reporter.should_stop():
            break
    # A cancelled scan keeps a rectangular grid (cells not reached are null) so the page still draws it;
    # "baseline" is the key the heatmap reads, "baseline_acc" the summary's name for it.
    grid = [row + [None] * (len(ratios) - len(row)) for row in acc]
    result = {"layers": layers[: len(acc)], "ratios": ratios, "acc": grid, "baseline": baseline,
              "baseline_acc": baseline, "metric": "val_acc", "importance": hp["importance"]}
    (out_dir / "sensitivity.json").write_text(json.dumps(result))
    reporter.on_artifact("sensitivity.json", kind="sensitivity", meta={"layers": len(acc), "ratios": len(ratios)})
    return {"kind": "sensitivity", "layers": len(acc), "ratios": ratios, "baseline_acc": baseline,
            "cancelled": len(acc) < len(layers) or any(len(r) < len(ratios) for r in acc),
            "wall_time_s": time.perf_counter() - t0, "artifact": "sensitivity.json"}
