"""BOPs, memory traffic at mixed bit widths, sparsity, roofline classification at the ridge point, energy."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from runner.engine import profiles as P
from runner.engine.cost import apply_profile, estimate, format_table, metrics_from_report
from runner.engine.cost_jobs import calibrate_job, validate_options
from runner.engine.reporter import RecordingReporter


def layer(report, name):
    return next(r for r in report["layers"] if r["name"] == name)


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))


def test_bops_and_traffic_with_mixed_bit_widths_by_hand():
    # given w4a8 on the first linear, w2a4 on the last, fp32 (default) in between
    report = estimate(mlp(), (16,), bits={"0": (4, 8), "2": (2, 4)})
    first, relu, last = layer(report, "0"), layer(report, "1"), layer(report, "2")
    # Linear(16, 8): 128 MACs x 4 x 8 = 4096 BOPs; weights (128 + 8 bias) x 4 bits = 68 B; in 16 x 8 bits = 16 B;
    # out 8 x 8 bits = 8 B
    assert (first["macs"], first["bops"]) == (128, 4096)
    assert (first["weight_bytes"], first["act_in_bytes"], first["act_out_bytes"], first["bytes"]) == (68, 16, 8, 92)
    # ReLU at 32/32: 8 floats in, 8 out, no MACs
    assert (relu["bops"], relu["bytes"]) == (0, 64)
    # Linear(8, 4): 32 MACs x 2 x 4 = 256 BOPs; weights 36 x 2 bits = 9 B; in 8 x 4 bits = 4 B; out 4 x 4 bits = 2 B
    assert (last["bops"], last["bytes"]) == (256, 15)
    assert report["totals"]["bops"] == 4352 and report["totals"]["bytes"] == 171
    assert first["intensity"] == pytest.approx(256 / 92)


def test_activation_by_activation_products_use_activation_bits_twice():
    class Scores(nn.Module):
        def forward(self, x):
            return x @ x.transpose(-1, -2)  # [1, 3, 4] @ [1, 4, 3]: 36 MACs, both operands activations

    report = estimate(Scores(), (3, 4), default_bits=(2, 8))
    assert report["totals"]["macs"] == 36
    assert report["totals"]["bops"] == 36 * 8 * 8


def test_glob_bits_and_unmatched_names():
    report = estimate(mlp(), (16,), bits={"[02]": (8, 8), "nothing.*": (4, 4)})
    assert layer(report, "0")["w_bits"] == 8 and layer(report, "2")["w_bits"] == 8
    assert layer(report, "1")["w_bits"] == 32
    assert any("nothing.*" in note for note in report["notes"])


@pytest.mark.parametrize("bad", [(0, 8), (8,), (33, 8), ("8", 8)])
def test_invalid_bits_are_refused(bad):
    with pytest.raises(ValueError, match="bits"):
        estimate(mlp(), (16,), bits={"0": bad})


def test_sparsity_and_effective_macs_after_unstructured_pruning():
    model = mlp()
    with torch.no_grad():
        w = model[0].weight
        w.view(-1)[: w.numel() // 4] = 0  # a quarter of the first layer's weights
    report = estimate(model, (16,))
    first = layer(report, "0")
    assert first["sparsity"] == pytest.approx(0.25)
    assert first["effective_macs"] == pytest.approx(128 * 0.75)
    assert layer(report, "2")["sparsity"] == 0.0
    assert report["totals"]["effective_macs"] == pytest.approx(96 + 32)


def one_layer_report(peak: float, bandwidth: float) -> dict:
    # Linear(64, 64, bias=False), batch 16, fp32: FLOPs 2*16*64*64 = 131072; bytes 4*(1024 + 1024 + 4096) = 24576
    model = nn.Sequential(nn.Linear(64, 64, bias=False))
    profile = {"name": "test", "peak_ops": {"fp32": peak}, "bandwidth": bandwidth}
    return estimate(model, (64,), batch_size=16, profile=profile)


INTENSITY = 131072 / 24576  # 5.333 FLOP/byte


def test_layer_just_above_the_ridge_is_compute_bound():
    # ridge = peak / bandwidth = 0.99 x the layer's intensity
    report = one_layer_report(peak=0.99 * INTENSITY * 1e9, bandwidth=1e9)
    row = report["layers"][0]
    assert row["intensity"] == pytest.approx(INTENSITY)
    assert row["bound"] == "compute"
    assert row["time_s"] == pytest.approx(131072 / (0.99 * INTENSITY * 1e9))


def test_layer_just_below_the_ridge_is_memory_bound():
    report = one_layer_report(peak=1.01 * INTENSITY * 1e9, bandwidth=1e9)
    row = report["layers"][0]
    assert row["bound"] == "memory"
    assert row["time_s"] == pytest.approx(24576 / 1e9)
    assert report["totals"]["latency_s"] == pytest.approx(24576 / 1e9)


def test_layers_without_macs_are_memory_bound():
    report = estimate(nn.Sequential(nn.ReLU()), (10,))
    assert report["layers"][0]["bound"] == "memory"


def test_profiles_fall_back_to_the_next_wider_unit():
    # the edge GPU lists no int4 peak: a w4a4 layer runs at its int8 rate; the FPGA has int2 units
    assert P.peak_for(P.BUILTIN_PROFILES["jetson-orin"], 4, 4) == ("int8", 85e12)
    assert P.peak_for(P.BUILTIN_PROFILES["fpga-int"], 2, 2)[0] == "int2"
    assert P.peak_for(P.BUILTIN_PROFILES["a100"], 8, 32) == ("fp32", 19.5e12)  # weight-only quantization
    assert P.peak_for(P.BUILTIN_PROFILES["a100"], 16, 16)[0] == "fp16"


def test_lower_bits_are_faster_on_integer_hardware():
    model = nn.Sequential(nn.Linear(512, 512))
    fp32 = estimate(model, (512,), batch_size=256, profile="fpga-int")
    int4 = estimate(model, (512,), batch_size=256, profile="fpga-int", default_bits=(4, 4))
    assert int4["totals"]["latency_s"] < fp32["totals"]["latency_s"] / 10
    assert int4["totals"]["bops"] * 64 == fp32["totals"]["bops"]


def test_energy_from_the_45nm_table_by_hand():
    # Linear(16, 8) at w8a8: E_MAC = 0.2 * 64/64 + 0.03 * 16/8 = 0.26 pJ; 128 MACs -> 33.28 pJ
    # traffic 136 + 16 + 8 = 160 bytes at 640 pJ / 4 bytes = 25600 pJ
    report = estimate(nn.Sequential(nn.Linear(16, 8)), (16,), default_bits=(8, 8))
    row = report["layers"][0]
    assert row["energy_compute_j"] == pytest.approx(33.28e-12)
    assert row["energy_memory_j"] == pytest.approx(25600e-12)
    assert report["totals"]["energy_j"] == pytest.approx(25633.28e-12)


def test_energy_table_overrides_and_bit_scaling():
    assert P.mac_energy_pj(4, 4, P.energy_table()) == pytest.approx(0.2 * 16 / 64 + 0.03)
    assert P.mac_energy_pj(32, 32, P.energy_table()) == pytest.approx(3.7 + 0.9)
    assert P.mac_energy_pj(16, 16, P.energy_table()) == pytest.approx(1.1 + 0.4)
    report = estimate(nn.Sequential(nn.Linear(16, 8)), (16,), default_bits=(8, 8),
                      energy_table={"mac": {"int8": 1.0}, "memory": "sram"})
    row = report["layers"][0]
    assert row["energy_compute_j"] == pytest.approx(128e-12)
    assert row["energy_memory_j"] == pytest.approx(160 * 1.25e-12)


def test_apply_profile_retimes_a_report():
    report = estimate(mlp(), (16,), batch_size=64, profile="a100")
    slow = apply_profile(report, "desktop-cpu")
    assert slow["profile"]["name"] == "desktop-cpu"
    assert slow["totals"]["latency_s"] == pytest.approx(sum(r["time_s"] for r in slow["layers"]))
    assert "fp32" in slow["profile"]["ridge_points"]


def test_metrics_and_table():
    report = estimate(mlp(), (16,))
    metrics = metrics_from_report(report)
    assert set(metrics) == {"cost/macs", "cost/params", "cost/bops", "cost/bytes", "cost/latency_s", "cost/energy_j"}
    assert metrics["cost/macs"] == 160
    text = format_table(report)
    assert "TOTAL" in text and "Linear" in text and "a100" in text


def test_unknown_profile_is_refused():
    with pytest.raises(ValueError, match="unknown profile"):
        estimate(mlp(), (16,), profile="tpu-v9")


def test_calibration_measures_peaks_and_bandwidth(tmp_path):
    reporter = RecordingReporter()
    result = calibrate_job({"device": "cpu", "hyperparameters": {"dtypes": ["fp32"], "size": 128, "copy_mb": 8,
                                                                 "seconds": 0.05}}, tmp_path, reporter)
    profile = result["profile"]
    assert profile["measured"] and profile["peak_ops"]["fp32"] > 1e6 and profile["bandwidth"] > 1e6
    assert (tmp_path / "cost" / "profile.json").is_file()
    assert reporter.artifacts[0][:2] == ("cost/profile.json", "device-profile")
    # the measured profile is usable by the estimator as it is
    assert estimate(mlp(), (16,), profile=profile)["totals"]["latency_s"] > 0


def test_cost_job_options_are_validated():
    clean, errors = validate_options("estimate", {"default_bits": [4, 4], "profile": "nope", "colour": 1})
    assert clean["default_bits"] == [4, 4]
    assert set(errors) == {"hyperparameters.profile", "hyperparameters.colour"}
    _, errors = validate_options("measure", {"batch_sizes": [0]})
    assert "hyperparameters.batch_sizes" in errors


def test_model_sparsity_counts_weight_matrices_only():
    model = mlp()
    with torch.no_grad():
        model[0].bias.zero_()  # zero biases are not pruned weights
        model[2].weight.zero_()  # 32 of the 160 matrix weights
    assert estimate(model, (16,))["totals"]["sparsity"] == pytest.approx(32 / 160)
