"""Cost jobs (JobFn signature of runner.engine.jobs): estimate a model's cost, time it, or measure a device profile.

    estimate_job(spec, out_dir, reporter)  -> per-layer report for one or more device profiles
    measure_job(spec, out_dir, reporter)   -> measured latency at several batch sizes beside the roofline estimate
    calibrate_job(spec, out_dir, reporter) -> a device profile of this worker (matmul peak per dtype, copy bandwidth)

Options come from ``spec["hyperparameters"]`` (see OPTIONS; ``validate_options`` checks them). Reports are written
under ``out_dir/cost/`` and announced with ``reporter.on_artifact`` and ``reporter.on_cost``; totals go out as
``cost/*`` metrics. No Django here: profiles arrive as builtin names or as dicts the runner resolved from the database.
"""
from __future__ import annotations

import json
import platform
import re
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from runner.engine import profiles as P
from runner.engine.cost import estimate, metrics_from_report
from runner.engine.reporter import Reporter

# name -> (type, default); validated by validate_options. Bits are [w_bits, a_bits] pairs.
OPTIONS: dict[str, dict[str, tuple[type, Any]]] = {
    "estimate": {"default_bits": (list, [32, 32]), "layer_bits": (dict, {}), "profile": (object, P.DEFAULT_PROFILE),
                 "profiles": (list, []), "batch_size": (int, 1), "label": (str, "")},
    "measure": {"batch_sizes": (list, [1, 8, 32]), "warmup": (int, 5), "repeats": (int, 20),
                "profile": (object, None), "default_bits": (list, [32, 32]), "label": (str, "measured")},
    "calibrate": {"dtypes": (list, ["fp32", "fp16", "bf16", "int8"]), "size": (int, 0), "copy_mb": (int, 0),
                  "seconds": (float, 0.3), "name": (str, "local")},
}
_LABEL = re.compile(r"[^A-Za-z0-9_.\-]+")
_DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16,
           "int8": torch.int8}


def validate_options(kind: str, options: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, str]]:
    """(options with defaults, errors keyed ``hyperparameters.<name>``) for a cost job kind."""
    schema = OPTIONS[kind]
    clean, errors = {}, {}
    for name, value in (options or {}).items():
        if name not in schema:
            errors[f"hyperparameters.{name}"] = f"unknown option {name!r}; allowed: {', '.join(sorted(schema))}"
            continue
        typ = schema[name][0]
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if typ is not object and (not isinstance(value, typ) or isinstance(value, bool)):
            errors[f"hyperparameters.{name}"] = f"{name} must be of type {typ.__name__}, got {type(value).__name__}"
            continue
        clean[name] = value
    for name, (_, default) in schema.items():
        clean.setdefault(name, default)
    checks = {
        "batch_size": lambda v: 1 <= v <= 65536, "warmup": lambda v: 0 <= v <= 1000,
        "repeats": lambda v: 1 <= v <= 10000, "size": lambda v: 0 <= v <= 32768,
        "copy_mb": lambda v: 0 <= v <= 16384, "seconds": lambda v: 0 < v <= 60,
        "batch_sizes": lambda v: bool(v) and len(v) <= 16 and all(
            isinstance(b, int) and not isinstance(b, bool) and 1 <= b <= 65536 for b in v),
        "dtypes": lambda v: bool(v) and all(d in _DTYPES for d in v),
        "default_bits": lambda v: _bits_ok(v),
        "layer_bits": lambda v: all(isinstance(k, str) and _bits_ok(b) for k, b in v.items()),
    }
    for name, ok in checks.items():
        key = f"hyperparameters.{name}"
        if name in clean and key not in errors and not ok(clean[name]):
            errors[key] = f"invalid {name}: {clean[name]!r}"
    for name in ("profile",):
        if name in clean and clean[name] is not None and f"hyperparameters.{name}" not in errors:
            try:
                P.resolve_profile(clean[name])
            except (ValueError, TypeError) as exc:
                errors[f"hyperparameters.{name}"] = str(exc)
    for i, prof in enumerate(clean.get("profiles") or []):
        try:
            P.resolve_profile(prof)
        except (ValueError, TypeError) as exc:
            errors[f"hyperparameters.profiles[{i}]"] = str(exc)
    return clean, errors


def _bits_ok(value: Any) -> bool:
    return isinstance(value, list | tuple) and len(value) == 2 and all(
        isinstance(b, int) and not isinstance(b, bool) and 1 <= b <= 32 for b in value)


