"""Django side of the hardware-cost estimator: device profiles, estimating a spec, attaching reports to runs.

Writes (services) are ``<entity>_<action>`` functions, keyword-only; reads are the ``*_get`` / ``*_list`` selectors.
The arithmetic lives in runner.engine.cost (plain PyTorch); this module resolves names against the registries and
the database and stores what comes back.
"""
from __future__ import annotations

import hashlib
import json
import math
import pickle
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from experiments import storage
from experiments.models import Artifact, Run
from experiments.services import Point, metrics_ingest_batch
from runner.engine import profiles as engine_profiles
from runner.models import DeviceProfile

COST_REPORT_KIND = "cost-report"
MAX_INPUT_ELEMENTS = 50_000_000  # batch x sample elements; meta tensors cost nothing, a real fallback would
MAX_BATCH = 65536
# One sample's shape and class count per dataset, so an estimate never loads data (CIFAR-10 is 170 MB).
DATASET_SHAPES: dict[str, dict[str, Any]] = {
    "digits": {"input_shape": [1, 8, 8], "num_classes": 10},
    "mnist1d": {"input_shape": [1, 40], "num_classes": 10},
    "points": {"input_shape": [3, 256], "num_classes": 6},
    "cifar10": {"input_shape": [3, 32, 32], "num_classes": 10},
}


# --- device profiles ----------------------------------------------------------------------------------------------

def device_profiles_ensure_builtin() -> None:
    """Create the builtin profiles the first time they are needed (edits made in the admin are kept)."""
    existing = set(DeviceProfile.objects.filter(name__in=engine_profiles.BUILTIN_PROFILES).values_list("name",
                                                                                                         flat=True))
    for name, prof in engine_profiles.BUILTIN_PROFILES.items():
        if name not in existing:
            DeviceProfile.objects.get_or_create(
                name=name, defaults={"label": prof["label"], "kind": prof["kind"], "peak_ops": prof["peak_ops"],
                                     "bandwidth": prof["bandwidth"], "energy": prof.get("energy", {}),
                                     "notes": prof.get("notes", "")})


def device_profile_list() -> list[DeviceProfile]:
    device_profiles_ensure_builtin()
    return list(DeviceProfile.objects.all())


def device_profile_engine(name: str, *, field: str = "profile") -> dict[str, Any]:
    """The engine dict for a profile name (database first, so admin edits apply); ValidationError naming ``field``."""
    device_profiles_ensure_builtin()
    row = DeviceProfile.objects.filter(name=name).first() if isinstance(name, str) else None
    if row is None:
        names = ", ".join(DeviceProfile.objects.values_list("name", flat=True))
        raise ValidationError({field: f"unknown profile {name!r}; allowed: {names}"})
    return row.as_engine_profile()


def device_profile_as_dict(row: DeviceProfile) -> dict[str, Any]:
    prof = row.as_engine_profile()
    return {**prof, "measured": row.measured, "measured_on": row.measured_on, "notes": row.notes,
            "ridge_points": engine_profiles.ridge_points(prof) if prof["bandwidth"] > 0 else {}}


def device_profile_writable(name: str) -> bool:
    """Whether a calibration job may save under ``name``: a new name, or one that holds a measured profile (the
    builtin and hand-edited profiles are shared by everyone and change only in the admin)."""
    if name in engine_profiles.BUILTIN_PROFILES:
        return False
    row = DeviceProfile.objects.filter(name=name).only("measured").first()
    return row is None or row.measured


@transaction.atomic
def device_profile_save_measured(*, profile: dict[str, Any], name: str | None = None) -> DeviceProfile:
    """Store a profile measured by the calibration job (runner.engine.cost_jobs.calibrate_job) as measured=True."""
    peaks = {k: float(v) for k, v in (profile.get("peak_ops") or {}).items() if isinstance(v, int | float) and v > 0}
    bandwidth = profile.get("bandwidth")
    if not peaks:
        raise ValidationError({"peak_ops": "a measured profile needs at least one positive peak"})
    if not isinstance(bandwidth, int | float) or not bandwidth > 0:
        raise ValidationError({"bandwidth": "a measured profile needs a positive bandwidth"})
    row, _ = DeviceProfile.objects.update_or_create(
        name=name or profile.get("name") or "local",
        defaults={"label": str(profile.get("label") or "Measured")[:200], "kind": profile.get("kind", "cpu"),
                  "peak_ops": peaks, "bandwidth": float(bandwidth), "measured": True,
                  "measured_on": str(profile.get("measured_on", ""))[:200], "notes": str(profile.get("notes", "")),
                  "updated_at": timezone.now()})
    return row


# --- registries ---------------------------------------------------------------------------------------------------

