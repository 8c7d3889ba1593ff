"""Hardware cost of a PyTorch model, layer by layer: MACs, BOPs, memory traffic, roofline latency and energy.

How it counts. The model runs once on meta tensors (shapes only, no arithmetic, no memory: a ResNet-50 takes tens of
milliseconds) with forward hooks on every module and a TorchDispatchMode that sees each ATen op. Every op is
attributed to the innermost module running at that moment. A module that calls no child module during its forward
(a "leaf": Conv2d, Linear, BatchNorm2d, ReLU, MultiheadAttention, ...) becomes one row; a module that calls children
gets a row of its own only for the ops written directly in its forward (a residual add, q @ k^T in a hand-written
attention block, ...). Models that cannot run on meta tensors (data-dependent control flow, tensors created on a
fixed device) are run once on real tensors instead, and the report says so in ``notes``.

What counts as a MAC (COUNTED_OPS): the multiply-accumulates of aten mm/addmm/bmm/baddbmm/mv/addmv/dot (so
nn.Linear, torch.matmul, einsum, @), convolution (all dims, grouped, depthwise, transposed) and fused scaled-dot-
product attention (q k^T and attn v; softmax not counted). Bias adds, batch norm, activations, pooling, softmax and
elementwise ops count no MACs, but their memory traffic does count. FLOPs = 2 x MACs. These equal
``torch.utils.flop_counter.FlopCounterMode`` / 2, except that we also count CPU fused attention
(``_scaled_dot_product_flash_attention_for_cpu``) and mv/dot, which FlopCounterMode leaves out.

Units: MACs and FLOPs are counts per forward pass of the whole batch; bytes are bytes (bits / 8); time in seconds;
energy in joules.
"""
from __future__ import annotations

import fnmatch
import time
from typing import Any

import torch
from torch import nn

from runner.engine import profiles as P
from runner.engine.cost_count import run_counted
from runner.engine.cost_table import fmt_joules, fmt_seconds, fmt_si, format_table  # noqa: F401 - re-exported

COUNTED_OPS = (
    "MACs count aten mm, addmm, bmm, baddbmm, mv, addmv, dot (Linear, matmul, einsum), convolution (incl. grouped, "
    "depthwise, transposed) and scaled-dot-product attention (q·kᵀ and attn·v). Bias adds, normalisation, "
    "activations, pooling, softmax and elementwise ops add no MACs; their memory traffic is counted. FLOPs = 2×MACs."
)
REPORT_VERSION = 1


def _bits_resolver(bits: dict[str, Any] | None, default_bits: tuple[int, int]):
    """name -> (w_bits, a_bits): exact layer name first, then the first matching glob ("layer1.*")."""
    default = _check_bits("default_bits", default_bits)
    table = {str(k): _check_bits(f"bits[{k!r}]", v) for k, v in (bits or {}).items()}
    used: set[str] = set()
    patterns = [k for k in table if any(c in k for c in "*?[")]

    def resolve(name: str) -> tuple[int, int]:
        if name in table:
            used.add(name)
            return table[name]
        for pattern in patterns:
            if fnmatch.fnmatchcase(name, pattern):
                used.add(pattern)
                return table[pattern]
        return default

    return resolve, table, used


def _check_bits(label: str, value) -> tuple[int, int]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"{label} must be a pair [w_bits, a_bits]")
    w, a = value
    if not all(isinstance(b, int) and not isinstance(b, bool) and 1 <= b <= 32 for b in (w, a)):
        raise ValueError(f"{label} must be integers from 1 to 32, got {value!r}")
    return int(w), int(a)


def _inputs(example_inputs, batch_size: int | None) -> tuple[tuple[torch.Tensor, ...], int]:
    """Normalise the example to a tuple of tensors. A shape is one sample's shape; batch_size (default 1) is
    prepended. A tensor is taken as a full batch; with batch_size it is resized along dim 0."""
    if isinstance(example_inputs, torch.Tensor):
        tensors = (example_inputs,)
    elif isinstance(example_inputs, tuple | list) and example_inputs and all(
            isinstance(t, torch.Tensor) for t in example_inputs):
        tensors = tuple(example_inputs)
    elif isinstance(example_inputs, tuple | list | torch.Size) and all(
            isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in example_inputs):
        shape = (batch_size or 1, *[int(s) for s in example_inputs])
        return (torch.empty(shape, device="meta"),), shape[0]
    else:
        raise ValueError("example_inputs must be a tensor, a tuple of tensors, or a shape of positive ints")
    if batch_size is not None:
        tensors = tuple(t.new_empty((batch_size, *t.shape[1:]), device="meta") if t.dim() else t for t in tensors)
    batch = int(tensors[0].shape[0]) if tensors[0].dim() else 1
    return tensors, batch


