"""Training: one loop shared by train jobs, pruning fine-tunes and QAT.

Reproducibility by construction: the batch order and every random draw of epoch ``e`` come from generators seeded
with (seed, e), so resuming from the checkpoint written after epoch ``e`` replays epochs e+1.. exactly. In DDP each
process takes an equal slice of the same global batch, so N processes compute what one process would.
"""
from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from runner.engine import ddp
from runner.engine.common import (
    arch_of,
    evaluate,
    example_input,
    load_checkpoint,
    load_data,
    model_from_arch,
    model_from_checkpoint,
    report_cost,
    resolve_device,
    save_checkpoint,
    seed_everything,
    train_batch,
)
from runner.engine.datasets import Splits
from runner.engine.models import build_model
from runner.engine.reporter import Reporter


@dataclass
class FitResult:
    step: int
    epochs_done: int
    cancelled: bool
    val: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)


def lr_at(hp: dict[str, Any], step: int, steps_per_epoch: int, epochs: int) -> float:
    """Learning rate at a global step: linear warm-up, then cosine to 0, step decay, or constant."""
    base, total = hp["lr"], max(1, epochs * steps_per_epoch)
    warm = int(hp.get("warmup_epochs", 0) * steps_per_epoch)
    if step < warm:
        return base * (step + 1) / warm
    if hp["schedule"] == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))
    if hp["schedule"] == "step":
        return base * hp["gamma"] ** ((step // steps_per_epoch) // hp["step_size"])
    return base


def make_optimizer(params, hp: dict[str, Any]) -> torch.optim.Optimizer:
    if hp["optimizer"] == "adamw":
        return torch.optim.AdamW(params, lr=hp["lr"], weight_decay=hp["weight_decay"])
    return torch.optim.SGD(params, lr=hp["lr"], momentum=hp["momentum"], weight_decay=hp["weight_decay"],
                           nesterov=hp["nesterov"] and hp["momentum"] > 0)


def amp_dtype(hp: dict[str, Any], device: torch.device) -> torch.dtype | None:
    """Autocast only on CUDA: bf16 where the GPU supports it (no loss scaling needed), else fp16."""
    if device.type != "cuda" or hp.get("amp", "auto") == "off":
        return None
    if hp["amp"] == "fp16" or (hp["amp"] == "auto" and not torch.cuda.is_bf16_supported()):
        return torch.float16
    return torch.bfloat16


def fit(model: nn.Module, data: Splits, hp: dict[str, Any], *, epochs: int, device: torch.device,
        reporter: Reporter, seed: int, start_epoch: int = 0, step_offset: int = 0, optimizer_state: dict | None = None,
        on_epoch_end: Callable[[int, int, torch.optim.Optimizer], None] | None = None, rank: int = 0, world: int = 1,
        prefix: str = "", progress_total: int | None = None, param_groups: list[dict[str, Any]] | None = None,
        ) -> FitResult:
    """Train ``model`` in place for epochs [start_epoch, epochs). Metrics go to the reporter (rank 0 only) with
    keys prefixed by ``prefix`` (e.g. "finetune/"); ``on_epoch_end(epoch, step, optimizer)`` writes checkpoints.
    ``param_groups`` (optional) are optimizer groups covering the trainable parameters; a group's ``lr_scale``
    multiplies the scheduled learning rate (QAT trains step sizes slower than weights)."""
    model.to(device).train()
    net = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    optimizer = make_optimizer(param_groups or [p for p in model.parameters() if p.requires_grad], hp)
    if optimizer_state:
        optimizer.load_state_dict(optimizer_state)
    dtype = amp_dtype(hp, device)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    loss_fn = nn.CrossEntropyLoss(label_smoothing=hp["label_smoothing"])
    x, y = data.x_train, data.y_train
    if hp.get("train_subset"):
        x, y = x[: hp["train_subset"]], y[: hp["train_subset"]]
    bsz = min(hp["batch_size"], len(x))
    steps_per_epoch = max(1, len(x) // bsz)  # drop the last partial batch: equal shares for every process
    total = progress_total or epochs * steps_per_epoch
    step = step_offset + start_epoch * steps_per_epoch
    result = FitResult(step=step, epochs_done=start_epoch, cancelled=False)

    for epoch in range(start_epoch, epochs):
        torch.manual_seed(seed * 1_000_003 + epoch)  # dropout and other module randomness of this epoch
        order_gen = torch.Generator().manual_seed(seed * 7919 + epoch)
        aug_gen = torch.Generator().manual_seed(seed * 104_729 + epoch)
        perm = torch.randperm(len(x), generator=order_gen)
        epoch_loss, epoch_correct, epoch_n, t_epoch = 0.0, 0, 0, time.perf_counter()
        for i in range(steps_per_epoch):
            t0 = time.perf_counter()
            idx = perm[i * bsz:(i + 1) * bsz]
            xb = train_batch(data, x[idx], aug_gen)[rank::world].to(device, non_blocking=True)
            yb = y[idx][rank::world].to(device, non_blocking=True)
            lr = lr_at(hp, step - step_offset, steps_per_epoch, epochs)
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            with torch.autocast("cuda", dtype=dtype) if dtype else contextlib.nullcontext():
                out = net(xb)
                loss = loss_fn(out.float(), yb)
            optimizer.zero_grad(set_to_none=True)
            (scaler.scale(loss) if scaler else loss).backward()
            if hp["grad_clip"] > 0:
                if scaler:
                    scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), hp["grad_clip"])
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            step += 1
            if rank == 0:
                reporter.on_progress(step=step, total=total, epoch=epoch, message=f"{prefix}epoch {epoch + 1}/{epochs}")
            stats = torch.tensor([loss.detach().float().item() * len(yb), (out.argmax(1) == yb).sum().item(),
                                  len(yb), float(reporter.should_stop())])
            if world > 1:  # global figures, and one cancel decision for all processes
                dist.all_reduce(stats)
            epoch_loss += stats[0].item()
            epoch_correct += int(stats[1].item())
            epoch_n += int(stats[2].item())
            if rank == 0:
                if step % hp["log_every"] == 0 or i == steps_per_epoch - 1:
                    reporter.on_metrics(step, {
                        f"{prefix}loss": stats[0].item() / stats[2].item(), f"{prefix}acc": stats[1].item() / stats[2].item(),
                        f"{prefix}lr": lr, f"{prefix}samples_per_s": stats[2].item() / max(time.perf_counter() - t0, 1e-9),
                    }, epoch=epoch)
            if stats[3].item() > 0:
                result.cancelled = True
                break
        result.step = step
        if result.cancelled:
            break
        result.epochs_done = epoch + 1
        if rank == 0:
            val = evaluate(model, data.x_val, data.y_val, device, hp.get("eval_batch_size", 512))
            row = {f"{prefix}train_loss": epoch_loss / max(epoch_n, 1), f"{prefix}train_acc": epoch_correct / max(epoch_n, 1),
                   f"{prefix}val_loss": val["loss"], f"{prefix}val_acc": val["acc"],
                   f"{prefix}epoch_time_s": time.perf_counter() - t_epoch}
            reporter.on_metrics(step, row, epoch=epoch)
            reporter.on_log(f"{prefix}epoch {epoch + 1}/{epochs}: train loss {row[f'{prefix}train_loss']:.4f}, "
                            f"val acc {val['acc']:.4f}")
            result.val, result.history = val, result.history + [row]
            if on_epoch_end:
                on_epoch_end(epoch, step, optimizer)
    return result


# ---------------------------------------------------------------------------------------------------- the job
def _train(spec: dict[str, Any], out_dir: Path, *, reporter: Reporter, rank: int = 0, world: int = 1) -> dict:
    hp, seed = spec["hyperparameters"], spec["seed"]
    device = resolve_device(spec["device"])
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", rank)
    seed_everything(seed, deterministic=hp["deterministic"])
    data = load_data(spec)
    start_epoch, opt_state = 0, None
    if spec.get("checkpoint"):
        ckpt = load_checkpoint(spec["checkpoint"])
        arch = ckpt["arch"]
        model = model_from_checkpoint(ckpt)
        if spec["resume"]:
            state = ckpt.get("train_state") or {}
            start_epoch, opt_state = state.get("epoch", 0), state.get("optimizer")
            reporter.on_log(f"resuming after epoch {start_epoch}")
    else:
        model = build_model(spec["model"], data.input_shape, data.num_classes, **spec["model_options"])
        arch = arch_of(model, spec["model"], data, spec["model_options"])
    example = example_input(data)

    def save(epoch: int, step: int, optimizer: torch.optim.Optimizer) -> None:
        # Two files: the latest (for resume) and one per epoch, so any epoch can be reloaded or compared.
        for name in ("checkpoint.pt", f"checkpoints/epoch_{epoch + 1:04d}.pt"):
            save_checkpoint(out_dir / name, model=model, arch=arch,
                            train_state={"epoch": epoch + 1, "step": step, "optimizer": optimizer.state_dict()})
        reporter.on_artifact(f"checkpoints/epoch_{epoch + 1:04d}.pt", kind="checkpoint",
                             meta={"epoch": epoch + 1, "step": step})
        report_cost(reporter, model, example.to(next(model.parameters()).device), step=step,
                    label=f"epoch {epoch + 1}")

    t0 = time.perf_counter()
    result = fit(model, data, hp, epochs=hp["epochs"], device=device, reporter=reporter, seed=seed,
                 start_epoch=start_epoch, optimizer_state=opt_state, on_epoch_end=save if rank == 0 else None,
                 rank=rank, world=world)
    if rank != 0:
        return {}
    test = evaluate(model, data.x_test, data.y_test, device, hp["eval_batch_size"])
    summary = {"kind": "train", "model": arch["model"], "dataset": data.name, "epochs": result.epochs_done,
               "steps": result.step, "cancelled": result.cancelled, "val_acc": result.val.get("acc"),
               "test_acc": test["acc"], "test_loss": test["loss"], "processes": world, "device": str(device),
               "params": sum(p.numel() for p in model.parameters()), "wall_time_s": time.perf_counter() - t0,
               "checkpoint": "checkpoint.pt" if result.epochs_done > start_epoch else None}
    reporter.on_metrics(result.step, {"test_acc": test["acc"], "test_loss": test["loss"]})
    reporter.on_log(f"done: test acc {test['acc']:.4f} after {result.epochs_done} epochs"
                    + (" (cancelled)" if result.cancelled else ""))
    return summary


def train_job(spec: dict[str, Any], out_dir: Path, reporter: Reporter) -> dict[str, Any]:
    """Train a model (optionally from or resuming a checkpoint); ``processes`` > 1 runs DDP."""
    if spec["processes"] > 1:
        use_cuda = resolve_device(spec["device"]).type == "cuda"
        return ddp.launch(_train, (spec, out_dir), world=spec["processes"], use_cuda=use_cuda, reporter=reporter)
    return _train(spec, out_dir, reporter=reporter)


__all__ = ["fit", "lr_at", "train_job", "model_from_arch"]
