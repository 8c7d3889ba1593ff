"""Quantization behind one interface: PTQ with calibration or QAT (STE, optionally LSQ step sizes) at 2..8 bits per
layer, on our fake-quant core (runner.engine.fakequant); and real int8 inference on CPU through torch.ao
(x86/fbgemm or qnnpack kernels) where the model can be traced, with its measured latency next to fp32.

Bit widths are reported per layer as {layer name: (w_bits, a_bits)} (names of the conv/linear layers of the float
model) and passed to the cost estimator for BOPs.
"""
from __future__ import annotations

import copy
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from runner.engine.common import (
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
from runner.engine.fakequant import Quantizer, QuantLayer, calibrate, wrap_layers
from runner.engine.reporter import Reporter
from runner.engine.train import fit

QUANTIZABLE = (nn.Conv1d, nn.Conv2d, nn.Linear)


def quantizable_layers(model: nn.Module) -> list[str]:
    """Names of the conv/linear layers we fake-quantize, in forward order. nn.MultiheadAttention's projections stay
    in floating point: it reads ``out_proj.weight`` and its packed ``in_proj_weight`` directly instead of calling
    them as modules, so a wrapper would never run."""
    inside_attention = {f"{n}.out_proj" for n, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)}
    return [n for n, m in model.named_modules() if isinstance(m, QUANTIZABLE) and n not in inside_attention]


def _no_fast_path(module: nn.Module, args) -> None:
    """A forward pre-hook that does nothing: its presence makes nn.TransformerEncoderLayer skip its fused inference
    path, which reads linear1/linear2 weights directly and so would bypass the fake-quant wrappers."""


def layer_bits(model: nn.Module, *, w_bits: int, a_bits: int, first_last_8bit: bool = True,
               overrides: dict[str, list[int]] | None = None) -> dict[str, tuple[int, int]]:
    """Bit widths per conv/linear layer: the default, 8/8 for the first and last layers (they are small and the
    most sensitive), then explicit per-layer overrides. Unknown override names raise ValueError listing the layers."""
    names = quantizable_layers(model)
    bits = {n: (w_bits, a_bits) for n in names}
    if first_last_8bit and names:
        bits[names[0]] = bits[names[-1]] = (8, 8)
    unknown = sorted(set(overrides or {}) - set(names))
    if unknown:
        raise ValueError(f"hyperparameters.layer_bits names unknown layer(s) {', '.join(unknown)}; "
                         f"layers: {', '.join(names)}")
    for n, (wb, ab) in (overrides or {}).items():
        bits[n] = (int(wb), int(ab))
    return bits


def quantize_model(model: nn.Module, bits: dict[str, tuple[int, int]], calib_batches, *, granularity: str = "per_channel",
                   symmetric: bool = True, observer: str = "minmax", percentile: float = 99.99,
                   power_of_two: bool = False) -> tuple[nn.Module, dict[str, QuantLayer]]:
    """PTQ: a calibrated fake-quant copy of ``model`` (the original is untouched)."""
    qmodel = copy.deepcopy(model)
    for m in qmodel.modules():
        if isinstance(m, nn.TransformerEncoderLayer):
            m.register_forward_pre_hook(_no_fast_path)
    wrapped = wrap_layers(qmodel, bits, per_channel=granularity == "per_channel", symmetric=symmetric,
                          observer=observer, percentile=percentile, power_of_two=power_of_two)
    calibrate(qmodel, wrapped, calib_batches)
    return qmodel, wrapped


@torch.no_grad()
def bake(float_model: nn.Module, qmodel: nn.Module, wrapped: dict[str, QuantLayer]) -> tuple[nn.Module, dict]:
    """The float architecture with quantized (dequantized) weights, plus the activation quantizers' parameters:
    what a checkpoint stores. Each layer's weights then take at most 2^w_bits distinct values per channel."""
    plain = copy.deepcopy(float_model)
    state = {k.replace(".layer.", "."): v for k, v in qmodel.state_dict().items()
             if ".wq." not in k and ".aq." not in k}
    plain.load_state_dict(state)
    config = {}
    for name, q in wrapped.items():
        weight = q.layer.weight
        plain.get_submodule(name).weight.copy_(q.quantized_weight())
        s = q.aq.effective_scale(1).detach()
        w_numel = weight.numel() if q.wq.channel_axis is None else weight.numel() // weight.shape[0]
        config[name] = {"w_bits": q.w_bits, "a_bits": q.a_bits, "a_scale": float(s.reshape(-1)[0]),
                        "a_zero_point": float(q.aq.zero_point.reshape(-1)[0]), "a_qmin": q.aq.qmin,
                        "a_qmax": q.aq.qmax, "w_qmin": q.wq.qmin, "w_qmax": q.wq.qmax,
                        "w_scale": q.wq.effective_scale(w_numel).detach().cpu().clone(),
                        "w_zero_point": q.wq.zero_point.detach().cpu().clone()}
    return plain, config


