"""Quantization: observers, quantizers, PTQ, QAT with LSQ, mixed precision and real int8 on CPU (tiny budgets)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from runner.engine.common import evaluate, example_input, load_checkpoint, load_data, model_from_checkpoint
from runner.engine.fakequant import Quantizer, QuantLayer, fake_quant
from runner.engine.jobs import run_job
from runner.engine.quantize import int8_cpu, layer_bits, quantize_model, quantized_model_from_checkpoint
from runner.engine.reporter import RecordingReporter

LAYERS = ["features.0.0", "features.1.0", "features.3.0", "classifier"]


def quant_spec(checkpoint, **hyperparameters) -> dict:
    hp = {"finetune_epochs": 0, "real_int8": False, "train_subset": 256} | hyperparameters
    return {"kind": "quantize", "dataset": "digits", "device": "cpu", "seed": 0, "checkpoint": str(checkpoint),
            "hyperparameters": hp}


def calibrated(x: torch.Tensor, bits: int = 4, **options) -> Quantizer:
    q = Quantizer(bits, **options)
    q(x)
    q.freeze()
    return q


def mse(q: Quantizer, x: torch.Tensor) -> float:
    return float(((q(x) - x) ** 2).mean())


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("symmetric", [True, False])
def test_quantized_weights_take_at_most_2_to_the_b_values_per_channel(trained_cnn, tmp_path, bits, symmetric):
    summary = run_job(quant_spec(trained_cnn, w_bits=bits, a_bits=8, first_last_8bit=False, symmetric=symmetric),
                      tmp_path, RecordingReporter())
    state = load_checkpoint(tmp_path / "checkpoint.pt")["model"]
    for name in LAYERS:
        w = state[f"{name}.weight"].flatten(1)
        assert max(len(torch.unique(row)) for row in w) <= 2 ** bits
        assert summary["bits"][name] == [bits, 8]
    # at 8 bits nearly every channel uses more than 2^4 levels: the checkpoint is not secretly coarser
    if bits == 8:
        assert max(len(torch.unique(row)) for row in state["features.3.0.weight"].flatten(1)) > 16


def test_per_tensor_weights_share_one_grid(trained_cnn, tmp_path):
    run_job(quant_spec(trained_cnn, w_bits=4, first_last_8bit=False, granularity="per_tensor"), tmp_path,
            RecordingReporter())
    w = load_checkpoint(tmp_path / "checkpoint.pt")["model"]["features.1.0.weight"]
    assert len(torch.unique(w)) <= 16  # the whole tensor, not each channel


def test_percentile_observer_clips_outliers_and_mse_is_no_worse_than_minmax():
    # Given mostly Gaussian values with a few large outliers
    x = torch.randn(20_000, generator=torch.Generator().manual_seed(0))
    x[:5] = torch.tensor([40.0, -35.0, 30.0, 50.0, -45.0])
    minmax = calibrated(x, observer="minmax")
    percentile = calibrated(x, observer="percentile", percentile=99.9)
    best = calibrated(x, observer="mse")
    # Then min-max stretches its range to the outliers; percentile clips them; MSE finds a lower error
    assert float(minmax.scale) * minmax.qmax == pytest.approx(50.0)
    assert float(percentile.scale) * percentile.qmax < 5.0
    assert float(percentile(torch.tensor([50.0]))) < 5.0  # an outlier is clipped
    assert mse(best, x) <= mse(minmax, x)
    assert mse(percentile, x) < mse(minmax, x)


def test_power_of_two_scales_are_powers_of_two(trained_cnn):
    x = torch.randn(4096) * 3.7
    for granularity in (None, 0):
        q = calibrated(x.reshape(64, 64), bits=6, power_of_two=True, channel_axis=granularity)
        log2 = torch.log2(q.scale)
        assert torch.equal(log2, log2.round())
    data = load_data({"dataset": "digits", "seed": 0})
    model = model_from_checkpoint(load_checkpoint(trained_cnn))
    qmodel, wrapped = quantize_model(model, layer_bits(model, w_bits=4, a_bits=4), [data.x_train[:64]],
                                     power_of_two=True)
    for q in wrapped.values():
        for s in (q.wq.scale, q.aq.scale):
            assert torch.equal(torch.log2(s), torch.log2(s).round())


def test_asymmetric_quantizer_uses_a_zero_point_and_keeps_zero_exact():
    x = torch.linspace(-1.0, 3.0, 1000)
    asym = calibrated(x, bits=4, symmetric=False)
    sym = calibrated(x, bits=4, symmetric=True)
    assert (asym.qmin, asym.qmax) == (0, 15) and float(asym.zero_point) == round(1.0 / float(asym.scale))
    assert float(sym.zero_point) == 0 and (sym.qmin, sym.qmax) == (-7, 7)
    assert float(asym(torch.zeros(1))) == 0.0
    assert mse(asym, x) < mse(sym, x)  # a lopsided range wastes levels on a symmetric grid
    # non-negative inputs (after a ReLU) get the unsigned range even when symmetric
    relu = calibrated(x.clamp(min=0), bits=4, symmetric=True)
    assert (relu.qmin, relu.qmax) == (0, 15)


def test_fake_quant_passes_gradients_straight_through():
    x = torch.tensor([0.26, -0.74, 5.0], requires_grad=True)
    y = fake_quant(x, torch.tensor(0.5), torch.tensor(0.0), -3, 3)
    assert y.tolist() == [0.5, -0.5, 1.5]
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 0.0]  # identity inside the range, zero where clamped


def test_lsq_step_sizes_receive_gradients(trained_cnn):
    data = load_data({"dataset": "digits", "seed": 0})
    model = model_from_checkpoint(load_checkpoint(trained_cnn))
    qmodel, wrapped = quantize_model(model, layer_bits(model, w_bits=3, a_bits=3), [data.x_train[:128]])
    for q in wrapped.values():
        q.wq.make_learnable()
        q.aq.make_learnable()
    qmodel.train()
    nn.functional.cross_entropy(qmodel(data.x_train[:64]), data.y_train[:64]).backward()
    for name, q in wrapped.items():
        for quantizer in (q.wq, q.aq):
            assert isinstance(quantizer.scale, nn.Parameter), name
            assert quantizer.scale.grad is not None and torch.isfinite(quantizer.scale.grad).all()
            assert quantizer.scale.grad.abs().sum() > 0, name


@pytest.mark.parametrize("learned_step", [True, False])
def test_qat_trains_the_quantized_model(trained_cnn, tmp_path, learned_step):
    # Given 2-bit weights and activations everywhere, where post-training quantization loses a lot
    reporter = RecordingReporter()
    summary = run_job(quant_spec(trained_cnn, method="qat", w_bits=2, a_bits=2, first_last_8bit=False,
                                 finetune_epochs=3, train_subset=512, learned_step=learned_step, lr=2e-3),
                      tmp_path, reporter)
    # Then training lowers the loss epoch over epoch and ends above the PTQ accuracy
    losses = [m["qat/train_loss"] for _, m in reporter.metrics if "qat/train_loss" in m]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert summary["test_acc"] > summary["ptq_acc"]
    assert {"qat/loss", "qat/acc", "qat/lr", "qat/samples_per_s"} <= set().union(*(m for _, m in reporter.metrics))
    # and the checkpoint still holds 2-bit weights
    state = load_checkpoint(tmp_path / "checkpoint.pt")["model"]
    assert max(len(torch.unique(row)) for row in state["features.1.0.weight"].flatten(1)) <= 4
    scales = load_checkpoint(tmp_path / "checkpoint.pt")["quant"]["layers"]
    assert all(math.isfinite(c["a_scale"]) and c["a_scale"] > 0 for c in scales.values())


def test_mixed_precision_overrides_and_first_last_default_to_8_bits(trained_cnn, tmp_path):
    # Given W4A4 with one middle layer at 2-bit weights
    summary = run_job(quant_spec(trained_cnn, w_bits=4, a_bits=4, layer_bits={"features.3.0": [2, 6]}), tmp_path,
                      RecordingReporter())
    # Then the first and last layers stayed at 8 bits, the override applied, the rest took the default
    assert summary["bits"] == {"features.0.0": [8, 8], "features.1.0": [4, 4], "features.3.0": [2, 6],
                               "classifier": [8, 8]}
    state = load_checkpoint(tmp_path / "checkpoint.pt")["model"]
    assert max(len(torch.unique(row)) for row in state["features.3.0.weight"].flatten(1)) <= 4
    config = load_checkpoint(tmp_path / "checkpoint.pt")["quant"]["layers"]
    assert config["features.3.0"]["a_bits"] == 6 and config["features.3.0"]["a_qmax"] in (31, 63)
    # and without the default, every layer takes w_bits/a_bits
    model = model_from_checkpoint(load_checkpoint(tmp_path / "checkpoint.pt"))
    assert set(layer_bits(model, w_bits=4, a_bits=4, first_last_8bit=False).values()) == {(4, 4)}


def test_cost_reports_use_the_bit_widths(trained_cnn, tmp_path):
    reporter = RecordingReporter()
    run_job(quant_spec(trained_cnn, w_bits=4, a_bits=4), tmp_path, reporter)
    fp32, quant = reporter.costs
    assert fp32["label"] == "fp32" and quant["label"] == "ptq W4A4"
    assert quant["totals"]["macs"] == fp32["totals"]["macs"] and quant["totals"]["bops"] < fp32["totals"]["bops"] / 4


def test_unknown_layer_in_layer_bits_names_the_field(trained_cnn, tmp_path):
    with pytest.raises(ValueError, match="hyperparameters.layer_bits.*features.9"):
        run_job(quant_spec(trained_cnn, layer_bits={"features.9": [4, 4]}), tmp_path, RecordingReporter())


def test_int8_cpu_model_is_close_to_fp32_and_its_latency_is_reported(trained_cnn, tmp_path):
    # Given the real int8 conversion (torch.ao quantized kernels) of the trained CNN
    data = load_data({"dataset": "digits", "seed": 0})
    model = model_from_checkpoint(load_checkpoint(trained_cnn)).eval()
    qmodel = int8_cpu(model, [data.x_train[i:i + 64] for i in range(0, 512, 64)], example_input(data))
    assert any("quantized" in type(m).__module__ for m in qmodel.modules())
    # Then its logits are close to fp32's and its predictions nearly always agree
    with torch.no_grad():
        ref, out = model(data.x_test), qmodel(data.x_test)
    assert float((out - ref).norm() / ref.norm()) < 0.05
    assert float((out.argmax(1) == ref.argmax(1)).float().mean()) > 0.97
    # and a job measures its latency beside the fp32 model's
    reporter = RecordingReporter()
    summary = run_job(quant_spec(trained_cnn, real_int8=True, latency_runs=3), tmp_path, reporter)
    int8 = summary["real_int8"]
    assert int8["supported"] and int8["latency_s"] > 0 and int8["fp32_latency_s"] > 0
    assert abs(int8["test_acc"] - summary["fp32_acc"]) < 0.03
    assert "int8_latency_s" in reporter.metrics[-1][1]


def test_transformer_feed_forward_layers_are_quantized_and_attention_stays_float(tmp_path):
    spec = {"kind": "train", "model": "vit", "dataset": "digits", "device": "cpu", "seed": 0,
            "model_options": {"dim": 16, "depth": 1, "heads": 2},
            "hyperparameters": {"epochs": 1, "batch_size": 64, "lr": 0.05, "train_subset": 128}}
    run_job(spec, tmp_path, RecordingReporter())
    data = load_data({"dataset": "digits", "seed": 0})
    model = model_from_checkpoint(load_checkpoint(tmp_path / "checkpoint.pt")).eval()
    bits = layer_bits(model, w_bits=2, a_bits=2, first_last_8bit=False)
    assert "encoder.layers.0.linear1" in bits and "encoder.layers.0.self_attn.out_proj" not in bits
    qmodel, wrapped = quantize_model(model, bits, [data.x_train[:64]])
    # in eval mode too (where PyTorch has a fused transformer path), the 2-bit wrappers are what runs
    with torch.no_grad():
        assert not torch.allclose(qmodel.eval()(data.x_test[:32]), model(data.x_test[:32]), atol=1e-3)
        wrapped["encoder.layers.0.linear1"].aq.mode = "off"
        wrapped["encoder.layers.0.linear1"].wq.mode = "off"
        changed = qmodel(data.x_test[:32])
    with torch.no_grad():
        wrapped["encoder.layers.0.linear1"].aq.mode = "quant"
        wrapped["encoder.layers.0.linear1"].wq.mode = "quant"
        assert not torch.equal(changed, qmodel(data.x_test[:32]))


@pytest.mark.parametrize("options", [{"method": "ptq", "observer": "mse", "symmetric": False},
                                     {"method": "qat", "finetune_epochs": 2, "power_of_two": True}])
def test_quantized_checkpoint_reloads_to_the_model_the_job_evaluated(trained_cnn, tmp_path, options):
    # Given a quantize job (PTQ, or QAT with LSQ step sizes that moved away from their calibrated values)
    reporter = RecordingReporter()
    summary = run_job(quant_spec(trained_cnn, w_bits=3, a_bits=4, **options), tmp_path, reporter)
    # When its checkpoint is loaded (weights_only=True) and rebuilt with its stored quantizers
    model = quantized_model_from_checkpoint(load_checkpoint(tmp_path / "checkpoint.pt"))
    # Then it reaches exactly the accuracy the job reported for its fake-quant model
    data = load_data({"dataset": "digits", "seed": 0})
    assert evaluate(model, data.x_test, data.y_test, torch.device("cpu"))["acc"] == summary["test_acc"]
    assert sum(isinstance(m, QuantLayer) for m in model.modules()) == 4
    if options["method"] == "qat":  # one checkpoint per QAT epoch, each with a cost report
        assert [a[0] for a in reporter.artifacts if a[1] == "checkpoint"] == [
            "checkpoints/qat_epoch_0001.pt", "checkpoints/qat_epoch_0002.pt", "checkpoint.pt"]
        assert [c["label"] for c in reporter.costs] == ["fp32", "qat epoch 1", "qat epoch 2", "qat W3A4"]
