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


@pytest.mark.parametrize(("kind", "hyperparameters", "field", "text"), [
    ("prune", {"importance": "random"}, "importance", "allowed: l1, l2, bn_scale, taylor"),
    ("prune", {"target_macs": 0}, "target_macs", ">= 0.01"),
    ("prune", {"steps": 0}, "steps", ">= 1"),
    ("prune", {"method": "lottery"}, "method", "allowed: structured, unstructured"),
    ("prune", {"scope": "net"}, "scope", "allowed: layer, global"),
    ("prune", {"amount": 1.0}, "amount", "<= 0.99"),
    ("sensitivity", {"ratios": [0.5, 1.5]}, "ratios", "list of numbers"),
    ("sensitivity", {"importance": "taylor"}, "importance", "allowed: l1, l2"),
    ("quantize", {"observer": "kl"}, "observer", "allowed: minmax, percentile, mse"),
    ("quantize", {"granularity": "per_row"}, "granularity", "allowed: per_channel, per_tensor"),
    ("quantize", {"a_bits": 9}, "a_bits", "<= 8"),
    ("quantize", {"w_bits": 1}, "w_bits", ">= 2"),
    ("quantize", {"percentile": 50}, "percentile", ">= 90"),
    ("quantize", {"symmetric": "yes"}, "symmetric", "type bool"),
    ("quantize", {"layer_bits": {"features.1.0": [4]}}, "layer_bits", "[w_bits, a_bits]"),
    ("quantize", {"method": "gptq"}, "method", "allowed: ptq, qat"),
    ("estimate", {"profile": "tpu-v9"}, "profile", "unknown profile 'tpu-v9'"),
    ("estimate", {"default_bits": [4]}, "default_bits", "default_bits"),
    ("estimate", {"batch_size": 0}, "batch_size", "batch_size"),
    ("estimate", {"flops": True}, "flops", "unknown option 'flops'"),
    ("measure", {"batch_sizes": []}, "batch_sizes", "batch_sizes"),
    ("measure", {"repeats": "many"}, "repeats", "repeats must be of type int, got str"),
])
def test_bad_job_options_name_the_field(kind, hyperparameters, field, text):
    spec = {"kind": kind, "model": "cnn", "hyperparameters": hyperparameters}
    if kind in ("prune", "quantize", "sensitivity"):
        spec["checkpoint"] = "1/checkpoint.pt"
    _, errors = validate_spec(spec)
    assert set(errors) == {f"hyperparameters.{field}"}
    assert text in errors[f"hyperparameters.{field}"]


def test_cost_job_options_get_their_defaults():
    clean, errors = validate_spec({"kind": "estimate", "model": "cnn", "hyperparameters": {"default_bits": [8, 8]}})
    assert errors == {}
    assert clean["hyperparameters"]["default_bits"] == [8, 8] and clean["hyperparameters"]["batch_size"] == 1