def model_names() -> list[str]:
    from runner.engine.models import MODELS

    return sorted(MODELS)


def dataset_shapes() -> dict[str, dict[str, Any]]:
    return dict(DATASET_SHAPES)


# --- estimating a spec without a job --------------------------------------------------------------------------------

def _bits_pair(value: Any, field: str) -> tuple[int, int]:
    if (not isinstance(value, list | tuple) or len(value) != 2
            or not all(isinstance(b, int) and not isinstance(b, bool) and 1 <= b <= 32 for b in value)):
        raise ValidationError({field: "must be [w_bits, a_bits], integers from 1 to 32"})
    return int(value[0]), int(value[1])


def cost_estimate_spec(*, model: str, dataset: str | None = None, input_shape: list[int] | None = None,
                       num_classes: int | None = None, model_options: dict[str, Any] | None = None,
                       bits: dict[str, Any] | None = None, profile: str = engine_profiles.DEFAULT_PROFILE,
                       batch_size: int = 1) -> dict[str, Any]:
    """Build a registry model (parameters on the meta device: nothing is allocated or initialised) and estimate it.

    ``bits`` is {"default": [w, a], "layers": {name or glob: [w, a]}}. Raises ValidationError naming the field.
    """
    import torch

    from runner.engine import cost
    from runner.engine.models import build_model

    names = model_names()
    if model not in names:
        raise ValidationError({"model": f"unknown model {model!r}; allowed: {', '.join(names)}"})
    if input_shape is None:
        if dataset is None:
            raise ValidationError({"dataset": "give a dataset or an input_shape"})
        if dataset not in DATASET_SHAPES:
            raise ValidationError({"dataset": f"unknown dataset {dataset!r}; allowed: {', '.join(DATASET_SHAPES)} "
                                              "(or give input_shape)"})
        input_shape = DATASET_SHAPES[dataset]["input_shape"]
        num_classes = num_classes or DATASET_SHAPES[dataset]["num_classes"]
    if (not isinstance(input_shape, list | tuple) or not 1 <= len(input_shape) <= 4
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in input_shape)):
        raise ValidationError({"input_shape": "one sample's shape: 1 to 4 positive integers, e.g. [3, 32, 32]"})
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or not 1 <= batch_size <= MAX_BATCH:
        raise ValidationError({"batch_size": f"must be an integer from 1 to {MAX_BATCH}"})
    if math.prod(input_shape) * batch_size > MAX_INPUT_ELEMENTS:
        raise ValidationError({"input_shape": f"batch x input is over {MAX_INPUT_ELEMENTS:,} elements"})
    bits = bits or {}
    if not isinstance(bits, dict):
        raise ValidationError({"bits": "must be an object {default: [w, a], layers: {name: [w, a]}}"})
    default_bits = _bits_pair(bits.get("default", [32, 32]), "bits.default")
    layers = bits.get("layers") or {}
    if not isinstance(layers, dict):
        raise ValidationError({"bits.layers": "must map layer names (or globs) to [w_bits, a_bits]"})
    layer_bits = {str(k): _bits_pair(v, f"bits.layers.{k}") for k, v in layers.items()}
    engine_profile = device_profile_engine(profile)
    try:
        try:
            with torch.device("meta"):
                net = build_model(model, tuple(input_shape), int(num_classes or 10), **(model_options or {}))
        except (RuntimeError, NotImplementedError):  # a constructor that needs real values: build it for real
            net = build_model(model, tuple(input_shape), int(num_classes or 10), **(model_options or {}))
    except ValueError as exc:  # the registry's ModelError: wrong input rank, unknown model option
        field = "model_options" if "option" in str(exc) else "input_shape" if dataset is None else "dataset"
        raise ValidationError({field: str(exc)}) from exc
    report = cost.estimate(net, tuple(input_shape), bits=layer_bits, default_bits=default_bits,
                           profile=engine_profile, batch_size=batch_size)
    report["spec"] = {"model": model, "dataset": dataset, "input_shape": list(input_shape),
                      "num_classes": num_classes, "batch_size": batch_size, "profile": profile,
                      "bits": {"default": list(default_bits), "layers": {k: list(v) for k, v in layer_bits.items()}}}
    return report