def _options(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    from runner.engine.jobs import SpecError

    clean, errors = validate_options(kind, spec.get("hyperparameters"))
    if errors:
        raise SpecError(errors)
    return clean


def _device(spec: dict[str, Any]) -> torch.device:
    wanted = spec.get("device", "auto")
    if wanted == "cuda" or (wanted == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def model_and_input(spec: dict[str, Any]) -> tuple[nn.Module, tuple[int, ...], str]:
    """(model, one sample's input shape, name) from a checkpoint or from the registry (model + dataset)."""
    if spec.get("checkpoint"):
        from runner.engine.common import load_checkpoint, model_from_checkpoint

        ckpt = load_checkpoint(spec["checkpoint"])
        arch = ckpt["arch"]
        return model_from_checkpoint(ckpt), tuple(arch["input_shape"]), str(arch["model"])
    from runner.engine.models import build_model

    if spec.get("input_shape"):
        shape, num_classes = tuple(spec["input_shape"]), int(spec.get("num_classes") or 10)
    else:
        from runner.engine.datasets import load_dataset

        data = load_dataset(spec.get("dataset", "digits"), seed=spec.get("seed", 0), data_dir=spec.get("data_dir"),
                            **(spec.get("dataset_options") or {}))
        shape, num_classes = tuple(data.input_shape), data.num_classes
    model = build_model(spec["model"], shape, num_classes, **(spec.get("model_options") or {}))
    return model, shape, str(spec["model"])


def _write(out_dir: Path, rel: str, payload: dict[str, Any]) -> None:
    path = out_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=_json_default))
    tmp.replace(path)


def _json_default(value: Any) -> Any:
    if isinstance(value, set | tuple):
        return list(value)
    return str(value)


def _publish(report: dict[str, Any], *, out_dir: Path, reporter: Reporter, label: str, step: int = 0) -> str:
    rel = f"cost/{label}.json"
    _write(out_dir, rel, report)
    reporter.on_artifact(rel, kind="cost-report", meta={"label": label, "profile": report["profile"]["name"],
                                                        "macs": report["totals"]["macs"],
                                                        "bops": report["totals"]["bops"], "step": step})
    reporter.on_cost(report, step=step, label=label)
    reporter.on_metrics(step, metrics_from_report(report, with_profile_suffix=False))
    return rel


def estimate_job(spec: dict[str, Any], out_dir: Path, reporter: Reporter) -> dict[str, Any]:
    """Per-layer cost of the spec's model (or checkpoint) on the primary profile, with latency/energy on others."""
    opts = _options("estimate", spec)
    model, shape, name = model_and_input(spec)
    label = _LABEL.sub("-", opts["label"] or name).strip("-") or "model"
    reporter.on_progress(step=0, total=1, message=f"estimating {name} on {shape}")
    common = {"bits": {k: tuple(v) for k, v in opts["layer_bits"].items()}, "default_bits": tuple(opts["default_bits"]),
              "batch_size": opts["batch_size"]}
    report = estimate(model, shape, profile=opts["profile"], **common)
    by_profile = {}
    for prof in opts["profiles"]:
        other = estimate(model, shape, profile=prof, **common)
        t = other["totals"]
        by_profile[other["profile"]["name"]] = {"latency_s": t["latency_s"], "energy_j": t["energy_j"],
                                                "compute_bound_layers": t["compute_bound_layers"],
                                                "memory_bound_layers": t["memory_bound_layers"]}
    report["by_profile"] = by_profile
    report["label"] = label
    rel = _publish(report, out_dir=out_dir, reporter=reporter, label=label)
    if by_profile:
        reporter.on_metrics(0, {f"cost/latency_s@{k}": v["latency_s"] for k, v in by_profile.items()})
    reporter.on_log(f"{name}: {report['totals']['macs']:,} MACs, {report['totals']['bops']:,} BOPs, "
                    f"{report['totals']['latency_s'] * 1e3:.4g} ms on {report['profile']['name']}")
    reporter.on_progress(step=1, total=1, message="done")
    return {"report": rel, "totals": report["totals"], "by_profile": by_profile}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_model(model: nn.Module, example: torch.Tensor, *, warmup: int, repeats: int,
               device: torch.device) -> list[float]:
    """Wall-clock seconds of ``repeats`` forward passes after ``warmup`` untimed ones (synchronised on GPU)."""
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(example)
        _sync(device)
        for _ in range(repeats):
            start = time.perf_counter()
            model(example)
            _sync(device)
            times.append(time.perf_counter() - start)
    return times


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def measure_job(spec: dict[str, Any], out_dir: Path, reporter: Reporter) -> dict[str, Any]:
    """Median latency at each batch size on the worker's device, beside the roofline estimate and their ratio."""
    opts = _options("measure", spec)
    device = _device(spec)
    model, shape, name = model_and_input(spec)
    model = model.to(device).eval()
    profile = opts["profile"] or ("a100" if device.type == "cuda" else "desktop-cpu")
    rows = []
    total = len(opts["batch_sizes"])
    for i, batch in enumerate(opts["batch_sizes"]):
        if reporter.should_stop():
            break
        example = torch.randn((batch, *shape), device=device)
        times = time_model(model, example, warmup=opts["warmup"], repeats=opts["repeats"], device=device)
        est = estimate(model, shape, batch_size=batch, profile=profile, default_bits=tuple(opts["default_bits"]))
        median = statistics.median(times)
        q = statistics.quantiles(times, n=10) if len(times) > 1 else [median] * 9
        est_s = est["totals"]["latency_s"]
        rows.append({"batch_size": batch, "median_s": median, "p10_s": q[0], "p90_s": q[-1],
                     "repeats": len(times), "samples_per_s": batch / median, "estimate_s": est_s,
                     "ratio": median / est_s if est_s else None})
        reporter.on_metrics(batch, {"cost/measured_latency_s": median, "cost/estimated_latency_s": est_s,
                                    "cost/latency_ratio": median / est_s if est_s else 0.0})
        reporter.on_log(f"batch {batch}: measured {median * 1e3:.4g} ms, roofline {est_s * 1e3:.4g} ms "
                        f"({median / est_s:.3g}x)" if est_s else f"batch {batch}: measured {median * 1e3:.4g} ms")
        reporter.on_progress(step=i + 1, total=total, message=f"batch {batch}")
    report = estimate(model, shape, batch_size=opts["batch_sizes"][0], profile=profile,
                      default_bits=tuple(opts["default_bits"]))
    report["measured"] = {"device": str(device), "device_name": _device_name(device), "torch": torch.__version__,
                          "warmup": opts["warmup"], "rows": rows}
    label = _LABEL.sub("-", opts["label"]).strip("-") or "measured"
    report["label"] = label
    rel = _publish(report, out_dir=out_dir, reporter=reporter, label=label)
    return {"report": rel, "measured": rows, "device": str(device)}


