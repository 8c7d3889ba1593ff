import pytest
import torch

from runner.engine.datasets import load_dataset
from runner.engine.models import MODELS, ModelError, apply_channels, build_model, describe_channels

DATASET_FOR = {"mlp": "digits", "cnn": "digits", "resnet20": "digits", "resnet56": "digits", "mobilenetv2": "digits",
               "vit": "digits", "cnn1d": "mnist1d", "pointnet": "points", "point_transformer": "points"}


@pytest.fixture(scope="module")
def datasets():
    return {"digits": load_dataset("digits"), "mnist1d": load_dataset("mnist1d", num_samples=200),
            "points": load_dataset("points", num_samples=60, num_points=64)}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_runs_on_its_dataset(name, datasets):
    data = datasets[DATASET_FOR[name]]
    model = build_model(name, data.input_shape, data.num_classes).eval()
    out = model(data.x_train[:3])
    assert out.shape == (3, data.num_classes)


def test_cifar_shaped_inputs_adapt():
    for name in ("resnet20", "mobilenetv2", "vit", "cnn"):
        assert build_model(name, (3, 32, 32), 100, **({"width_mult": 0.25} if name == "mobilenetv2" else {}))(
            torch.randn(2, 3, 32, 32)).shape == (2, 100)


def test_wrong_input_rank_and_options_are_explained():
    with pytest.raises(ModelError, match="needs inputs shaped"):
        build_model("cnn", (1, 40), 10)
    with pytest.raises(ModelError, match="allowed: width"):
        build_model("cnn1d", (1, 40), 10, depth=3)


def test_channel_description_rebuilds_a_narrower_model():
    narrow = build_model("cnn", (1, 8, 8), 10, width=8)
    wide = build_model("cnn", (1, 8, 8), 10, width=16)
    apply_channels(wide, describe_channels(narrow))
    wide.load_state_dict(narrow.state_dict())
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(wide.eval()(x), narrow.eval()(x))
