"""Job spec validation: every field is checked against a registry or a typed range, never evaluated.

``validate(spec)`` returns (normalised spec with defaults filled in, errors by field). Hyperparameter errors are keyed
``hyperparameters.<name>``; each message names the field and the allowed values or range.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runner.engine.datasets import DATASETS
from runner.engine.models import MODELS, NOT_STRUCTURALLY_PRUNABLE

DEVICES = ("auto", "cpu", "cuda")
IMPORTANCES = ("l1", "l2", "bn_scale", "taylor")


@dataclass(frozen=True)
class P:
    """One hyperparameter: type, default, and either an inclusive range or a set of choices."""

    type: type
    default: Any
    lo: float | None = None
    hi: float | None = None
    choices: tuple | None = None
    lo_open: bool = False  # True: the lower bound itself is not allowed (lr > 0)


TRAIN = {
    "epochs": P(int, 10, 1, 10000),
    "batch_size": P(int, 64, 1, 65536),
    "lr": P(float, 0.05, 0, 10, lo_open=True),
    "optimizer": P(str, "sgd", choices=("sgd", "adamw")),
    "momentum": P(float, 0.9, 0, 0.999),
    "nesterov": P(bool, True),
    "weight_decay": P(float, 5e-4, 0, 1),
    "schedule": P(str, "cosine", choices=("cosine", "step", "constant")),
    "warmup_epochs": P(float, 0.0, 0, 1000),
    "step_size": P(int, 30, 1, 10000),
    "gamma": P(float, 0.1, 0, 1, lo_open=True),
    "label_smoothing": P(float, 0.0, 0, 0.99),
    "grad_clip": P(float, 0.0, 0, 1e6),
    "amp": P(str, "auto", choices=("auto", "off", "bf16", "fp16")),
    "eval_batch_size": P(int, 512, 1, 65536),
    "train_subset": P(int, 0, 0, 10_000_000),  # 0 = all; for smoke tests
    "log_every": P(int, 10, 1, 100000),
    "deterministic": P(bool, True),
}
FINETUNE = {k: v for k, v in TRAIN.items() if k != "epochs"} | {
    "lr": P(float, 0.01, 0, 10, lo_open=True),
    "finetune_epochs": P(int, 2, 0, 10000),
}
PRUNE = FINETUNE | {
    "method": P(str, "structured", choices=("structured", "unstructured")),
    "importance": P(str, "l1", choices=IMPORTANCES),
    "target_macs": P(float, 0.5, 0.01, 1.0),  # share of the dense MACs to keep
    "steps": P(int, 1, 1, 100),
    "amount": P(float, 0.5, 0.0, 0.99),  # unstructured: share of weights set to zero
    "scope": P(str, "layer", choices=("layer", "global")),
    "round_to": P(int, 1, 1, 256),
}
SENSITIVITY = {
    "importance": P(str, "l1", choices=("l1", "l2")),
    "ratios": P(list, [0.25, 0.5, 0.75], 0.01, 0.99),
    "eval_batch_size": P(int, 512, 1, 65536),
    "max_eval_samples": P(int, 0, 0, 10_000_000),
}
QUANTIZE = FINETUNE | {
    "method": P(str, "ptq", choices=("ptq", "qat")),
    "w_bits": P(int, 8, 2, 8),
    "a_bits": P(int, 8, 2, 8),
    "observer": P(str, "minmax", choices=("minmax", "percentile", "mse")),
    "percentile": P(float, 99.99, 90, 100),
    "granularity": P(str, "per_channel", choices=("per_channel", "per_tensor")),
    "symmetric": P(bool, True),
    "power_of_two": P(bool, False),
    "learned_step": P(bool, True),  # QAT: LSQ step sizes; False = fixed scales from calibration + STE
    "step_lr_scale": P(float, 1.0, 0, 100),  # QAT with LSQ: step sizes learn at this multiple of lr
    "first_last_8bit": P(bool, True),
    "layer_bits": P(dict, {}),  # {layer name: [w_bits, a_bits]}
    "calib_batches": P(int, 8, 1, 10000),
    "real_int8": P(bool, True),  # also convert with torch.ao (x86/qnnpack) and measure CPU latency
    "latency_runs": P(int, 30, 3, 10000),
    "finetune_epochs": P(int, 3, 0, 10000),
    "lr": P(float, 1e-3, 0, 10, lo_open=True),
    "optimizer": P(str, "adamw", choices=("sgd", "adamw")),
    "weight_decay": P(float, 0.0, 0, 1),
}
SCHEMAS: dict[str, dict[str, P]] = {"train": TRAIN, "prune": PRUNE, "quantize": QUANTIZE, "sensitivity": SENSITIVITY}
NEEDS_CHECKPOINT = ("prune", "quantize", "sensitivity")


def _range_text(p: P) -> str:
    lo = "" if p.lo is None else f"{'>' if p.lo_open else '>='} {p.lo:g}"
    hi = "" if p.hi is None else f"<= {p.hi:g}"
    return " and ".join(x for x in (lo, hi) if x)


def _check_value(name: str, p: P, value: Any) -> tuple[Any, str | None]:
    if p.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if p.type is not bool and isinstance(value, bool) or not isinstance(value, p.type):
        return value, f"{name} must be of type {p.type.__name__}, got {type(value).__name__}"
    if p.choices is not None and value not in p.choices:
        return value, f"unknown {name} {value!r}; allowed: {', '.join(map(str, p.choices))}"
    if p.type is list:
        bad = [v for v in value if not isinstance(v, int | float) or isinstance(v, bool)
               or not (p.lo <= v <= p.hi)]
        if bad or not value:
            return value, f"{name} must be a non-empty list of numbers {_range_text(p)}"
        return [float(v) for v in value], None
    if p.type in (int, float):
        if (p.lo is not None and (value < p.lo or (p.lo_open and value == p.lo))) or (
                p.hi is not None and value > p.hi):
            return value, f"{name} must be {_range_text(p)}, got {value}"
    return value, None


def _check_layer_bits(value: dict) -> str | None:
    for layer, bits in value.items():
        if not isinstance(layer, str) or not isinstance(bits, list | tuple) or len(bits) != 2 or not all(
                isinstance(b, int) and not isinstance(b, bool) and 2 <= b <= 8 for b in bits):
            return f"layer_bits maps a layer name to [w_bits, a_bits] with bits in 2..8; bad entry for {layer!r}"
    return None


def _validate_calibrate(spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """A calibrate job measures the device it runs on: no model, dataset or checkpoint, one process."""
    from runner.engine.cost_jobs import validate_options

    clean = dict(spec)
    hp = spec.get("hyperparameters") or {}
    if not isinstance(hp, dict):
        return clean, {"hyperparameters": "hyperparameters must be an object"}
    clean["hyperparameters"], errors = validate_options("calibrate", hp)
    clean["device"] = spec.get("device", "auto")
    if clean["device"] not in DEVICES:
        errors["device"] = f"unknown device {clean['device']!r}; allowed: {', '.join(DEVICES)}"
    clean["processes"] = spec.get("processes", 1)
    if clean["processes"] != 1:
        errors["processes"] = "a calibration runs in one process; use processes 1"
    for field in ("model", "dataset", "checkpoint"):
        if spec.get(field) not in (None, ""):
            errors[field] = f"a calibrate job measures the device and takes no {field}"
        clean.pop(field, None)
    return clean, errors


def validate(spec: Any) -> tuple[dict[str, Any], dict[str, str]]:
    from runner.engine import jobs

    errors: dict[str, str] = {}
    if not isinstance(spec, dict):
        return {}, {"spec": "a job spec must be a JSON object"}
    clean: dict[str, Any] = dict(spec)
    kinds = sorted(jobs.job_kinds())
    kind = spec.get("kind")
    if kind not in kinds:
        errors["kind"] = f"unknown kind {kind!r}; allowed: {', '.join(kinds)}"
    if kind == "calibrate":
        return _validate_calibrate(spec)

    model = spec.get("model")
    if model is None and not (kind in NEEDS_CHECKPOINT and spec.get("checkpoint")):
        errors["model"] = f"model is required; allowed: {', '.join(sorted(MODELS))}"
    elif model is not None and model not in MODELS:
        errors["model"] = f"unknown model {model!r}; allowed: {', '.join(sorted(MODELS))}"
    dataset = spec.get("dataset", "digits")
    clean["dataset"] = dataset
    if dataset not in DATASETS:
        errors["dataset"] = f"unknown dataset {dataset!r}; allowed: {', '.join(sorted(DATASETS))}"
    for field in ("model_options", "dataset_options"):
        clean[field] = spec.get(field) or {}
        if not isinstance(clean[field], dict):
            errors[field] = f"{field} must be an object"
    device = spec.get("device", "auto")
    clean["device"] = device
    if device not in DEVICES:
        errors["device"] = f"unknown device {device!r}; allowed: {', '.join(DEVICES)}"
    for field, default, lo, hi in (("processes", 1, 1, 64), ("seed", 0, 0, 2**31 - 1)):
        value = spec.get(field, default)
        clean[field] = value
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            errors[field] = f"{field} must be an integer from {lo} to {hi}, got {value!r}"
    for field in ("checkpoint", "data_dir"):
        value = spec.get(field)
        if value is not None and (not isinstance(value, str) or not value):
            errors[field] = f"{field} must be a non-empty path string"
    if kind != "train" and isinstance(clean["processes"], int) and clean["processes"] > 1:
        errors["processes"] = "only train jobs run data-parallel; use processes 1"
    clean["resume"] = spec.get("resume", False)
    if not isinstance(clean["resume"], bool):
        errors["resume"] = "resume must be true or false"
    if kind in NEEDS_CHECKPOINT and not spec.get("checkpoint"):
        errors["checkpoint"] = f"a {kind} job needs the checkpoint of a trained model"
    if clean["resume"] and not spec.get("checkpoint"):
        errors["checkpoint"] = "resume needs the checkpoint to resume from"

    hp = spec.get("hyperparameters") or {}
    if not isinstance(hp, dict):
        errors["hyperparameters"] = "hyperparameters must be an object"
        hp = {}
    schema = SCHEMAS.get(kind)
    if schema is None:  # estimate / measure: the cost jobs own their options and check them
        from runner.engine.cost_jobs import OPTIONS, validate_options

        if kind in OPTIONS:
            hp, problems = validate_options(kind, hp)
            errors.update(problems)
        clean["hyperparameters"] = dict(hp)
        return clean, errors
    out: dict[str, Any] = {}
    for name, value in hp.items():
        if name not in schema:
            errors[f"hyperparameters.{name}"] = (f"unknown hyperparameter {name!r} for {kind}; allowed: "
                                                 f"{', '.join(sorted(schema))}")
            continue
        out[name], problem = _check_value(name, schema[name], value)
        if problem:
            errors[f"hyperparameters.{name}"] = problem
    for name, p in schema.items():
        out.setdefault(name, p.default)
    if kind == "quantize" and isinstance(out.get("layer_bits"), dict) and (problem := _check_layer_bits(
            out["layer_bits"])):
        errors["hyperparameters.layer_bits"] = problem
    if "batch_size" in out and isinstance(clean.get("processes"), int) and clean["processes"] > 1 and isinstance(
            out["batch_size"], int) and out["batch_size"] % clean["processes"]:
        errors["hyperparameters.batch_size"] = (f"batch_size ({out['batch_size']}) must be divisible by processes "
                                                f"({clean['processes']}): each process takes an equal share")
    if kind in ("prune", "sensitivity") and model in NOT_STRUCTURALLY_PRUNABLE and out.get("method",
                                                                                           "structured") == "structured":
        errors["model"] = (f"structured pruning supports {', '.join(m for m in sorted(MODELS) if m not in NOT_STRUCTURALLY_PRUNABLE)}"
                           f"; use method 'unstructured' for {model}")
    clean["hyperparameters"] = out
    return clean, errors
