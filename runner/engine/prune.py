"""Pruning jobs: structured channel pruning to a MACs target (torch-pruning's dependency graph) and unstructured
magnitude pruning (torch.nn.utils.prune, made permanent). The per-layer sensitivity scan is in sensitivity.py.

MACs are multiply-accumulates of one forward pass on one example (conv, linear and the other ops torch-pruning's
counter knows); FLOPs = 2 x MACs.
"""
from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import torch
import torch_pruning as tp
from torch import nn
from torch.nn.utils import prune as tprune

from runner.engine.common import (
    arch_of,
    evaluate,
    example_input,
    load_checkpoint,
    load_data,
    model_from_checkpoint,
    report_cost,
    resolve_device,
    save_checkpoint,
    seed_everything,
)
from runner.engine.models import NOT_STRUCTURALLY_PRUNABLE, describe_channels
from runner.engine.reporter import Reporter
from runner.engine.train import fit

PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Linear)
MAX_RATIO = 0.95  # no layer loses more than 95% of its channels in one step
MACS_TOLERANCE = 0.05  # a step that ends more than 5% above its MACs target is reported as not reached


def count_macs(model: nn.Module, example: torch.Tensor) -> tuple[int, int]:
    """(MACs, parameters) of one forward pass on ``example`` (torch-pruning counts on a copy in eval mode)."""
    macs, params = tp.utils.count_ops_and_params(model, example)
    return int(macs), int(params)


def classifier_of(model: nn.Module) -> nn.Module:
    """The last conv/linear layer: its outputs are the classes, so it is never pruned."""
    return [m for m in model.modules() if isinstance(m, PRUNABLE)][-1]


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    last = classifier_of(model)
    return [(n, m) for n, m in model.named_modules() if isinstance(m, PRUNABLE) and m is not last]


def out_channels(m: nn.Module) -> int:
    return m.out_features if isinstance(m, nn.Linear) else m.out_channels


def make_importance(name: str) -> tp.importance.Importance:
    return {"l1": lambda: tp.importance.GroupMagnitudeImportance(p=1),
            "l2": lambda: tp.importance.GroupMagnitudeImportance(p=2),
            "bn_scale": lambda: tp.importance.BNScaleImportance(),
            "taylor": lambda: tp.importance.GroupTaylorImportance()}[name]()


def _taylor_gradients(model: nn.Module, data, device: torch.device, batches: int = 4, bsz: int = 64) -> None:
    """Accumulate loss gradients on a few training batches (Taylor importance reads weight x grad)."""
    model.zero_grad(set_to_none=True)
    for i in range(batches):
        xb, yb = data.x_train[i * bsz:(i + 1) * bsz].to(device), data.y_train[i * bsz:(i + 1) * bsz].to(device)
        if len(xb):
            nn.functional.cross_entropy(model(xb), yb).backward()


def _pruned_copy(model: nn.Module, example: torch.Tensor, ratio: float, *, importance: str, grads: dict | None,
                 round_to: int) -> tuple[nn.Module, int]:
    """A copy of ``model`` with the share ``ratio`` of every prunable group's channels removed (lowest importance
    first, through torch-pruning's dependency graph), and its MACs. ``grads`` (Taylor importance): the loss
    gradients of ``model``'s parameters by name, given to the copy (deepcopy does not copy .grad)."""
    trial = copy.deepcopy(model)
    if ratio > 0:
        for name, p in trial.named_parameters():
            if grads and name in grads:
                p.grad = grads[name].clone()
        pruner = tp.pruner.BasePruner(
            trial, example, importance=make_importance(importance), pruning_ratio=ratio, iterative_steps=1,
            ignored_layers=[classifier_of(trial)], round_to=round_to if round_to > 1 else None)
        pruner.step()
        trial.zero_grad(set_to_none=True)
    return trial, count_macs(trial, example)[0]


