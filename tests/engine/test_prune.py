"""Structured and unstructured pruning on a small digits CNN (tiny budgets: behaviour, not quality)."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from runner.engine.common import example_input, load_checkpoint, load_data, model_from_checkpoint, save_checkpoint
from runner.engine.jobs import run_job
from runner.engine.models import describe_channels
from runner.engine.prune import count_macs, prune_to_macs
from runner.engine.reporter import RecordingReporter
from tests.engine.conftest import train_spec

LAYERS = ["features.0.0", "features.1.0", "features.3.0"]  # the CNN's convs; the classifier is never pruned


def prune_spec(checkpoint, **hyperparameters) -> dict:
    hp = {"finetune_epochs": 0, "train_subset": 128} | hyperparameters
    return {"kind": "prune", "dataset": "digits", "device": "cpu", "seed": 0, "checkpoint": str(checkpoint),
            "hyperparameters": hp}


def metric_rows(reporter, key):
    return [m for _, m in reporter.metrics if key in m]


def conv_widths(state: dict) -> list[int]:
    return [state[f"{name}.weight"].shape[0] for name in LAYERS]


def test_one_shot_pruning_removes_channels_down_to_the_macs_target(trained_cnn, tmp_path):
    # Given a trained CNN, when it is pruned to keep 50% of its MACs in one step
    reporter = RecordingReporter()
    summary = run_job(prune_spec(trained_cnn, target_macs=0.5), tmp_path, reporter)
    # Then the MACs land within 5% of the target, counted again on the reloaded checkpoint
    assert abs(summary["macs_ratio"] - 0.5) <= 0.05 * 0.5
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    model = model_from_checkpoint(ckpt)
    data = load_data({"dataset": "digits", "seed": 0})
    assert count_macs(model, example_input(data))[0] == summary["macs"]
    # and every conv layer really lost output channels (the classifier keeps its 10 classes)
    dense = load_checkpoint(trained_cnn)["model"]
    assert all(p < d for p, d in zip(conv_widths(ckpt["model"]), conv_widths(dense), strict=True))
    assert ckpt["model"]["classifier.weight"].shape[0] == 10
    # and the step's per-layer keep ratios were reported as metrics, matching the shapes
    keep = metric_rows(reporter, "keep/features.0.0")[-1]
    assert [keep[f"keep/{n}"] for n in LAYERS] == pytest.approx(
        [p / d for p, d in zip(conv_widths(ckpt["model"]), conv_widths(dense), strict=True)])
    assert any(line.startswith("After step 1, ") and "% of MACs remains" in line for line in reporter.logs)


def test_iterative_pruning_fine_tunes_between_steps_and_reports_each_one(trained_cnn, tmp_path):
    # Given 3 pruning steps to 40% of the MACs with one fine-tuning epoch after each
    reporter = RecordingReporter()
    summary = run_job(prune_spec(trained_cnn, target_macs=0.4, steps=3, finetune_epochs=1), tmp_path, reporter)
    # Then each step lands on its share of the way (80%, 60%, 40%) within 5%
    steps = metric_rows(reporter, "prune_step")
    assert [m["prune_step"] for m in steps] == [1, 2, 3]
    for m, target in zip(steps, (0.8, 0.6, 0.4), strict=True):
        assert abs(m["macs_ratio"] - target) <= 0.05 * target
        assert set(LAYERS) == {k.removeprefix("keep/") for k in m if k.startswith("keep/")}
    assert summary["steps"] == 3 and abs(summary["macs_ratio"] - 0.4) <= 0.02
    # and keep ratios only go down from step to step
    for name in LAYERS:
        ratios = [m[f"keep/{name}"] for m in steps]
        assert ratios == sorted(ratios, reverse=True) and ratios[-1] < 1
    # and fine-tuning ran after every step, with its loss, accuracy, learning rate and throughput
    finetune = metric_rows(reporter, "finetune/val_acc")
    assert len(finetune) == 3
    assert {"finetune/loss", "finetune/acc", "finetune/lr", "finetune/samples_per_s"} <= set().union(
        *(m for _, m in reporter.metrics))
    # and every step left a checkpoint with a cost report, after a report for the dense model
    checkpoints = [a[0] for a in reporter.artifacts if a[1] == "checkpoint"]
    assert checkpoints == [f"checkpoints/prune_step_{s:03d}.pt" for s in (1, 2, 3)]
    assert [c["label"] for c in reporter.costs] == ["dense", "prune step 1", "prune step 2", "prune step 3"]
    macs = [c["totals"]["macs"] for c in reporter.costs]
    assert macs == sorted(macs, reverse=True)
    # and pruning.json holds the same history for the run page
    history = json.loads((tmp_path / "pruning.json").read_text())
    assert [s["step"] for s in history["steps"]] == [1, 2, 3]
    assert history["steps"][-1]["keep_ratios"] == {n: steps[-1][f"keep/{n}"] for n in LAYERS}


@pytest.mark.parametrize("importance", ["l1", "l2", "bn_scale", "taylor"])
def test_every_importance_criterion_prunes_to_the_target(trained_cnn, tmp_path, importance):
    reporter = RecordingReporter()
    summary = run_job(prune_spec(trained_cnn, target_macs=0.6, importance=importance), tmp_path, reporter)
    assert abs(summary["macs_ratio"] - 0.6) <= 0.05 * 0.6
    assert 0 < summary["test_acc"] <= 1


def test_criteria_choose_different_channels(trained_cnn):
    # L1 magnitude and BN scale rank the same layer's channels differently, so the pruned weights differ
    data = load_data({"dataset": "digits", "seed": 0})
    example = example_input(data)
    kept = {}
    for importance in ("l1", "bn_scale"):
        model = model_from_checkpoint(load_checkpoint(trained_cnn))
        model, _ = prune_to_macs(model, example, 0.6 * count_macs(model, example)[0], importance=importance)
        kept[importance] = model.features[0][1].weight.detach().clone()
    assert kept["l1"].shape == kept["bn_scale"].shape
    assert not torch.equal(kept["l1"], kept["bn_scale"])


def test_bn_scale_importance_on_a_model_without_batchnorm_names_the_field(tmp_path):
    run_job(train_spec() | {"model": "mlp", "model_options": {"hidden": 32}}, tmp_path / "mlp", RecordingReporter())
    with pytest.raises(ValueError, match="hyperparameters.importance"):
        run_job(prune_spec(tmp_path / "mlp/checkpoint.pt", importance="bn_scale"), tmp_path / "p",
                RecordingReporter())


def test_pruned_checkpoint_rebuilds_its_structure_and_gives_the_same_outputs(trained_cnn, tmp_path):
    # Given a model pruned in memory and saved with its channel description
    data = load_data({"dataset": "digits", "seed": 0})
    ckpt = load_checkpoint(trained_cnn)
    model = model_from_checkpoint(ckpt).eval()
    example = example_input(data)
    model, _ = prune_to_macs(model, example, 0.5 * count_macs(model, example)[0], importance="l2")
    save_checkpoint(tmp_path / "pruned.pt", model=model, arch={**ckpt["arch"], "channels": describe_channels(model)})
    # When it is loaded (weights_only=True) and rebuilt from the registry plus that description
    reloaded = model_from_checkpoint(load_checkpoint(tmp_path / "pruned.pt")).eval()
    # Then it has the pruned shapes and computes exactly what the pruned model computed
    assert describe_channels(reloaded) == describe_channels(model)
    with torch.no_grad():
        assert torch.equal(reloaded(data.x_test[:64]), model(data.x_test[:64]))


def test_pruned_checkpoint_can_be_quantized(trained_cnn, tmp_path):
    run_job(prune_spec(trained_cnn, target_macs=0.5), tmp_path / "p", RecordingReporter())
    summary = run_job({"kind": "quantize", "dataset": "digits", "device": "cpu", "checkpoint": str(
        tmp_path / "p/checkpoint.pt"), "hyperparameters": {"finetune_epochs": 0, "real_int8": False}},
        tmp_path / "q", RecordingReporter())
    # the pruned (not fine-tuned) model quantizes to 8 bits without losing more than a few points
    assert summary["test_acc"] >= summary["fp32_acc"] - 0.05


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_unstructured_pruning_zeroes_the_requested_share(trained_cnn, tmp_path, scope):
    reporter = RecordingReporter()
    summary = run_job(prune_spec(trained_cnn, method="unstructured", amount=0.6, scope=scope), tmp_path, reporter)
    state = load_checkpoint(tmp_path / "checkpoint.pt")["model"]  # plain weights with zeros: no masks left
    assert not any(k.endswith("_orig") or k.endswith("_mask") for k in state)
    weights = [state[f"{n}.weight"] for n in [*LAYERS, "classifier"]]
    density = [float((w != 0).float().mean()) for w in weights]
    total = sum(int((w != 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert total == pytest.approx(0.4, abs=0.01) and summary["density"] == pytest.approx(total)
    if scope == "layer":  # every layer keeps 40% of its own weights
        assert density == pytest.approx([0.4] * 4, abs=0.01)
    else:  # one global threshold: layers end up at different densities
        assert max(density) - min(density) > 0.1
    assert metric_rows(reporter, "density/features.1.0")[-1]["density/features.1.0"] == pytest.approx(density[1])
    assert len(reporter.costs) == 1


def test_unstructured_fine_tuning_keeps_pruned_weights_at_zero(trained_cnn, tmp_path):
    run_job(prune_spec(trained_cnn, method="unstructured", amount=0.5, finetune_epochs=1), tmp_path,
            RecordingReporter())
    state = load_checkpoint(tmp_path / "checkpoint.pt")["model"]
    w = state["features.1.0.weight"]
    assert float((w == 0).float().mean()) == pytest.approx(0.5, abs=0.01)


def test_structured_pruning_also_shrinks_a_resnet(tmp_path):
    # Residual additions tie channels together (coarse uniform steps at width 8, refined group by group); the
    # dependency graph prunes them consistently
    spec = train_spec() | {"model": "resnet20", "model_options": {"width": 8}}
    spec["hyperparameters"] |= {"train_subset": 64}
    run_job(spec, tmp_path / "r", RecordingReporter())
    summary = run_job(prune_spec(tmp_path / "r/checkpoint.pt", target_macs=0.5), tmp_path / "p", RecordingReporter())
    assert abs(summary["macs_ratio"] - 0.5) <= 0.05 * 0.5
    model = model_from_checkpoint(load_checkpoint(tmp_path / "p/checkpoint.pt"))
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert any(isinstance(m, nn.Conv2d) and m.out_channels < 8 for m in model.modules())


def test_cancelled_pruning_keeps_the_steps_it_finished(trained_cnn, tmp_path):
    reporter = RecordingReporter(stop_after_steps=1)  # cancel as soon as the first step reported progress
    summary = run_job(prune_spec(trained_cnn, target_macs=0.4, steps=3), tmp_path, reporter)
    assert summary["cancelled"] is True and summary["steps"] == 1
    assert json.loads((tmp_path / "pruning.json").read_text())["steps"][0]["step"] == 1
    assert load_checkpoint(tmp_path / "checkpoints/prune_step_001.pt")["prune_state"]["step"] == 1
    assert not (tmp_path / "checkpoints/prune_step_002.pt").exists()