def _sparsity(model: nn.Module) -> dict[str, tuple[int, int]]:
    """(zeros, numel) of every parameter, read from the real weights before anything moves to meta."""
    out = {}
    # One thread: these are many small memory-bound scans, and on a busy machine (a training job beside us) the
    # thread pool's synchronisation costs several times the scan itself (0.7 s vs 0.1 s for ResNet-50, 2 cores).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, p in model.named_parameters():
            if p.device.type == "meta":
                out[name] = (0, max(p.numel(), 1))
            else:
                out[name] = (int(p.numel() - torch.count_nonzero(p.detach()).item()), max(p.numel(), 1))
    finally:
        torch.set_num_threads(threads)
    return out


def apply_profile(report: dict[str, Any], profile: dict[str, Any] | str | None = None,
                  energy_table: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fill in roofline time, bound and energy of every layer, and the totals, for a device profile (in place)."""
    prof = P.resolve_profile(profile)
    table = P.energy_table({**(prof.get("energy") or {}), **(energy_table or {})})
    bw = float(prof["bandwidth"])
    e_byte = P.byte_energy_pj(table)
    for layer in report["layers"]:
        dtype, peak = P.peak_for(prof, layer["w_bits"], layer["a_bits"])
        t, bound, t_c, t_m = P.roofline(layer["flops"], layer["bytes"], peak, bw)
        e_mac = P.mac_energy_pj(layer["w_bits"], layer["a_bits"], table)
        layer.update(dtype=dtype, peak_ops=peak, ridge=peak / bw, time_s=t, compute_time_s=t_c, memory_time_s=t_m,
                     bound=bound, energy_compute_j=layer["macs"] * e_mac * 1e-12,
                     energy_memory_j=layer["bytes"] * e_byte * 1e-12)
        layer["energy_j"] = layer["energy_compute_j"] + layer["energy_memory_j"]
    layers = report["layers"]
    totals = report.setdefault("totals", {})
    totals.update(
        latency_s=sum(r["time_s"] for r in layers),
        energy_j=sum(r["energy_j"] for r in layers),
        energy_compute_j=sum(r["energy_compute_j"] for r in layers),
        energy_memory_j=sum(r["energy_memory_j"] for r in layers),
        compute_bound_layers=sum(r["bound"] == "compute" for r in layers),
        memory_bound_layers=sum(r["bound"] == "memory" for r in layers),
    )
    report["profile"] = {**prof, "ridge_points": P.ridge_points(prof)}
    report["energy_table"] = table
    return report


def estimate(
    model: nn.Module,
    example_inputs: torch.Tensor | tuple | torch.Size | list,
    *,
    bits: dict[str, tuple[int, int]] | None = None,
    default_bits: tuple[int, int] = (32, 32),
    profile: dict | str | None = None,
    energy_table: dict | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Per-layer cost report of ``model`` on ``example_inputs`` (see the module docstring for what is counted).

    ``bits`` maps layer names (or globs such as ``"layer1.*"``) to (weight bits, activation bits); other layers use
    ``default_bits``. ``profile`` is a builtin profile name, a profile dict (runner.engine.profiles) or None (the
    default, "a100"). ``energy_table`` overrides entries of the 45 nm table. The model is not modified and keeps its
    training mode; it is evaluated in eval mode.
    """
    started = time.perf_counter()
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError("batch_size must be a positive integer")
    bits_for, bits_table, used = _bits_resolver(bits, tuple(default_bits))
    inputs, batch = _inputs(example_inputs, batch_size)
    sparsity = _sparsity(model)
    notes: list[str] = []
    was_training = {m: m.training for m in model.modules()}
    model.eval()
    mode = "meta"
    try:
        try:
            rows = run_counted(model, inputs, bits_for, sparsity, meta=True)
        except Exception as exc:  # noqa: BLE001 - any failure on meta falls back to one real forward pass
            notes.append(f"model could not run on meta tensors ({type(exc).__name__}: {str(exc)[:200]}); "
                         "counted on one real forward pass instead")
            mode = "real"
            used.clear()
            # Grad stays enabled: under no_grad, eval-mode attention takes fused fast paths that hide its matmuls.
            rows = run_counted(model, inputs, bits_for, sparsity, meta=False)
    finally:
        for m, flag in was_training.items():
            m.training = flag
    layers = []
    for row in sorted(rows.values(), key=lambda r: r.order):
        nbytes = row.weight_bytes + row.act_in_bytes + row.act_out_bytes
        if row.macs == 0 and nbytes == 0:
            continue
        # Sparsity of the weight matrices/kernels only: biases and norm scales would dilute it (and a zero bias is
        # not a pruned weight).
        matrices = [n for n in row.param_names if len(_param_shape(model, n)) >= 2]
        zeros = sum(sparsity[n][0] for n in matrices)
        numel = sum(sparsity[n][1] for n in matrices)
        params = sum(sparsity[n][1] for n in row.param_names)
        macs_act = row.macs - row.macs_weight
        layers.append({
            "name": row.name, "type": row.type if row.leaf else f"{row.type} (own ops)", "calls": row.calls,
            "input_shape": row.input_shape, "output_shape": row.output_shape, "params": params,
            "macs": row.macs, "flops": 2 * row.macs, "effective_macs": row.effective_macs,
            "ops": sorted(row.ops), "w_bits": row.w_bits, "a_bits": row.a_bits,
            "dtypes": P.dtype_candidates(row.w_bits, row.a_bits),
            "weight_bytes": row.weight_bytes, "act_in_bytes": row.act_in_bytes, "act_out_bytes": row.act_out_bytes,
            "bytes": nbytes, "sparsity": zeros / numel if numel else 0.0,
            "bops": row.macs_weight * row.w_bits * row.a_bits + macs_act * row.a_bits * row.a_bits,
            "intensity": (2 * row.macs / nbytes) if nbytes else 0.0,
        })
    unused = sorted(set(bits_table) - used)
    if unused and mode == "meta":
        notes.append(f"bit widths given for names that matched no layer: {', '.join(unused)}")
    total_params = sum(n for _, n in sparsity.values())
    # Model sparsity over weight matrices and kernels, like the per-layer figure (zero-initialised biases aside).
    shapes = {n: p.dim() for n, p in model.named_parameters()}
    matrix_zeros = sum(z for n, (z, _) in sparsity.items() if shapes.get(n, 0) >= 2)
    matrix_numel = sum(k for n, (_, k) in sparsity.items() if shapes.get(n, 0) >= 2)
    report: dict[str, Any] = {
        "version": REPORT_VERSION,
        "model": type(model).__name__,
        "input_shapes": [list(t.shape) for t in inputs],
        "batch_size": batch,
        "bits": {"default": list(_check_bits("default_bits", tuple(default_bits))),
                 "layers": {k: list(v) for k, v in bits_table.items()}},
        "mode": mode,
        "counted_ops": COUNTED_OPS,
        "energy_formula": P.ENERGY_FORMULA,
        "layers": layers,
        "totals": {
            "macs": sum(r["macs"] for r in layers),
            "flops": sum(r["flops"] for r in layers),
            "effective_macs": sum(r["effective_macs"] for r in layers),
            "params": total_params,
            "sparsity": matrix_zeros / matrix_numel if matrix_numel else 0.0,
            "bops": sum(r["bops"] for r in layers),
            "weight_bytes": sum(r["weight_bytes"] for r in layers),
            "act_bytes": sum(r["act_in_bytes"] + r["act_out_bytes"] for r in layers),
            "bytes": sum(r["bytes"] for r in layers),
        },
        "notes": notes,
    }
    t = report["totals"]
    t["intensity"] = t["flops"] / t["bytes"] if t["bytes"] else 0.0
    apply_profile(report, profile, energy_table)
    report["elapsed_s"] = time.perf_counter() - started
    return report


def _param_shape(model: nn.Module, name: str) -> torch.Size:
    return model.get_parameter(name).shape


def metrics_from_report(report: dict[str, Any], *, with_profile_suffix: bool = False) -> dict[str, float]:
    """The totals as ``cost/*`` metrics (the shared metric-key convention); optionally also ``...@<profile>``."""
    t = report["totals"]
    out = {"cost/macs": float(t["macs"]), "cost/params": float(t["params"]), "cost/bops": float(t["bops"]),
           "cost/bytes": float(t["bytes"]), "cost/latency_s": float(t["latency_s"]),
           "cost/energy_j": float(t["energy_j"])}
    if with_profile_suffix:
        name = report.get("profile", {}).get("name", "custom")
        out[f"cost/latency_s@{name}"] = float(t["latency_s"])
    return out