def quantized_model_from_checkpoint(ckpt: dict[str, Any]) -> nn.Module:
    """The fake-quant model a quantize job's checkpoint describes: its float architecture with quantized weights,
    wrapped again with the stored weight and activation quantizers (frozen), so it computes what the job
    evaluated. A plain ``model_from_checkpoint`` gives the same weights with float activations."""
    meta = ckpt["quant"]
    model = model_from_checkpoint(ckpt)
    bits = {n: (c["w_bits"], c["a_bits"]) for n, c in meta["layers"].items()}
    wrapped = wrap_layers(model, bits, per_channel=meta["granularity"] == "per_channel", symmetric=meta["symmetric"],
                          observer="minmax", percentile=100.0, power_of_two=meta["power_of_two"])
    for name, q in wrapped.items():
        c = meta["layers"][name]
        q.wq.scale, q.wq.zero_point = c["w_scale"].clone(), c["w_zero_point"].clone()
        q.wq.qmin, q.wq.qmax = c["w_qmin"], c["w_qmax"]
        q.aq.scale, q.aq.zero_point = torch.tensor([c["a_scale"]]), torch.tensor([c["a_zero_point"]])
        q.aq.qmin, q.aq.qmax = c["a_qmin"], c["a_qmax"]
        q.wq.mode = q.aq.mode = "quant"
    return model.eval()