def prune_to_macs(model: nn.Module, example: torch.Tensor, target_macs: float, *, importance: str, data=None,
                  device: torch.device | None = None, round_to: int = 1) -> tuple[nn.Module, int]:
    """The model with channels removed so that its MACs are as close to ``target_macs`` as the channel counts
    allow, and those MACs. ``model`` itself is left as it is.

    Every prunable group loses the same share r of its channels (the ones its importance ranks lowest). MACs fall
    monotonically with r, so a bisection on r finds the two channel configurations around the target; the one
    nearer to it wins. Bisection stops once r is finer than one channel of the widest layer. When tied or narrow
    layers make even that step miss the target by more than 5%, ``_refine`` closes the gap group by group.
    Taylor importance needs ``data`` (a few training batches give the gradients).
    """
    if importance == "taylor" and data is None:
        raise ValueError("Taylor importance needs training data for its gradients")
    model.eval()
    macs = count_macs(model, example)[0]
    if macs <= target_macs:
        return model, macs
    widest = max(out_channels(m) for _, m in prunable_layers(model))
    grads = None
    if importance == "taylor":  # one set of gradients for every trial
        _taylor_gradients(model, data, device or example.device)
        grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
        model.zero_grad(set_to_none=True)
    trial = functools.partial(_pruned_copy, model, example, importance=importance, grads=grads, round_to=round_to)
    above, below = (model, macs), trial(MAX_RATIO)
    lo, hi = 0.0, MAX_RATIO
    while hi - lo > 0.25 / widest:
        mid = (lo + hi) / 2
        candidate = trial(mid)
        if candidate[1] > target_macs:
            lo, above = mid, candidate
        else:
            hi, below = mid, candidate
    best = min(above, below, key=lambda c: abs(c[1] - target_macs))
    if abs(best[1] - target_macs) > MACS_TOLERANCE * target_macs:
        # Channels tied across layers (residual sums) or narrow layers make the uniform steps coarse: walk down
        # from the configuration above the target one group at a time.
        refined = _refine(*above, example, target_macs, importance=importance, data=data, device=device,
                          round_to=round_to)
        best = min(best, refined, key=lambda c: abs(c[1] - target_macs))
    return best


def _refine(model: nn.Module, macs: int, example: torch.Tensor, target_macs: float, *, importance: str, data,
            device, round_to: int) -> tuple[nn.Module, int]:
    """A copy of ``model`` (MACs above the target) with a few more channels removed group by group, chosen to
    close the gap to the target: each group's MACs saving for ``round_to`` channels is measured once, then groups
    are taken greedily (largest saving that still fits the gap, then at most one that overshoots by less than it
    leaves), each losing its least important channels."""
    if importance == "taylor":
        _taylor_gradients(model, data, device or example.device)
    imp = make_importance(importance)
    dg = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    order, saving, width = {}, {}, {}
    for name in _group_roots(model, example):
        layer = model.get_submodule(name)
        width[name] = out_channels(layer)
        scores = imp(dg.get_pruning_group(layer, out_pruning_fn(layer), idxs=list(range(width[name]))))
        if scores is None or width[name] <= round_to:
            continue
        order[name] = torch.argsort(scores).tolist()
        trial = _remove(model, example, {name: order[name][:round_to]})
        saving[name] = macs - count_macs(trial, example)[0]
    model.zero_grad(set_to_none=True)
    gap, taken = macs - target_macs, dict.fromkeys(order, 0)
    while gap > 0:
        room = [n for n in order if taken[n] + 2 * round_to <= width[n] and saving[n] > 0]
        fits = [n for n in room if saving[n] <= gap]
        if fits:
            name = max(fits, key=lambda n: saving[n])
        elif room and (over := min(room, key=lambda n: saving[n])) and saving[over] - gap < gap:
            name = over
        else:
            break
        taken[name] += round_to
        gap -= saving[name]
    if not any(taken.values()):
        return model, macs
    refined = _remove(model, example, {n: order[n][:k] for n, k in taken.items() if k})
    return refined, count_macs(refined, example)[0]


def out_pruning_fn(layer: nn.Module):
    """torch-pruning's function that removes output channels of a conv or linear layer."""
    return tp.prune_linear_out_channels if isinstance(layer, nn.Linear) else tp.prune_conv_out_channels


def _remove(model: nn.Module, example: torch.Tensor, channels: dict[str, list[int]]) -> nn.Module:
    """A copy of ``model`` without the given output channels of the named layers (and all that depends on them)."""
    clone = copy.deepcopy(model)
    dg = tp.DependencyGraph().build_dependency(clone, example_inputs=example)
    for name, idxs in channels.items():
        layer = clone.get_submodule(name)
        group = dg.get_pruning_group(layer, out_pruning_fn(layer), idxs=idxs)
        if dg.check_pruning_group(group):
            group.prune()
    clone.zero_grad(set_to_none=True)
    return clone


