"""Run Labbook's benchmarks and write a report (Markdown and JSON) to benchmarks/results/.

    python benchmarks/run_all.py [--quick] [--only ingest,chart_read,...] [--list]
    ./lab bench [same arguments]

Each benchmark prints its figures next to a baseline measured in the same run, with its goal and whether it was
met. The benchmarks that need a server start their own: a scratch PostgreSQL database (``labbook_bench``), Redis db
13, uvicorn serving labbook.asgi and a Celery worker; SQLite and the embedded Redis stand in (with a note) on a machine
without PostgreSQL or Redis on 127.0.0.1. ``--quick`` shrinks every workload (a smoke run of a few minutes); figures
from it are indicative only.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` and the Labbook apps importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import RESULTS, ROOT, Context, Section, dumps, log  # noqa: E402

# In the order they run: the server-side benchmarks share one stack; the CPU-heavy ones come last.
BENCHMARKS = ["ingest", "chart_read", "stream_latency", "queue_latency", "load", "tracking_overhead", "estimator",
              "engine_quality"]


MODULES = {"estimator": "estimator_speed", "load": "load_section"}  # other names are their module's


def load_module(name: str):
    return importlib.import_module(f"benchmarks.{MODULES.get(name, name)}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="run_all.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="benchmarks: " + ", ".join(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="small workloads: a smoke run, figures indicative only")
    parser.add_argument("--only", default="", help="comma-separated benchmark names (default: all)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--out", default=str(RESULTS), help="directory for the report (default benchmarks/results)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"--only: unknown benchmark {', '.join(unknown)}; allowed: {', '.join(BENCHMARKS)}")
    args.names = names
    return args


# --- report ----------------------------------------------------------------------------------------------------------

def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if unit == "%":
        return f"{value:.2f} %"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    elif abs(value) >= 0.01 or value == 0:
        text = f"{value:.3f}"
    else:
        text = f"{value:.2e}"
    return f"{text} {unit}".strip()


def verdict(passed: bool | None, goal: str = "") -> str:
    """pass / **miss**; a figure with a goal but no verdict was too noisy to decide (its note says why)."""
    if passed is None:
        return "inconclusive" if goal else "—"
    return "pass" if passed else "**miss**"


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"# Labbook benchmarks — {report['started']}",
        "",
        f"Command: `{report['command']}`{' (quick: small workloads, indicative only)' if report['quick'] else ''}",
        "",
        f"Machine: {m['cpu_model']}, {m['cpus']} CPUs, {m['memory_gib']} GiB, {m['os']} (kernel {m['kernel']}), "
        f"Python {m['python']}, GPU: {m['gpu']}. Load average at start {tuple(round(x, 2) for x in m['load_average'])}, "
        f"at end {tuple(round(x, 2) for x in report['load_average_end'])}.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v),
        "",
        f"Stack: {report['stack'].get('database') or '—'}; {report['stack'].get('redis') or '—'}.",
        "",
        "| benchmark | figure | value | baseline | × baseline | goal | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in report["sections"]:
        if s["skipped"] or s["error"]:
            lines.append(f"| {s['name']} | {'skipped' if s['skipped'] else 'error'} | — | — | — | — | "
                         f"{(s['skipped'] or s['error'].splitlines()[-1])[:150]} |")
            continue
        for f in s["figures"]:
            base = f"{fmt(f['baseline'], f['unit'])} ({f['baseline_label']})" if f["baseline"] is not None else (
                f["baseline_label"] or "—")
            ratio = f"{f['ratio']:.2f}×" if f["ratio"] is not None else "—"
            lines.append(f"| {s['name']} | {f['name']} | {fmt(f['value'], f['unit'])} | {base} | {ratio} | "
                         f"{f['goal'] or '—'} | {verdict(f['passed'], f['goal'])} |")
    lines.append("")
    for s in report["sections"]:
        lines += [f"## {s['title']}", "", f"Time: {s['duration_s']:.0f} s."]
        if s["skipped"]:
            lines.append(f"Skipped: {s['skipped']}")
        if s["error"]:
            lines += ["Error:", "```", s["error"][-3000:], "```"]
        for f in s["figures"]:
            if f["note"]:
                lines.append(f"- {f['name']}: {f['note']}")
        for note in s["notes"]:
            lines.append(f"- {note}")
        lines.append("")
    if report["notes"]:
        lines += ["## Notes", ""] + [f"- {n}" for n in report["notes"]] + [""]
    return "\n".join(lines)


def print_summary(section: Section) -> None:
    if section.skipped:
        print(f"  {section.name}: skipped: {section.skipped}")
        return
    if section.error:
        print(f"  {section.name}: ERROR: {section.error.strip().splitlines()[-1]}")
        return
    for f in section.figures:
        base = f" | baseline {fmt(f.baseline, f.unit)} ({f.baseline_label})" if f.baseline is not None else ""
        ratio = f" = {f.ratio:.2f}x" if f.ratio is not None else ""
        goal = f" | goal {f.goal}: {verdict(f.passed, f.goal).strip('*')}" if f.goal else ""
        print(f"  {section.name} | {f.name}: {fmt(f.value, f.unit)}{base}{ratio}{goal}", flush=True)


# --- main ------------------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for name in BENCHMARKS:
            print(f"{name:18} {load_module(name).TITLE}")
        return 0
    os.chdir(ROOT)
    started = dt.datetime.now(dt.UTC)
    ctx = Context.create(quick=args.quick)
    report: dict = {"started": started.strftime("%Y-%m-%d %H:%M UTC"), "quick": args.quick,
                    "command": " ".join(["python benchmarks/run_all.py", *(argv if argv is not None else sys.argv[1:])]),
                    "machine": ctx.machine, "sections": [], "notes": [], "stack": {}}
    if ctx.machine["gpu"] == "none":
        report["notes"].append("No GPU on this machine: every figure is CPU-only.")
    modules = {name: load_module(name) for name in args.names}
    sections: list[Section] = []
    try:
        if any(getattr(m, "NEEDS_STACK", False) for m in modules.values()):
            ctx.stack.setup()
            report["stack"] = {"database": ctx.stack.database, "redis": ctx.stack.redis}
        for name, module in modules.items():
            log(f"== {name}: {module.TITLE}")
            t0 = time.perf_counter()
            try:
                section = module.run(ctx)
            except Exception:  # noqa: BLE001 - one failing benchmark must not lose the others' figures
                section = Section(name, module.TITLE, error=traceback.format_exc())
            section.duration_s = time.perf_counter() - t0
            sections.append(section)
            print_summary(section)
            report["sections"] = [s.as_dict() for s in sections]
            write_report(report, Path(args.out), started, partial=True)
    finally:
        ctx.stack.close()
        report["notes"] += ctx.stack.notes
        report["load_average_end"] = os.getloadavg()
        report["sections"] = [s.as_dict() for s in sections]
        md_path = write_report(report, Path(args.out), started)
        shutil.rmtree(ctx.scratch, ignore_errors=True)
    print(f"\nreport: {md_path} (and .json); latest: {Path(args.out) / 'latest.md'}")
    return 0


def write_report(report: dict, out: Path, started: dt.datetime, partial: bool = False) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    report.setdefault("load_average_end", os.getloadavg())
    stem = out / f"bench-{started.strftime('%Y%m%d-%H%M%S')}"
    md, js = markdown(report), dumps(report)
    stem.with_suffix(".md").write_text(md)
    stem.with_suffix(".json").write_text(js)
    if not partial:
        (out / "latest.md").write_text(md)
        (out / "latest.json").write_text(js)
    return stem.with_suffix(".md")


if __name__ == "__main__":
    sys.exit(main())
