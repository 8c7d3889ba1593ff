"""The benchmark runner's command line and report, and that every benchmark module loads. Nothing here measures or
asserts on time: the figures belong to ``python benchmarks/run_all.py``."""
from __future__ import annotations

import subprocess
import sys

import pytest

from benchmarks import run_all
from benchmarks.common import Figure, Section
from tests.conftest import ROOT


def test_help_lists_every_benchmark():
    result = subprocess.run([sys.executable, "benchmarks/run_all.py", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--quick" in result.stdout and "--only" in result.stdout
    for name in run_all.BENCHMARKS:
        assert name in result.stdout


def test_unknown_benchmark_is_refused_naming_the_option(capsys):
    with pytest.raises(SystemExit) as exc:
        run_all.parse_args(["--only", "ingest,nonsense"])
    assert exc.value.code == 2
    assert "--only: unknown benchmark nonsense" in capsys.readouterr().err


@pytest.mark.parametrize("name", run_all.BENCHMARKS)
def test_every_benchmark_module_imports_with_a_run_function(name):
    module = run_all.load_module(name)
    assert callable(module.run) and module.TITLE


def test_engine_quality_specs_are_valid_engine_specs():
    from benchmarks.engine_quality import specs_for
    from runner.engine.jobs import validate_spec

    for quick in (False, True):
        for steps in specs_for(quick).values():
            for step, spec in steps.items():
                spec = {**spec, "checkpoint": "dense/checkpoint.pt"} if step != "dense" else spec
                _, errors = validate_spec(spec)
                assert errors == {}, (step, errors)


def test_report_shows_each_figure_with_baseline_goal_and_result():
    section = Section("ingest", "Ingestion")
    section.figures.append(Figure("points/s", 40_000.0, "points/s", 1_000.0, "MLflow", goal=">= 20x", passed=True))
    section.figures.append(Figure("p95", 900.0, "ms", 1_000.0, "polling", goal="< 500 ms", passed=False))
    skipped = Section("load", "Load", skipped="benchmarks/load.py is not there yet")
    report = {"started": "2026-01-01 00:00 UTC", "quick": True, "command": "python benchmarks/run_all.py --quick",
              "machine": {"cpu_model": "CPU", "cpus": 2, "memory_gib": 4.0, "os": "Linux", "kernel": "6", "python": "3.11",
                          "gpu": "none", "load_average": (1.0, 1.0, 1.0), "versions": {"torch": "2"}},
              "load_average_end": (1.0, 1.0, 1.0), "stack": {}, "notes": ["No GPU"],
              "sections": [section.as_dict(), skipped.as_dict()]}
    md = run_all.markdown(report)
    assert "| ingest | points/s | 40,000 points/s | 1,000 points/s (MLflow) | 40.00× | >= 20x | pass |" in md
    assert "| ingest | p95 | 900.0 ms | 1,000 ms (polling) | 0.90× | < 500 ms | **miss** |" in md
    assert "| load | skipped |" in md and "No GPU" in md