def _group_roots(model: nn.Module, example: torch.Tensor) -> list[str]:
    """Names of one root layer per prunable channel group (the classifier's group excluded)."""
    names = {m: n for n, m in model.named_modules()}
    dg = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    groups = dg.get_all_groups(ignored_layers=[classifier_of(model)], root_module_types=PRUNABLE)
    return [names[group[0][0].target.module] for group in groups]


def check_importance(model: nn.Module, importance: str) -> None:
    """BN-scale importance ranks channels by their BatchNorm gamma: a model without BatchNorm has nothing to rank."""
    if importance == "bn_scale" and not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        raise ValueError("hyperparameters.importance: 'bn_scale' needs BatchNorm layers and this model has none; "
                         "use l1, l2 or taylor")


def keep_ratios(model: nn.Module, original: dict[str, int]) -> dict[str, float]:
    current = dict(model.named_modules())
    return {name: out_channels(current[name]) / n for name, n in original.items()}


def setup_from_checkpoint(spec: dict[str, Any]):
    """(hyperparameters, device, data, checkpoint, model) of a job that starts from a trained checkpoint."""
    hp = spec["hyperparameters"]
    seed_everything(spec["seed"], deterministic=hp.get("deterministic", True))
    device = resolve_device(spec["device"])
    data = load_data(spec)
    ckpt = load_checkpoint(spec["checkpoint"])
    model = model_from_checkpoint(ckpt).to(device)
    return hp, device, data, ckpt, model