def quant_meta(hp: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """What a quantized checkpoint records besides its (already quantized) weights."""
    return {"method": hp["method"], "layers": config, "granularity": hp["granularity"], "symmetric": hp["symmetric"],
            "power_of_two": hp["power_of_two"], "observer": hp["observer"]}


def qat_param_groups(qmodel: nn.Module, hp: dict[str, Any]) -> list[dict[str, Any]]:
    """Weights, then LSQ step sizes at ``step_lr_scale`` x the learning rate and without weight decay (decay
    would shrink every step size towards 0). Adam moves each parameter by about lr per step whatever its gradient,
    and step sizes are small numbers (often 1e-2), so they need the smaller rate that LSQ's gradient scaling gives
    them under SGD."""
    scales = [q.scale for q in qmodel.modules() if isinstance(q, Quantizer) and q.learned]
    ids = {id(p) for p in scales}
    weights = [p for p in qmodel.parameters() if p.requires_grad and id(p) not in ids]
    return [{"params": weights}, {"params": scales, "lr_scale": hp["step_lr_scale"], "weight_decay": 0.0}]


def _calib_iter(data, n_batches: int, bsz: int, device: torch.device):
    for i in range(n_batches):
        xb = data.x_train[i * bsz:(i + 1) * bsz]
        if len(xb):
            yield xb.to(device)


# ---------------------------------------------------------------------------------------------------- real int8
def latency_s(model: nn.Module, example: torch.Tensor, runs: int, warmup: int = 5) -> float:
    """Median wall time of one forward pass (seconds) after ``warmup`` passes, single-threaded timing loop."""
    times = []
    with torch.inference_mode():
        for i in range(warmup + runs):
            t0 = time.perf_counter()
            model(example)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return statistics.median(times)


def int8_cpu(model: nn.Module, calib_batches, example: torch.Tensor) -> nn.Module:
    """A real int8 model (quantized kernels) from torch.ao FX graph mode PTQ with the platform's default backend."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    engine = "x86" if "x86" in torch.backends.quantized.supported_engines else "qnnpack"
    torch.backends.quantized.engine = engine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notice in favour of torchao
        prepared = prepare_fx(copy.deepcopy(model).cpu().eval(), get_default_qconfig_mapping(engine), (example,))
        with torch.no_grad():
            for xb in calib_batches:
                prepared(xb.cpu())
        return convert_fx(prepared)


def measure_int8(model: nn.Module, data, hp: dict[str, Any], reporter: Reporter) -> dict[str, Any]:
    """Convert to int8, then time fp32 and int8 at batch 1 on one thread (steadier on a shared machine) with
    deterministic-algorithm checks off (quantized kernels have no deterministic variants; nothing is trained here)."""
    deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.use_deterministic_algorithms(False)
    torch.set_num_threads(1)
    try:
        return _measure_int8(model, data, hp, reporter)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic, warn_only=True)


def _measure_int8(model: nn.Module, data, hp: dict[str, Any], reporter: Reporter) -> dict[str, Any]:
    example = example_input(data, n=1)
    calib = list(_calib_iter(data, hp["calib_batches"], 64, torch.device("cpu")))
    try:
        qmodel = int8_cpu(model, calib, example)
        with torch.inference_mode():
            qmodel(example)
    except Exception as exc:  # FX tracing or a missing quantized kernel: report why instead of failing the job
        reporter.on_log(f"real int8 inference not supported for this model on CPU: {type(exc).__name__}: {exc}")
        return {"supported": False, "reason": f"{type(exc).__name__}: {exc}"}
    fp32 = copy.deepcopy(model).cpu().eval()
    t_fp32, t_int8 = latency_s(fp32, example, hp["latency_runs"]), latency_s(qmodel, example, hp["latency_runs"])
    acc = evaluate(qmodel, data.x_test, data.y_test, torch.device("cpu"), hp["eval_batch_size"])["acc"]
    reporter.on_log(f"real int8 ({torch.backends.quantized.engine}): test acc {acc:.4f}, latency "
                    f"{t_int8 * 1e3:.3f} ms vs fp32 {t_fp32 * 1e3:.3f} ms (batch 1, median of {hp['latency_runs']})")
    return {"supported": True, "engine": torch.backends.quantized.engine, "test_acc": acc,
            "latency_s": t_int8, "fp32_latency_s": t_fp32, "speedup": t_fp32 / t_int8}


# ---------------------------------------------------------------------------------------------------- the job
def quantize_job(spec: dict[str, Any], out_dir: Path, reporter: Reporter) -> dict[str, Any]:
    hp = spec["hyperparameters"]
    seed_everything(spec["seed"], deterministic=hp.get("deterministic", True))
    device = resolve_device(spec["device"])
    data = load_data(spec)
    ckpt = load_checkpoint(spec["checkpoint"])
    model = model_from_checkpoint(ckpt).to(device).eval()
    fp32 = evaluate(model, data.x_test, data.y_test, device, hp["eval_batch_size"])
    example = example_input(data).to(device)
    report_cost(reporter, model, example, step=0, label="fp32")
    bits = layer_bits(model, w_bits=hp["w_bits"], a_bits=hp["a_bits"], first_last_8bit=hp["first_last_8bit"],
                      overrides=hp["layer_bits"])
    reporter.on_log(f"fp32 test acc {fp32['acc']:.4f}; bits (w, a) per layer: "
                    + ", ".join(f"{n}={w}/{a}" for n, (w, a) in bits.items()))
    qmodel, wrapped = quantize_model(
        model, bits, _calib_iter(data, hp["calib_batches"], hp["batch_size"], device), granularity=hp["granularity"],
        symmetric=hp["symmetric"], observer=hp["observer"], percentile=hp["percentile"],
        power_of_two=hp["power_of_two"])
    ptq = evaluate(qmodel, data.x_test, data.y_test, device, hp["eval_batch_size"])
    reporter.on_metrics(0, {"fp32_acc": fp32["acc"], "ptq_acc": ptq["acc"]})
    reporter.on_log(f"PTQ ({hp['observer']}, {hp['granularity']}): test acc {ptq['acc']:.4f}")
    step, cancelled, final = 0, False, ptq
    if hp["method"] == "qat" and hp["finetune_epochs"] > 0:
        groups = None
        if hp["learned_step"]:
            for q in wrapped.values():
                q.wq.make_learnable()
                q.aq.make_learnable()
            groups = qat_param_groups(qmodel, hp)
        def save_epoch(epoch: int, at_step: int, _optimizer) -> None:
            name = f"checkpoints/qat_epoch_{epoch + 1:04d}.pt"
            baked, config = bake(model, qmodel, wrapped)
            save_checkpoint(out_dir / name, model=baked, arch=ckpt["arch"], quant=quant_meta(hp, config))
            reporter.on_artifact(name, kind="checkpoint", meta={"epoch": epoch + 1, "step": at_step})
            report_cost(reporter, baked, example, step=at_step, bits=bits, label=f"qat epoch {epoch + 1}")

        result = fit(qmodel, data, hp, epochs=hp["finetune_epochs"], device=device, reporter=reporter,
                     seed=spec["seed"] + 2000, prefix="qat/", param_groups=groups, on_epoch_end=save_epoch)
        step, cancelled = result.step, result.cancelled
        qmodel.eval()
        final = evaluate(qmodel, data.x_test, data.y_test, device, hp["eval_batch_size"])
        reporter.on_log(f"QAT ({'LSQ' if hp['learned_step'] else 'STE, fixed scales'}): test acc {final['acc']:.4f}")
    baked, config = bake(model, qmodel, wrapped)
    save_checkpoint(out_dir / "checkpoint.pt", model=baked, arch=ckpt["arch"], quant=quant_meta(hp, config))
    reporter.on_artifact("checkpoint.pt", kind="checkpoint", meta={"method": hp["method"], "w_bits": hp["w_bits"],
                                                                   "a_bits": hp["a_bits"]})
    report_cost(reporter, baked, example, step=step, bits=bits,
                label=f"{hp['method']} W{hp['w_bits']}A{hp['a_bits']}")
    metrics = {"quant_acc": final["acc"], "acc_drop": fp32["acc"] - final["acc"]}
    int8 = None
    if hp["real_int8"]:
        int8 = measure_int8(baked, data, hp, reporter)  # the quantized weights (after QAT, the trained ones)
        if int8["supported"]:
            metrics |= {"int8_acc": int8["test_acc"], "int8_latency_s": int8["latency_s"],
                        "fp32_latency_s": int8["fp32_latency_s"]}
    reporter.on_metrics(step, metrics)
    return {"kind": "quantize", "method": hp["method"], "fp32_acc": fp32["acc"], "ptq_acc": ptq["acc"],
            "test_acc": final["acc"], "bits": {n: list(b) for n, b in bits.items()}, "real_int8": int8,
            "cancelled": cancelled, "checkpoint": "checkpoint.pt"}