def _matmul_rate(dtype_name: str, n: int, seconds: float, device: torch.device) -> float:
    """Best observed ops/s (2·n³ per n×n matmul) over a few trials of about ``seconds`` / 3 each."""
    dtype = _DTYPES[dtype_name]
    if dtype_name == "int8":
        a = torch.randint(-64, 64, (n, n), dtype=torch.int8, device=device)

        def op():
            return torch._int_mm(a, a)
    else:
        a = torch.randn(n, n, device=device, dtype=dtype)

        def op():
            return a @ a
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = dtype_name == "tf32"
    try:
        op()
        _sync(device)
        start = time.perf_counter()
        op()
        _sync(device)
        one = max(time.perf_counter() - start, 1e-7)
        iters = max(1, int(seconds / 3 / one))
        best = 0.0
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(iters):
                op()
            _sync(device)
            best = max(best, 2.0 * n**3 * iters / (time.perf_counter() - start))
        return best
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32


def _copy_bandwidth(nbytes: int, seconds: float, device: torch.device) -> float:
    """Best observed bytes/s of a large tensor copy, counting the read and the write (2 × size per copy)."""
    src = torch.empty(nbytes, dtype=torch.uint8, device=device).fill_(1)
    dst = torch.empty_like(src)
    dst.copy_(src)
    _sync(device)
    start = time.perf_counter()
    dst.copy_(src)
    _sync(device)
    iters = max(1, int(seconds / 3 / max(time.perf_counter() - start, 1e-7)))
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(iters):
            dst.copy_(src)
        _sync(device)
        best = max(best, 2.0 * nbytes * iters / (time.perf_counter() - start))
    return best


def calibrate_job(spec: dict[str, Any], out_dir: Path, reporter: Reporter) -> dict[str, Any]:
    """Measure this worker's matmul peak per dtype and copy bandwidth; the result is a profile dict (measured)."""
    opts = _options("calibrate", spec)
    device = _device(spec)
    n = opts["size"] or (8192 if device.type == "cuda" else 512)
    nbytes = (opts["copy_mb"] or (1024 if device.type == "cuda" else 128)) * 2**20
    dtypes = list(opts["dtypes"]) + (["tf32"] if device.type == "cuda" and "fp32" in opts["dtypes"] else [])
    peaks, skipped = {}, {}
    for i, dtype_name in enumerate(dtypes):
        if reporter.should_stop():
            break
        try:
            peaks[dtype_name] = _matmul_rate(dtype_name, n, opts["seconds"], device)
            reporter.on_log(f"{dtype_name} matmul {n}x{n}: {peaks[dtype_name] / 1e9:.4g} G ops/s")
        except (RuntimeError, NotImplementedError) as exc:  # a dtype this device/build cannot multiply
            skipped[dtype_name] = str(exc).splitlines()[0][:200]
            reporter.on_log(f"{dtype_name}: not measured ({skipped[dtype_name]})")
        reporter.on_progress(step=i + 1, total=len(dtypes) + 1, message=dtype_name)
    bandwidth = _copy_bandwidth(nbytes, opts["seconds"], device)
    reporter.on_log(f"copy bandwidth ({nbytes >> 20} MiB): {bandwidth / 1e9:.4g} GB/s")
    reporter.on_progress(step=len(dtypes) + 1, total=len(dtypes) + 1, message="bandwidth")
    profile = {"name": opts["name"], "label": f"Measured: {_device_name(device)}",
               "kind": "gpu" if device.type == "cuda" else "cpu", "peak_ops": peaks, "bandwidth": bandwidth,
               "energy": {}, "measured": True, "measured_on": f"{platform.node()} {_device_name(device)}",
               "notes": f"matmul {n}x{n}, copy {nbytes >> 20} MiB, torch {torch.__version__}"
                        + (f"; not measured: {', '.join(skipped)}" if skipped else "")}
    _write(out_dir, "cost/profile.json", profile)
    reporter.on_artifact("cost/profile.json", kind="device-profile", meta={"name": profile["name"]})
    return {"profile": profile, "skipped": skipped}
