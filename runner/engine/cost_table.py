"""Human-readable formatting of cost reports: SI units and the fixed-width per-layer table the CLI prints."""
from __future__ import annotations

from typing import Any


def fmt_si(value: float, unit: str = "") -> str:
    """1234567 -> '1.23M' (3 significant digits, SI prefix)."""
    value = float(value)
    if value == 0:
        return f"0{unit}"
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{prefix}{unit}"
    return f"{value:.3g}{unit}"


def fmt_seconds(value: float) -> str:
    for factor, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if value >= factor:
            return f"{value / factor:.3g}{unit}"
    return f"{value * 1e9:.3g}ns"


def fmt_joules(value: float) -> str:
    for factor, unit in ((1.0, "J"), (1e-3, "mJ"), (1e-6, "µJ"), (1e-9, "nJ")):
        if value >= factor:
            return f"{value / factor:.3g}{unit}"
    return f"{value * 1e12:.3g}pJ"


def format_table(report: dict[str, Any]) -> str:
    """The report as a fixed-width text table (the CLI prints this)."""
    head = ["layer", "type", "output", "params", "MACs", "w/a", "sparse", "BOPs", "bytes", "FLOP/B", "time",
            "bound", "energy"]
    rows = [head]
    for r in report["layers"]:
        rows.append([r["name"], r["type"], "x".join(map(str, r["output_shape"] or [])), fmt_si(r["params"]),
                     fmt_si(r["macs"]), f"{r['w_bits']}/{r['a_bits']}", f"{r['sparsity']:.0%}", fmt_si(r["bops"]),
                     fmt_si(r["bytes"], "B"), f"{r['intensity']:.3g}", fmt_seconds(r["time_s"]), r["bound"],
                     fmt_joules(r["energy_j"])])
    t = report["totals"]
    rows.append(["TOTAL", "", "", fmt_si(t["params"]), fmt_si(t["macs"]), "", f"{t['sparsity']:.0%}", fmt_si(t["bops"]),
                 fmt_si(t["bytes"], "B"), f"{t['intensity']:.3g}", fmt_seconds(t["latency_s"]), "",
                 fmt_joules(t["energy_j"])])
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(-1, lines[1])
    prof = report["profile"]
    lines.append("")
    lines.append(f"profile: {prof.get('name')} ({prof.get('label', '')}), bandwidth {fmt_si(prof['bandwidth'], 'B/s')}; "
                 f"batch {report['batch_size']}; counted on {report['mode']} tensors")
    lines.append(report["counted_ops"])
    lines.extend(f"note: {n}" for n in report["notes"])
    return "\n".join(lines)