def cost_estimate_checkpoint(*, owner, checkpoint: str, bits: dict[str, Any] | None = None,
                             profile: str = engine_profiles.DEFAULT_PROFILE, batch_size: int = 1) -> dict[str, Any]:
    """Estimate a checkpoint artifact ("<run id>/<path>") of one of ``owner``'s runs, with its real weights (so
    pruned zeros show as sparsity). Raises ValidationError naming the field."""
    from runner.engine import cost
    from runner.engine.common import load_checkpoint, model_from_checkpoint

    run_part, _, rel = str(checkpoint).partition("/")
    artifact = None
    if run_part.isdigit() and rel and ".." not in rel.split("/") and not rel.startswith("/"):
        artifact = Artifact.objects.filter(run__owner=owner, run_id=int(run_part), path=rel).select_related("run").first()
    if artifact is None:
        raise ValidationError({"checkpoint": "must be '<run id>/<path>' of a checkpoint artifact of one of your runs"})
    path = _artifact_file(artifact.run, rel)
    if path is None:
        raise ValidationError({"checkpoint": f"the file of {checkpoint!r} is missing"})
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or not 1 <= batch_size <= MAX_BATCH:
        raise ValidationError({"batch_size": f"must be an integer from 1 to {MAX_BATCH}"})
    bits = bits or {}
    if not isinstance(bits, dict) or not isinstance(bits.get("layers") or {}, dict):
        raise ValidationError({"bits": "must be an object {default: [w, a], layers: {name: [w, a]}}"})
    default_bits = _bits_pair(bits.get("default", [32, 32]), "bits.default")
    layer_bits = {str(k): _bits_pair(v, f"bits.layers.{k}") for k, v in (bits.get("layers") or {}).items()}
    engine_profile = device_profile_engine(profile)
    try:
        ckpt = load_checkpoint(path)
        model = model_from_checkpoint(ckpt)
    except (ValueError, KeyError, TypeError, RuntimeError, OSError, pickle.UnpicklingError) as exc:
        # weights_only refuses anything but tensors and plain data (UnpicklingError): a 400, never a 500.
        raise ValidationError({"checkpoint": f"not a Labbook engine checkpoint: {str(exc)[:200]}"}) from exc
    shape = tuple(ckpt["arch"]["input_shape"])
    report = cost.estimate(model, shape, bits=layer_bits, default_bits=default_bits, profile=engine_profile,
                           batch_size=batch_size)
    report["spec"] = {"checkpoint": checkpoint, "model": ckpt["arch"].get("model"), "input_shape": list(shape),
                      "batch_size": batch_size, "profile": profile,
                      "bits": {"default": list(default_bits), "layers": {k: list(v) for k, v in layer_bits.items()}}}
    return report


# --- reports attached to runs --------------------------------------------------------------------------------------

def _run_dir(run: Run) -> Path:
    # The root is resolved, the run's directory is not: a run directory that is a link elsewhere then fails the
    # ``is_relative_to`` checks of the readers (see experiments.storage.resolve_in_run).
    return Path(settings.ARTIFACT_ROOT).resolve() / str(run.pk)


def _safe_label(label: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in (label or "model")).strip("-.")
    return cleaned[:100] or "model"


@transaction.atomic
def cost_report_attach(*, run: Run, report: dict[str, Any], label: str = "model",
                       step: int | None = None) -> Artifact:
    """Store ``report`` as the artifact ``cost/<label>.json`` of ``run`` and log its totals as ``cost/*`` metrics.

    Metrics go to ``step``; without one, to the report's index among the run's cost reports (0, 1, 2, ...).
    Idempotent: attaching the same label again replaces the file and refreshes the artifact row; metric points
    already stored at that step are kept (metrics_ingest_batch never stores a (key, step) twice).
    """
    from runner.engine.cost import metrics_from_report

    rel = f"cost/{_safe_label(label)}.json"
    if step is None:
        # Each report gets its own metric step (its index among the run's reports), so a new report adds a point
        # and becomes the series' last value; re-attaching a label keeps the step it had.
        existing = Artifact.objects.filter(run=run, path=rel).first()
        prior = (existing.meta or {}).get("step") if existing and isinstance(existing.meta, dict) else None
        step = prior if isinstance(prior, int) else (
            Artifact.objects.filter(run=run, kind=COST_REPORT_KIND).exclude(path=rel).count())
    path = _run_dir(run) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(report, default=str).encode()
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    totals = report.get("totals") or {}
    artifact, _ = Artifact.objects.update_or_create(
        run=run, path=rel,
        defaults={"kind": COST_REPORT_KIND, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                  "created_at": timezone.now(),
                  "meta": {"label": label, "step": step, "profile": (report.get("profile") or {}).get("name"),
                           "macs": totals.get("macs"), "bops": totals.get("bops")}})
    now = time.time()
    points = [Point(key=k, step=int(step), value=v, wall_time=now)
              for k, v in metrics_from_report(report).items()]
    metrics_ingest_batch(run=run, points=points)
    return artifact


