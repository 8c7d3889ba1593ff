import pytest

from runner.engine.jobs import JOB_KINDS, SpecError, run_job, validate_spec


def test_valid_spec_is_normalised_with_defaults():
    clean, errors = validate_spec({"kind": "train", "model": "cnn", "hyperparameters": {"epochs": 2}})
    assert errors == {}
    assert clean["dataset"] == "digits" and clean["device"] == "auto" and clean["processes"] == 1
    assert clean["hyperparameters"]["epochs"] == 2 and clean["hyperparameters"]["optimizer"] == "sgd"


def test_errors_name_the_field_and_list_allowed_values():
    _, errors = validate_spec({"kind": "train", "model": "resnet99", "dataset": "imagenet", "device": "tpu",
                               "hyperparameters": {"lr": 0, "epochs": 20000, "optimizer": "lion", "foo": 1,
                                                   "batch_size": "64"}})
    assert "allowed: cnn, cnn1d, mlp" in errors["model"]
    assert "allowed: cifar10, digits" in errors["dataset"]
    assert "allowed: auto, cpu, cuda" in errors["device"]
    assert errors["hyperparameters.lr"] == "lr must be > 0 and <= 10, got 0.0"
    assert "<= 10000" in errors["hyperparameters.epochs"]
    assert "allowed: sgd, adamw" in errors["hyperparameters.optimizer"]
    assert "unknown hyperparameter 'foo'" in errors["hyperparameters.foo"]
    assert "batch_size must be of type int, got str" in errors["hyperparameters.batch_size"]


def test_kind_and_checkpoint_requirements():
    _, errors = validate_spec({"kind": "bake", "model": "cnn"})
    # other test modules may register extra kinds (tests/runner/jobs_for_tests.py), so check the real ones are listed
    assert errors["kind"].startswith("unknown kind 'bake'; allowed: ")
    allowed = errors["kind"].split("allowed: ")[1].split(", ")
    assert allowed == sorted(allowed)
    assert {"estimate", "measure", "prune", "quantize", "sensitivity", "train"} <= set(allowed)
    _, errors = validate_spec({"kind": "quantize", "hyperparameters": {"w_bits": 1, "layer_bits": {"fc": [9, 8]}}})
    assert "needs the checkpoint" in errors["checkpoint"]
    assert "2" in errors["hyperparameters.w_bits"] and "layer_bits" in errors["hyperparameters.layer_bits"]
    _, errors = validate_spec({"kind": "train", "model": "mlp", "processes": 3, "hyperparameters": {"batch_size": 64}})
    assert "divisible by processes" in errors["hyperparameters.batch_size"]
    _, errors = validate_spec({"kind": "prune", "model": "vit", "checkpoint": "x.pt"})
    assert "unstructured" in errors["model"]
    _, errors = validate_spec({"kind": "prune", "model": "cnn", "checkpoint": "x.pt", "processes": 2})
    assert "only train jobs" in errors["processes"]


def test_run_job_refuses_invalid_specs(tmp_path):
    with pytest.raises(SpecError) as err:
        run_job({"kind": "train", "model": "cnn", "hyperparameters": {"epochs": 0}}, tmp_path, None)
    assert set(err.value.errors) == {"hyperparameters.epochs"}
    assert {"train", "prune", "quantize", "sensitivity", "estimate", "measure"} <= set(JOB_KINDS)
