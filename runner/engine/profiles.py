"""Device profiles, the energy technology table, and the roofline arithmetic that uses them (no Django).

A profile is a plain dict::

    {"name": "a100", "label": "...", "kind": "gpu" | "edge" | "fpga" | "cpu",
     "peak_ops": {"fp32": OP/s, "fp16": OP/s, "int8": OP/s, ...},   # one MAC = 2 ops, so peaks are FLOP/s (or OP/s)
     "bandwidth": bytes/s,                                            # sustained main-memory bandwidth
     "energy": {...overrides of ENERGY_45NM...}}

The builtin figures are approximate dense (no structured sparsity) vendor peaks, rounded, good for relative
comparisons; edit them in the admin or measure the local machine with the calibration job (runner.engine.cost_jobs).
"""
from __future__ import annotations

import copy
import math
from typing import Any

# --- builtin profiles -------------------------------------------------------------------------------------------

BUILTIN_PROFILES: dict[str, dict[str, Any]] = {
    "a100": {
        "name": "a100",
        "label": "Datacenter GPU (A100-like, 40 GB SXM)",
        "kind": "gpu",
        # NVIDIA A100 datasheet, dense tensor-core peaks: FP32 19.5 TFLOP/s, TF32 156, FP16/BF16 312, INT8 624 TOPS,
        # INT4 1248 TOPS; HBM2 1555 GB/s. Approximate vendor figures.
        "peak_ops": {"fp32": 19.5e12, "tf32": 156e12, "fp16": 312e12, "bf16": 312e12, "int8": 624e12,
                     "int4": 1248e12},
        "bandwidth": 1.555e12,
        "energy": {},
        "notes": "Approximate NVIDIA A100 datasheet figures (dense, no 2:4 sparsity).",
    },
    "jetson-orin": {
        "name": "jetson-orin",
        "label": "Edge GPU (Jetson AGX Orin-like)",
        "kind": "edge",
        # Jetson AGX Orin 64 GB GPU only (no DLA), dense: ~5.3 TFLOP/s FP32, ~42.5 TFLOP/s FP16, ~85 TOPS INT8;
        # LPDDR5 204.8 GB/s. Approximate vendor figures; INT4 is not listed, so int4 layers run at the int8 peak.
        "peak_ops": {"fp32": 5.3e12, "fp16": 42.5e12, "bf16": 42.5e12, "int8": 85e12},
        "bandwidth": 204.8e9,
        "energy": {},
        "notes": "Approximate Jetson AGX Orin GPU figures (dense, DLA excluded).",
    },
    "fpga-int": {
        "name": "fpga-int",
        "label": "FPGA-like integer accelerator",
        "kind": "fpga",
        # Illustrative mid-range FPGA (ZCU104-class): DSP-packed int16/int8, LUT-based low-bit arithmetic whose
        # throughput grows as the bit width shrinks; one DDR4-2400 64-bit channel. Floating point is slow (soft).
        "peak_ops": {"int1": 32e12, "int2": 16e12, "int4": 6e12, "int8": 2e12, "int16": 0.6e12, "fp16": 0.2e12,
                     "fp32": 0.1e12},
        "bandwidth": 19.2e9,
        # On-chip buffers hold a layer's working set, but each layer's inputs/outputs/weights still cross DDR.
        "energy": {},
        "notes": "Illustrative figures, not a product datasheet.",
    },
    "desktop-cpu": {
        "name": "desktop-cpu",
        "label": "Desktop CPU (8-core AVX2/AVX-512-VNNI-like)",
        "kind": "cpu",
        # 8 cores x 4 GHz x 2 FMA units x 8 fp32 lanes x 2 ops ~ 1 TFLOP/s; fp16/bf16 are converted to fp32 (same
        # rate); VNNI int8 ~ 4x fp32. Dual-channel DDR5-5600 ~ 89.6 GB/s. Approximate.
        "peak_ops": {"fp32": 1.0e12, "fp16": 1.0e12, "bf16": 1.0e12, "int8": 4.0e12},
        "bandwidth": 89.6e9,
        "energy": {},
        "notes": "Approximate desktop CPU figures.",
    },
}
DEFAULT_PROFILE = "a100"

# --- energy ------------------------------------------------------------------------------------------------------

# Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, 45 nm, 0.9 V; picojoules.
ENERGY_45NM: dict[str, Any] = {
    "source": "Horowitz, ISSCC 2014, 45 nm",
    "mult_pj": {"int8": 0.2, "int32": 3.1, "fp16": 1.1, "fp32": 3.7},
    "add_pj": {"int8": 0.03, "int32": 0.1, "fp16": 0.4, "fp32": 0.9},
    "sram_32bit_pj": 5.0,  # 8 KB SRAM, one 32-bit read
    "dram_32bit_pj": 640.0,  # one 32-bit DRAM access
    # Which memory each layer's traffic (inputs + outputs + weights) comes from: "dram" or "sram".
    "memory": "dram",
    # Optional direct overrides, pJ per MAC by dtype name: {"int8": 0.25, ...}; and "dram_byte" / "sram_byte" in pJ.
    "mac": {},
}