def prune_job(spec: dict[str, Any], out_dir: Path, reporter: Reporter) -> dict[str, Any]:
    hp, device, data, ckpt, model = setup_from_checkpoint(spec)
    if hp["method"] == "unstructured":
        return _unstructured(spec, out_dir, reporter, hp, device, data, ckpt, model)
    arch = ckpt["arch"]
    if arch["model"] in NOT_STRUCTURALLY_PRUNABLE:
        raise ValueError(f"structured pruning does not support {arch['model']}; use method 'unstructured'")
    check_importance(model, hp["importance"])
    example = example_input(data).to(device)
    base_macs, base_params = count_macs(model, example)
    dense = evaluate(model, data.x_val, data.y_val, device, hp["eval_batch_size"])
    original = {n: out_channels(m) for n, m in prunable_layers(model)}
    reporter.on_log(f"dense model: {base_macs:.3e} MACs, {base_params} parameters, val acc {dense['acc']:.4f}")
    reporter.on_metrics(0, {"macs_remaining": base_macs, "macs_ratio": 1.0, "params": base_params,
                            "val_acc": dense["acc"]} | {f"keep/{n}": 1.0 for n in original})
    report_cost(reporter, model, example, step=0, label="dense")
    steps, keep = hp["steps"], hp["target_macs"]
    history: list[dict[str, Any]] = []
    global_step, cancelled = 0, False
    steps_per_epoch = max(1, min(len(data.x_train), hp["train_subset"] or len(data.x_train)) // hp["batch_size"])
    total = steps * (1 + hp["finetune_epochs"] * steps_per_epoch)
    for s in range(1, steps + 1):
        target = base_macs * (1 - (1 - keep) * s / steps)
        model, macs = prune_to_macs(model, example, target, importance=hp["importance"], data=data, device=device,
                             round_to=hp["round_to"])
        params = sum(p.numel() for p in model.parameters())
        ratios = keep_ratios(model, original)
        global_step += 1
        reporter.on_progress(step=global_step, total=total, message=f"pruning step {s}/{steps}")
        line = (f"After step {s}, {100 * macs / base_macs:.1f}% of MACs remains ({macs:.2e}/{base_macs:.2e}); "
                f"keep ratios [{', '.join(f'{r:.3f}' for r in ratios.values())}]")
        reporter.on_log(line)
        if abs(macs - target) > MACS_TOLERANCE * target:
            reporter.on_log(f"step {s} ended {100 * (macs / target - 1):+.1f}% off its target of {target:.3e} MACs: "
                            f"the channel counts left allow no closer configuration")
        # Per-layer keep ratios as metrics at the step they were reached, so the run page charts them over steps.
        reporter.on_metrics(global_step, {"macs_remaining": macs, "macs_ratio": macs / base_macs, "prune_step": s}
                            | {f"keep/{n}": r for n, r in ratios.items()})
        if hp["finetune_epochs"] > 0:
            result = fit(model, data, hp, epochs=hp["finetune_epochs"], device=device, reporter=reporter,
                         seed=spec["seed"] + 1000 * s, step_offset=global_step, prefix="finetune/",
                         progress_total=total)
            global_step, cancelled = result.step, result.cancelled
        val = evaluate(model, data.x_val, data.y_val, device, hp["eval_batch_size"])
        reporter.on_metrics(global_step, {"params": params, "val_acc": val["acc"]})
        new_arch = {**arch, "channels": describe_channels(model)}
        name = f"checkpoints/prune_step_{s:03d}.pt"
        for path in ("checkpoint.pt", name):
            save_checkpoint(out_dir / path, model=model, arch=new_arch, prune_state={"step": s, "macs": macs,
                                                                                       "base_macs": base_macs})
        reporter.on_artifact(name, kind="checkpoint", meta={"prune_step": s, "macs": macs})
        report_cost(reporter, model, example, step=global_step, label=f"prune step {s}")
        history.append({"step": s, "macs": macs, "macs_ratio": macs / base_macs, "params": params,
                        "val_acc": val["acc"], "keep_ratios": ratios, "log": line})
        # Rewritten after every step, so a cancelled or failed job still leaves the steps it finished.
        (out_dir / "pruning.json").write_text(json.dumps({"base_macs": base_macs, "layers": list(original),
                                                          "original_channels": original, "steps": history}, indent=1))
        reporter.on_artifact("pruning.json", kind="pruning", meta={"steps": len(history)})
        if cancelled or reporter.should_stop():
            cancelled = True
            break
    test = evaluate(model, data.x_test, data.y_test, device, hp["eval_batch_size"])
    reporter.on_metrics(global_step, {"test_acc": test["acc"], "test_loss": test["loss"]})
    last = history[-1] if history else {"macs": base_macs, "macs_ratio": 1.0, "params": base_params}
    return {"kind": "prune", "method": "structured", "model": arch["model"], "base_macs": base_macs,
            "macs": last["macs"], "macs_ratio": last["macs_ratio"], "params": last["params"],
            "dense_val_acc": dense["acc"], "test_acc": test["acc"], "steps": len(history), "cancelled": cancelled,
            "checkpoint": "checkpoint.pt"}


def _unstructured(spec, out_dir, reporter, hp, device, data, ckpt, model) -> dict[str, Any]:
    """Zero the smallest-magnitude weights (per layer, or ranked globally), fine-tune with the masks in place,
    then make it permanent so the checkpoint holds plain weights with zeros."""
    layers = [m for m in model.modules() if isinstance(m, PRUNABLE)]
    if hp["scope"] == "global":
        tprune.global_unstructured([(m, "weight") for m in layers], pruning_method=tprune.L1Unstructured,
                                   amount=hp["amount"])
    else:
        for m in layers:
            tprune.l1_unstructured(m, "weight", amount=hp["amount"])
    result = None
    if hp["finetune_epochs"] > 0:
        result = fit(model, data, hp, epochs=hp["finetune_epochs"], device=device, reporter=reporter,
                     seed=spec["seed"] + 1000, prefix="finetune/")
    for m in layers:
        tprune.remove(m, "weight")
    names = [n for n, m in model.named_modules() if isinstance(m, PRUNABLE)]
    density = {n: float((m.weight != 0).float().mean()) for n, m in zip(names, layers, strict=True)}
    total = sum(m.weight.numel() for m in layers)
    nonzero = sum(int((m.weight != 0).sum()) for m in layers)
    step = result.step if result else 0
    reporter.on_log(f"unstructured ({hp['scope']}): {100 * nonzero / total:.1f}% of weights remain; density "
                    f"[{', '.join(f'{d:.3f}' for d in density.values())}]")
    save_checkpoint(out_dir / "checkpoint.pt", model=model, arch=ckpt["arch"],
                    prune_state={"method": "unstructured", "density": density})
    reporter.on_artifact("checkpoint.pt", kind="checkpoint", meta={"density": nonzero / total})
    example = example_input(data).to(device)
    report_cost(reporter, model, example, step=step, label="unstructured pruned")
    test = evaluate(model, data.x_test, data.y_test, device, hp["eval_batch_size"])
    reporter.on_metrics(step, {"weight_density": nonzero / total, "test_acc": test["acc"]}
                        | {f"density/{n}": d for n, d in density.items()})
    return {"kind": "prune", "method": "unstructured", "scope": hp["scope"], "density": nonzero / total,
            "layer_density": density, "test_acc": test["acc"], "checkpoint": "checkpoint.pt",
            "cancelled": bool(result and result.cancelled)}


__all__ = ["arch_of", "count_macs", "prune_job", "prune_to_macs"]
