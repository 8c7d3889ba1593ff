"""Cost estimator pages: /cost/ (estimate a registry model: table, roofline, bars) and /cost/profiles/."""
from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import render
from django.views.decorators.http import require_GET

from experiments.models import Artifact
from runner import costs
from runner.engine import profiles as engine_profiles
from runner.engine.cost import fmt_joules, fmt_seconds, fmt_si

BIT_CHOICES = [(b, str(b)) for b in (32, 16, 8, 6, 4, 3, 2, 1)]


class EstimateForm(forms.Form):
    checkpoint = forms.ChoiceField(required=False, help_text="a checkpoint of one of your runs (instead of a model)")
    model = forms.ChoiceField(required=False)
    dataset = forms.ChoiceField(required=False, help_text="or give an input shape")
    input_shape = forms.CharField(required=False, max_length=60, help_text="one sample, e.g. 3,32,32")
    w_bits = forms.TypedChoiceField(choices=BIT_CHOICES, coerce=int, initial=32, label="Weight bits")
    a_bits = forms.TypedChoiceField(choices=BIT_CHOICES, coerce=int, initial=32, label="Activation bits")
    layer_bits = forms.CharField(required=False, max_length=4000, label="Per-layer bits",
                                 widget=forms.Textarea(attrs={"rows": 3, "placeholder": "fc: 8,8\nlayer1.*: 4,4"}),
                                 help_text="one 'name or glob: w,a' per line")
    profile = forms.ChoiceField()
    batch_size = forms.IntegerField(min_value=1, max_value=costs.MAX_BATCH, initial=1)

    def __init__(self, *args, models: list[str], profiles: list[str], checkpoints: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["checkpoint"].choices = [("", "—")] + checkpoints
        self.fields["model"].choices = [(m, m) for m in models]
        self.fields["dataset"].choices = [("", "—")] + [(d, d) for d in costs.dataset_shapes()]
        self.fields["profile"].choices = [(p, p) for p in profiles]
        self.fields["profile"].initial = engine_profiles.DEFAULT_PROFILE

    def clean_input_shape(self) -> list[int] | None:
        text = self.cleaned_data["input_shape"].strip()
        if not text:
            return None
        try:
            shape = [int(part) for part in text.replace("x", ",").split(",") if part.strip()]
        except ValueError:
            raise forms.ValidationError("comma-separated positive integers, e.g. 3,32,32") from None
        if not shape or any(s < 1 for s in shape):
            raise forms.ValidationError("comma-separated positive integers, e.g. 3,32,32")
        return shape

    def clean_layer_bits(self) -> dict[str, list[int]]:
        out = {}
        for number, line in enumerate(self.cleaned_data["layer_bits"].splitlines(), start=1):
            if not line.strip():
                continue
            name, sep, pair = line.rpartition(":")
            try:
                w, a = (int(x) for x in pair.split(","))
            except ValueError:
                raise forms.ValidationError(f"line {number}: write 'name: w,a'") from None
            if not sep or not name.strip() or not (1 <= w <= 32 and 1 <= a <= 32):
                raise forms.ValidationError(f"line {number}: write 'name: w,a' with bits from 1 to 32")
            out[name.strip()] = [w, a]
        return out

    def clean(self):
        data = super().clean()
        if data.get("checkpoint"):
            return data
        if not data.get("model"):
            self.add_error("model", "choose a model or a checkpoint")
        if not data.get("dataset") and not data.get("input_shape") and "input_shape" not in self.errors:
            self.add_error("dataset", "choose a dataset or give an input shape")
        return data


def layer_rows(report: dict) -> list[dict]:
    """Formatted cells for the per-layer table (numbers stay in the JSON for the charts)."""
    rows = []
    for r in report["layers"]:
        rows.append({**r, "shape_in": "×".join(map(str, r["input_shape"] or [])),
                     "shape_out": "×".join(map(str, r["output_shape"] or [])), "params_h": fmt_si(r["params"]),
                     "macs_h": fmt_si(r["macs"]), "bops_h": fmt_si(r["bops"]), "bytes_h": fmt_si(r["bytes"], "B"),
                     "weight_h": fmt_si(r["weight_bytes"], "B"),
                     "act_h": fmt_si(r["act_in_bytes"] + r["act_out_bytes"], "B"),
                     "sparsity_pct": f"{r['sparsity']:.0%}", "intensity_h": f"{r['intensity']:.3g}",
                     "time_h": fmt_seconds(r["time_s"]), "energy_h": fmt_joules(r["energy_j"])})
    return rows


def totals_display(report: dict) -> dict[str, str]:
    t = report["totals"]
    return {"MACs": fmt_si(t["macs"]), "FLOPs": fmt_si(t["flops"]), "Params": fmt_si(t["params"]),
            "BOPs": fmt_si(t["bops"]), "Traffic": fmt_si(t["bytes"], "B"), "Latency": fmt_seconds(t["latency_s"]),
            "Energy": fmt_joules(t["energy_j"]), "Sparsity": f"{t['sparsity']:.1%}"}


@login_required
@require_GET
def estimate_page(request):
    """The estimate form (GET, so a result is a link you can share); results below it."""
    try:
        models = costs.model_names()
    except ImportError:
        models = []
    profiles = costs.device_profile_list()
    checkpoints = [(f"{a.run_id}/{a.path}", f"#{a.run_id} {a.run.name} · {a.path}")
                   for a in Artifact.objects.filter(run__owner=request.user, kind="checkpoint")
                   .select_related("run").order_by("-created_at")[:50]]
    form = EstimateForm(request.GET or None, models=models, profiles=[p.name for p in profiles],
                        checkpoints=checkpoints)
    report = None
    if form.is_bound and form.is_valid():
        d = form.cleaned_data
        bits = {"default": [d["w_bits"], d["a_bits"]], "layers": d["layer_bits"]}
        try:
            if d["checkpoint"]:
                report = costs.cost_estimate_checkpoint(owner=request.user, checkpoint=d["checkpoint"], bits=bits,
                                                        profile=d["profile"], batch_size=d["batch_size"])
            else:
                report = costs.cost_estimate_spec(
                    model=d["model"], dataset=d["dataset"] or None, input_shape=d["input_shape"], bits=bits,
                    profile=d["profile"], batch_size=d["batch_size"])
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, messages)
    context = {"form": form, "report": report, "profiles": [costs.device_profile_as_dict(p) for p in profiles],
               "rows": layer_rows(report) if report else [], "totals": totals_display(report) if report else {}}
    return render(request, "runner/cost_estimate.html", context, status=400 if form.errors else 200)


def _plain(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


@login_required
@require_GET
def profiles_page(request):
    profiles = [costs.device_profile_as_dict(p) for p in costs.device_profile_list()]
    for p in profiles:
        p["peaks"] = [(k, fmt_si(v, "OP/s"), _plain(p["ridge_points"].get(k, 0))) for k, v in p["peak_ops"].items()]
        p["bandwidth_h"] = fmt_si(p["bandwidth"], "B/s")
    return render(request, "runner/cost_profiles.html",
                  {"profiles": profiles, "energy": engine_profiles.ENERGY_45NM,
                   "energy_formula": engine_profiles.ENERGY_FORMULA})
