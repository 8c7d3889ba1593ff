"""Command line: run a job spec (YAML or JSON) without Django, with a progress bar and printed metrics.

    python -m runner.engine spec.yaml --out runs/first
    python -m runner.engine --list
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from runner.engine.datasets import DatasetError
from runner.engine.jobs import JOB_KINDS, SpecError, run_job


class CliReporter:
    """Prints logs and epoch metrics above a tqdm bar; Ctrl-C asks the job to stop at the next step."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None
        self.stop = False

    def on_metrics(self, step, metrics, *, epoch=None):
        if any(k.endswith(("val_acc", "test_acc")) or k.startswith("cost/") or k in ("macs_ratio", "quant_acc")
               for k in metrics):
            tqdm.write(f"[step {step}] " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
        elif self.bar is not None:
            self.bar.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in metrics.items() if "samples" not in k})

    def on_progress(self, *, step, total, epoch=None, message=""):
        if self.bar is None or self.bar.total != total:
            if self.bar is not None:
                self.bar.close()
            self.bar = tqdm(total=total, dynamic_ncols=True)
        self.bar.n = min(step, total)
        self.bar.set_description(message)
        self.bar.refresh()

    def on_log(self, line):
        tqdm.write(line)

    def on_artifact(self, path, *, kind, meta=None):
        tqdm.write(f"wrote {kind}: {path}")

    def on_cost(self, report, *, step=None, label=""):
        totals = report.get("totals", {}) if isinstance(report, dict) else {}
        tqdm.write(f"cost ({label}): " + ", ".join(f"{k}={v:.3g}" for k, v in totals.items()
                                                   if isinstance(v, (int, float))))

    def should_stop(self):
        return self.stop


def load_spec(path: Path) -> dict[str, Any]:
    text = path.read_text()
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runner.engine", description=__doc__.split("\n")[0])
    parser.add_argument("spec", nargs="?", type=Path, help="job spec file (.yaml, .yml or .json)")
    parser.add_argument("--out", type=Path, default=Path("engine-runs/latest"), help="output directory")
    parser.add_argument("--list", action="store_true", help="list job kinds, models and datasets")
    args = parser.parse_args(argv)
    if args.list or args.spec is None:
        from runner.engine.datasets import DATASETS
        from runner.engine.models import MODELS

        print("kinds:   ", ", ".join(JOB_KINDS))
        print("models:  ", ", ".join(MODELS))
        print("datasets:", ", ".join(DATASETS))
        return 0 if args.list else 2
    if not args.spec.is_file():
        parser.error(f"spec file {args.spec} not found")
    reporter = CliReporter()
    try:
        summary = run_job(load_spec(args.spec), args.out, reporter)
    except SpecError as exc:
        for field, problem in exc.errors.items():
            print(f"error: {field}: {problem}", file=sys.stderr)
        return 2
    except DatasetError as exc:
        print(f"error: dataset: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        if reporter.bar is not None:
            reporter.bar.close()
    print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