ENERGY_FORMULA = (
    "E_layer = MACs x E_MAC(b_w, b_a) + bytes x E_byte. Float (max(b_w, b_a) > 8): E_MAC = mult + add of fp16 "
    "(9-16 bits) or fp32 (> 16 bits). Integer (<= 8 bits): E_MAC = 0.2 pJ x b_w x b_a / 64 (multiplier energy "
    "~ array area, quadratic in bits, equal to Horowitz's int8 mult at 8x8) + 0.03 pJ x (b_w + b_a) / 8 (adder "
    "linear in the product width). E_byte = DRAM 640 pJ / 4 bytes (or SRAM 5 pJ / 4 when memory='sram')."
)


def energy_table(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The default 45 nm table with ``overrides`` merged in (nested dicts are merged key by key)."""
    table = copy.deepcopy(ENERGY_45NM)
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(table.get(key), dict):
            table[key].update(value)
        else:
            table[key] = value
    return table


def compute_dtype(w_bits: int, a_bits: int) -> str:
    """The arithmetic a layer needs: the wider operand decides (w4a8 runs as int8; weight-only w8a32 as fp32)."""
    b = max(w_bits, a_bits)
    if b > 16:
        return "fp32"
    if b > 8:
        return "fp16"
    for width in (1, 2, 4, 8):
        if b <= width:
            return f"int{width}"
    return "int8"


def dtype_candidates(w_bits: int, a_bits: int) -> list[str]:
    """Peak-op keys to try, narrowest first: a device without int4 units runs int4 layers on its int8 units."""
    first = compute_dtype(w_bits, a_bits)
    chain = ["int1", "int2", "int4", "int8", "int16", "fp16", "bf16", "fp32"]
    if first.startswith("int"):
        return chain[chain.index(first):]
    if first == "fp16":
        return ["fp16", "bf16", "int16", "fp32"]
    return ["fp32"]


def peak_for(profile: dict[str, Any], w_bits: int, a_bits: int) -> tuple[str, float]:
    """(dtype key used, peak ops/s) for a layer at these bit widths on this profile."""
    peaks = profile.get("peak_ops") or {}
    for key in dtype_candidates(w_bits, a_bits):
        if peaks.get(key):
            return key, float(peaks[key])
    if peaks:  # a profile with only exotic keys: use its slowest unit rather than failing
        key = min(peaks, key=lambda k: peaks[k])
        return key, float(peaks[key])
    raise ValueError(f"profile {profile.get('name')!r} has no peak_ops")


def mac_energy_pj(w_bits: int, a_bits: int, table: dict[str, Any]) -> float:
    """Energy of one multiply-accumulate in picojoules (see ENERGY_FORMULA)."""
    dtype = compute_dtype(w_bits, a_bits)
    override = (table.get("mac") or {}).get(dtype)
    if override is not None:
        return float(override)
    mult, add = table["mult_pj"], table["add_pj"]
    if dtype in ("fp16", "fp32"):
        return float(mult[dtype]) + float(add[dtype])
    return float(mult["int8"]) * w_bits * a_bits / 64.0 + float(add["int8"]) * (w_bits + a_bits) / 8.0


def byte_energy_pj(table: dict[str, Any]) -> float:
    """Energy to move one byte of layer traffic, in picojoules."""
    if table.get("memory") == "sram":
        return float(table.get("sram_byte", float(table["sram_32bit_pj"]) / 4.0))
    return float(table.get("dram_byte", float(table["dram_32bit_pj"]) / 4.0))


def ridge_points(profile: dict[str, Any]) -> dict[str, float]:
    """Arithmetic intensity (FLOP/byte) at which each dtype's roofline turns from memory- to compute-bound."""
    bw = float(profile["bandwidth"])
    return {k: float(v) / bw for k, v in (profile.get("peak_ops") or {}).items() if v}


def roofline(flops: float, nbytes: float, peak: float, bandwidth: float) -> tuple[float, str, float, float]:
    """(time s, "compute"|"memory", compute time s, memory time s) for one layer: max(FLOPs/peak, bytes/bandwidth).

    A layer exactly at the ridge point counts as compute-bound.
    """
    t_compute = flops / peak if peak > 0 else math.inf
    t_memory = nbytes / bandwidth if bandwidth > 0 else math.inf
    bound = "compute" if flops > 0 and t_compute >= t_memory else "memory"
    return max(t_compute, t_memory), bound, t_compute, t_memory


def resolve_profile(profile: dict[str, Any] | str | None) -> dict[str, Any]:
    """A profile dict from a builtin name, a dict (validated), or None (the default)."""
    if profile is None:
        profile = DEFAULT_PROFILE
    if isinstance(profile, str):
        if profile not in BUILTIN_PROFILES:
            raise ValueError(f"unknown profile {profile!r}; builtin: {', '.join(sorted(BUILTIN_PROFILES))}")
        return copy.deepcopy(BUILTIN_PROFILES[profile])
    if not isinstance(profile, dict):
        raise TypeError("profile must be a name or a dict")
    out = copy.deepcopy(profile)
    peaks = out.get("peak_ops")
    if not isinstance(peaks, dict) or not peaks or not all(isinstance(v, int | float) and v > 0
                                                             for v in peaks.values()):
        raise ValueError("profile.peak_ops must map dtype names to positive ops/s")
    if not isinstance(out.get("bandwidth"), int | float) or out["bandwidth"] <= 0:
        raise ValueError("profile.bandwidth must be positive bytes/s")
    out.setdefault("name", "custom")
    out.setdefault("energy", {})
    return out
