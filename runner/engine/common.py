"""Pieces every job shares: device choice, seeding, batching, evaluation, checkpoints and the cost hook."""
from __future__ import annotations

import importlib.util
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from runner.engine.datasets import Splits, augment_points, load_dataset
from runner.engine.models import apply_channels, build_model, describe_channels
from runner.engine.reporter import Reporter

CHECKPOINT_FORMAT = "labbook-engine/1"


def resolve_device(name: str) -> torch.device:
    """"auto" is CUDA when available, else CPU; asking for CUDA without one is an error, not a silent fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no CUDA device is available on this worker")
    return torch.device(name)


def seed_everything(seed: int, *, deterministic: bool = True) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs a fixed workspace for deterministic GEMMs; must be set before the first CUDA call.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def load_data(spec: dict[str, Any]) -> Splits:
    return load_dataset(spec["dataset"], seed=spec.get("seed", 0), data_dir=spec.get("data_dir"),
                        **spec.get("dataset_options", {}))


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for i in range(0, len(x), batch_size):
        yield x[i:i + batch_size], y[i:i + batch_size]


def train_batch(data: Splits, xb: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return augment_points(xb, generator) if data.augment == "points" else xb


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, batch_size: int = 512,
             ) -> dict[str, float]:
    """Top-1 accuracy (0..1) and mean cross-entropy on (x, y); restores the model's train/eval mode."""
    was_training = model.training
    model.eval()
    correct, loss, n = 0, 0.0, 0
    for xb, yb in batches(x, y, batch_size):
        xb, yb = xb.to(device), yb.to(device)
        out = model(xb).float()
        loss += nn.functional.cross_entropy(out, yb, reduction="sum").item()
        correct += (out.argmax(1) == yb).sum().item()
        n += len(yb)
    model.train(was_training)
    return {"acc": correct / max(n, 1), "loss": loss / max(n, 1)}


def example_input(data: Splits, n: int = 1) -> torch.Tensor:
    return data.x_test[:n].clone() if len(data.x_test) else data.x_train[:n].clone()


# ---------------------------------------------------------------------------------------------------- checkpoints
def arch_of(model: nn.Module, name: str, data: Splits, options: dict[str, Any]) -> dict[str, Any]:
    """A JSON-able description that rebuilds the model (pruned channel counts included) without pickling it."""
    return {"model": name, "input_shape": list(data.input_shape), "num_classes": data.num_classes,
            "model_options": dict(options), "channels": describe_channels(model)}


def model_from_arch(arch: dict[str, Any]) -> nn.Module:
    model = build_model(arch["model"], tuple(arch["input_shape"]), arch["num_classes"], **arch["model_options"])
    return apply_channels(model, arch["channels"])


def save_checkpoint(path: Path, *, model: nn.Module, arch: dict[str, Any], **extra: Any) -> None:
    """State dicts and plain values only (loadable with weights_only=True); written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"format": CHECKPOINT_FORMAT, "arch": arch, "model": model.state_dict(), **extra}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a Labbook engine checkpoint")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any]) -> nn.Module:
    model = model_from_arch(ckpt["arch"])
    model.load_state_dict(ckpt["model"])
    return model


# ---------------------------------------------------------------------------------------------------- cost hook
COST_KEYS = ("macs", "params", "bops", "bytes", "latency_s", "energy_j")


def report_cost(reporter: Reporter, model: nn.Module, example: torch.Tensor, *, step: int | None, label: str,
                bits: dict[str, tuple[int, int]] | None = None, profile: dict | None = None) -> dict | None:
    """Cost report for a checkpointed model through ``runner.engine.cost`` (written separately). Until that module
    exists this logs and returns None; once it exists its errors propagate."""
    if importlib.util.find_spec("runner.engine.cost") is None:
        reporter.on_log(f"cost estimator not installed; no cost report for {label}")
        return None
    from runner.engine import cost

    was_training = model.training
    model.eval()
    try:
        report = cost.estimate(model, example.cpu() if next(model.parameters()).device.type == "cpu" else example,
                               bits=bits, profile=profile)
    finally:
        model.train(was_training)
    reporter.on_cost(report, step=step, label=label)
    totals = report.get("totals", {}) if isinstance(report, dict) else {}
    figures = {f"cost/{k}": float(totals[k]) for k in COST_KEYS if isinstance(totals.get(k), (int, float))}
    if figures and step is not None:
        reporter.on_metrics(step, figures)
    return report
