"""Pages: the runs table, a run, the compare page, and CSV exports. Thin: selectors read, templates render."""
from __future__ import annotations

import csv
import json

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render

from experiments import analysis, selectors
from experiments.query import QueryError

MAX_TABLE_ROWS = 500
MAX_COMPARE = 20


def _run_rows(request: HttpRequest):
    q = request.GET.get("q", "")
    sort = request.GET.get("sort", "")
    error = None
    try:
        runs = list(selectors.runs_filtered(request.user, q, sort=sort)[:MAX_TABLE_ROWS])
    except QueryError as exc:
        error = exc
        runs = list(selectors.runs_for(request.user)[:MAX_TABLE_ROWS])
    return q, sort, error, runs


@login_required
def runs_list(request: HttpRequest) -> HttpResponse:
    q, sort, error, runs = _run_rows(request)
    table = selectors.runs_table(runs)
    rows = [{"run": r, "cells": [(c.id, _display(selectors.cell_value(r, c.id))) for c in table.columns]}
            for r in runs]
    return render(request, "experiments/runs_list.html", {
        "q": q, "sort": sort, "error": error, "rows": rows, "columns": table.columns,
        "default_visible": table.default_visible, "truncated": len(runs) == MAX_TABLE_ROWS,
    }, status=400 if error else 200)


def _display(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str | int | bool):
        return str(value)
    return json.dumps(value)


def _safe_cell(value) -> str:
    """Numbers as they are; text cells that a spreadsheet would run as a formula get a leading quote."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        text = value if isinstance(value, str) else json.dumps(value)
        return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
    return repr(value)


class _Echo:
    def write(self, value: str) -> str:
        return value


@login_required
def runs_export_csv(request: HttpRequest) -> HttpResponse:
    q, sort, error, runs = _run_rows(request)
    if error:
        return HttpResponse(str(error), status=400, content_type="text/plain; charset=utf-8")
    table = selectors.runs_table(runs)
    writer = csv.writer(_Echo())

    def rows():
        yield writer.writerow(["id", "name", "project", "status", "kind", "tags", "created", "parent",
                               *[c.id for c in table.columns]])
        for r in runs:
            yield writer.writerow([r.pk, _safe_cell(r.name), _safe_cell(r.project.name), r.status, r.kind,
                                   _safe_cell(" ".join(r.tags or [])), r.created_at.isoformat(), r.parent_id or "",
                                   *[_safe_cell(selectors.cell_value(r, c.id)) for c in table.columns]])

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="runs.csv"'
    return response


@login_required
def run_series_csv(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(selectors.runs_for(request.user), pk=pk)
    keys = [k for k in request.GET.get("keys", "").split(",") if k] or None
    writer = csv.writer(_Echo())

    def rows():
        yield writer.writerow(["key", "step", "value", "wall_time"])
        for key, step, value, wall in selectors.series_iter(run, keys):
            yield writer.writerow([key, step, repr(value), repr(wall)])

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="run-{run.pk}-series.csv"'
    return response


def _render_notes(run, viewer) -> str:
    """A run's Markdown notes, sanitised, with [[run:…]]/[[paper:…]]/[[log:…]] links resolved for the viewer."""
    if not run.notes:
        return ""
    from notes.selectors import render_markdown_for

    return render_markdown_for(run.notes, viewer=viewer, author_id=run.owner_id)


@login_required
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(selectors.runs_for(request.user), pk=pk)
    try:
        import yaml

        config_text = yaml.safe_dump(run.config, sort_keys=False, allow_unicode=True) if run.config else ""
    except Exception:  # noqa: BLE001 - fall back to JSON for anything YAML can't dump
        config_text = json.dumps(run.config, indent=2, ensure_ascii=False)
    summary = sorted((run.metric_summary or {}).items())
    return render(request, "experiments/run_detail.html", {
        "run": run, "obj": run, "config_text": config_text, "params": sorted((run.params or {}).items()),
        "environment": sorted((run.environment or {}).items()), "summary": summary,
        "metric_keys": [k for k, _ in summary], "lineage": selectors.run_lineage(run),
        "artifacts": selectors.artifacts_for(run), "notes_html": _render_notes(run, request.user),
    })


@login_required
def runs_compare(request: HttpRequest) -> HttpResponse:
    ids = []
    for part in request.GET.get("ids", "").split(","):
        if part.strip().isdigit():
            ids.append(int(part))
    runs = list(selectors.runs_for(request.user).filter(pk__in=ids[:MAX_COMPARE]).order_by("pk"))
    diff = analysis.config_diff({r.pk: r.params or {} for r in runs})
    keys = sorted({k for r in runs for k in (r.metric_summary or {})})
    summary = {r.pk: {k: v for k, v in (r.metric_summary or {}).items()} for r in runs}
    default_x = next((k for k in ("cost/macs", "cost/bops", "cost/latency_s", "cost/params") if k in keys),
                     keys[0] if keys else "")
    default_y = next((k for k in keys if "acc" in k.lower()), keys[-1] if keys else "")
    return render(request, "experiments/compare.html", {
        "runs": runs, "diff": diff, "metric_keys": keys,
        "compare_data": {
            "runs": [{"id": r.pk, "name": r.name} for r in runs], "keys": keys, "summary": summary,
            "default_x": default_x, "default_y": default_y,
        },
    })