@transaction.atomic
def cost_estimate_run(*, run: Run, bits: dict[str, Any] | None = None,
                      profile: str = engine_profiles.DEFAULT_PROFILE, batch_size: int = 1) -> Artifact:
    """Estimate a run's newest checkpoint (or, failing that, the registry model its config names) and attach the
    report to the run as ``cost/estimate-<profile>.json``. ValidationError naming ``run`` when there is nothing to
    estimate."""
    checkpoint = (Artifact.objects.filter(run=run, kind="checkpoint").order_by("-created_at", "-id").first())
    config = run.config if isinstance(run.config, dict) else {}
    if checkpoint is not None:
        report = cost_estimate_checkpoint(owner=run.owner, checkpoint=f"{run.pk}/{checkpoint.path}", bits=bits,
                                          profile=profile, batch_size=batch_size)
    elif isinstance(config.get("model"), str) and (config.get("dataset") or config.get("input_shape")):
        report = cost_estimate_spec(model=config["model"], dataset=config.get("dataset"),
                                    input_shape=config.get("input_shape"), bits=bits, profile=profile,
                                    batch_size=batch_size, model_options=config.get("model_options") or None)
    else:
        raise ValidationError({"run": "this run has no checkpoint artifact and its config names no registry model"})
    return cost_report_attach(run=run, report=report, label=f"estimate-{profile}")


def _artifact_file(run: Run, rel: str) -> Path | None:
    """The regular file ``rel`` names in the run's artifact directory, or None (outside it, unsafe or missing)."""
    try:
        path = storage.resolve_in_run(run.pk, rel)
    except storage.UnsafePath:
        return None
    return path if path.is_file() else None


def _read_json(run: Run, rel: str, max_bytes: int = 50 * 2**20) -> Any | None:
    path = _artifact_file(run, rel)
    if path is None or path.stat().st_size > max_bytes:
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def cost_report_latest(*, run: Run) -> dict[str, Any] | None:
    """The newest cost report of ``run`` (by artifact time), or None."""
    for artifact in Artifact.objects.filter(run=run, kind=COST_REPORT_KIND).order_by("-created_at", "-id")[:5]:
        report = _read_json(run, artifact.path)
        if isinstance(report, dict) and isinstance(report.get("layers"), list):
            report.setdefault("label", artifact.meta.get("label") if isinstance(artifact.meta, dict) else None)
            return report
    return None


def cost_report_history(*, run: Run, limit: int = 200) -> list[dict[str, Any]]:
    """One line per cost report of ``run``, oldest first: label, step, MACs, BOPs (from the artifact rows' meta)."""
    out = []
    for artifact in Artifact.objects.filter(run=run, kind=COST_REPORT_KIND).order_by("created_at", "id")[:limit]:
        meta = artifact.meta if isinstance(artifact.meta, dict) else {}
        out.append({"label": meta.get("label") or artifact.path, "step": meta.get("step"), "macs": meta.get("macs"),
                    "bops": meta.get("bops"), "profile": meta.get("profile"), "path": artifact.path,
                    "created_at": artifact.created_at.isoformat()})
    return out


def sensitivity_get(*, run: Run) -> dict[str, Any] | None:
    """The run's ``sensitivity.json`` ({layers, ratios, acc[layer][ratio]}) if it has one and it is well formed."""
    artifact = (Artifact.objects.filter(run=run, path__endswith="sensitivity.json")
                .order_by("-created_at", "-id").first())
    if artifact is None:
        return None
    data = _read_json(run, artifact.path)
    if not isinstance(data, dict):
        return None
    layers, ratios, acc = data.get("layers"), data.get("ratios"), data.get("acc")
    if not (isinstance(layers, list) and isinstance(ratios, list) and isinstance(acc, list)
            and len(acc) == len(layers) and all(isinstance(row, list) and len(row) == len(ratios) for row in acc)):
        return None
    return {"layers": layers, "ratios": ratios, "acc": acc, "baseline": data.get("baseline")}


def cost_spec_resolve_profiles(spec: dict[str, Any]) -> dict[str, Any]:
    """A copy of an estimate/measure job spec whose profile names are replaced by the database's profile dicts.

    The engine knows only the builtin profiles; a measured ("local") or admin-edited profile reaches it this way.
    Raises ValidationError keyed ``hyperparameters.profile`` / ``hyperparameters.profiles`` for unknown names.
    """
    hp = dict(spec.get("hyperparameters") or {})
    if isinstance(hp.get("profile"), str):
        hp["profile"] = device_profile_engine(hp["profile"], field="hyperparameters.profile")
    if isinstance(hp.get("profiles"), list):
        hp["profiles"] = [device_profile_engine(p, field="hyperparameters.profiles") if isinstance(p, str) else p
                          for p in hp["profiles"]]
    return {**spec, "hyperparameters": hp}
