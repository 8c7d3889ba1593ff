"""The job form (/jobs/new/): the same spec as POST /api/jobs/, with selects filled from the engine's registries."""
from __future__ import annotations

from typing import Any

import yaml
from django import forms

from runner.registry import engine_choices
from runner.services import RUNNER_FIELDS

STANDARD_FIELDS = ("kind", "model", "dataset", "hyperparameters", "device", "processes", "seed", "checkpoint",
                   *RUNNER_FIELDS)


def _choices(names: list[str], blank: str | None = None) -> list[tuple[str, str]]:
    items = [(n, n) for n in names]
    return ([("", blank)] if blank is not None else []) + items


def _yaml_mapping(text: str, field: str) -> dict[str, Any]:
    text = (text or "").strip()
    if not text:
        return {}
    try:
        value = yaml.safe_load(text)  # JSON is YAML too; safe_load builds plain data only
    except yaml.YAMLError as exc:
        raise forms.ValidationError(f"not valid YAML/JSON: {exc}".splitlines()[0]) from exc
    if not isinstance(value, dict):
        raise forms.ValidationError(f"{field} must be a mapping of name: value")
    return value


class JobForm(forms.Form):
    kind = forms.ChoiceField()
    model = forms.ChoiceField(required=False)
    dataset = forms.ChoiceField(required=False)
    hyperparameters = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 6}),
                                      help_text="YAML or JSON, e.g. epochs: 1")
    extra = forms.CharField(label="Other spec fields", required=False, widget=forms.Textarea(attrs={"rows": 3}),
                            help_text="YAML or JSON for engine fields not above (e.g. method, sparsity, bits)")
    device = forms.ChoiceField(choices=_choices(["auto", "cpu", "cuda"]), initial="auto")
    processes = forms.IntegerField(min_value=1, max_value=64, initial=1, help_text="DDP processes")
    queue = forms.ChoiceField(choices=_choices(["cpu", "gpu"], blank="from device"), required=False)
    timeout = forms.IntegerField(required=False, min_value=1, help_text="seconds (default 24 h)")
    seed = forms.IntegerField(required=False, min_value=0)
    parent_run = forms.IntegerField(required=False, min_value=1, help_text="start from this run's newest checkpoint")
    checkpoint = forms.CharField(required=False, help_text="'<run id>/<path>' of a checkpoint artifact")
    project = forms.CharField(initial="default", max_length=200)
    name = forms.CharField(required=False, max_length=200)
    tags = forms.CharField(required=False, help_text="comma-separated")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        choices = engine_choices()
        self.fields["kind"].choices = _choices(choices["kind"])
        self.fields["model"].choices = _choices(choices["model"], blank="—")
        self.fields["dataset"].choices = _choices(choices["dataset"], blank="—")

    def clean_hyperparameters(self) -> dict:
        return _yaml_mapping(self.cleaned_data.get("hyperparameters", ""), "hyperparameters")

    def clean_extra(self) -> dict:
        return _yaml_mapping(self.cleaned_data.get("extra", ""), "other spec fields")

    def spec(self) -> dict[str, Any]:
        data = self.cleaned_data
        spec: dict[str, Any] = dict(data.get("extra") or {})
        for name in ("kind", "model", "dataset", "device", "processes", "queue", "timeout", "seed", "parent_run",
                     "checkpoint", "project", "name"):
            if data.get(name) not in (None, ""):
                spec[name] = data[name]
        if data.get("hyperparameters"):
            spec["hyperparameters"] = data["hyperparameters"]
        tags = [t.strip() for t in (data.get("tags") or "").split(",") if t.strip()]
        if tags:
            spec["tags"] = tags
        return spec

    @classmethod
    def initial_from_spec(cls, spec: dict[str, Any]) -> dict[str, Any]:
        """Form values that reproduce a submitted spec ("clone and modify")."""
        initial = {k: v for k, v in spec.items() if k in STANDARD_FIELDS and k not in ("hyperparameters", "tags")}
        if spec.get("hyperparameters"):
            initial["hyperparameters"] = yaml.safe_dump(spec["hyperparameters"], sort_keys=False, allow_unicode=True)
        extra = {k: v for k, v in spec.items() if k not in STANDARD_FIELDS}
        if extra:
            initial["extra"] = yaml.safe_dump(extra, sort_keys=False, allow_unicode=True)
        if spec.get("tags"):
            initial["tags"] = ", ".join(spec["tags"])
        return initial
