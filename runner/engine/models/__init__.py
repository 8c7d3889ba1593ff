"""Model registry: a plain dict from name to (factory, the input rank it needs).

``build_model(name, input_shape, num_classes, **kwargs)`` adapts stems and heads to the dataset. Structurally pruned
models are rebuilt with ``build_model`` then ``apply_channels`` (layer shapes from the checkpoint's description), so
no module is ever pickled.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from torch import nn

from runner.engine.models.sequence import CNN1D, PointNet, PointTransformer
from runner.engine.models.vision import MLP, CifarResNet, MobileNetV2, SmallCNN, ViT

# name -> (factory(input_shape, num_classes, **kw), accepted input ranks (None: any), allowed kwargs)
MODELS: dict[str, tuple[Callable[..., nn.Module], tuple[int, ...] | None, tuple[str, ...]]] = {
    "mlp": (MLP, None, ("hidden", "depth", "dropout")),
    "cnn": (SmallCNN, (3,), ("width", "dropout")),
    "resnet20": (partial(CifarResNet, depth=20), (3,), ("width",)),
    "resnet56": (partial(CifarResNet, depth=56), (3,), ("width",)),
    "mobilenetv2": (MobileNetV2, (3,), ("width_mult", "dropout")),
    "vit": (ViT, (3,), ("dim", "depth", "heads", "mlp_ratio", "patch", "dropout")),
    "cnn1d": (CNN1D, (2,), ("width",)),
    "pointnet": (PointNet, (2,), ("width", "dropout")),
    "point_transformer": (PointTransformer, (2,), ("dim", "depth", "heads", "stride")),
}
# Models with attention: torch-pruning can shrink them, but our shape description does not cover heads.
NOT_STRUCTURALLY_PRUNABLE = ("vit", "point_transformer")
RANK_NAMES = {2: "(channels, length) such as mnist1d or points", 3: "(channels, height, width) such as digits"}


class ModelError(ValueError):
    pass


def model_input_error(name: str, input_shape: tuple[int, ...]) -> str | None:
    """Why ``name`` cannot take inputs of ``input_shape``, or None when it can."""
    ranks = MODELS[name][1]
    if ranks is not None and len(input_shape) not in ranks:
        return (f"model {name!r} needs inputs shaped {' or '.join(RANK_NAMES[r] for r in ranks)}; "
                f"the dataset gives {tuple(input_shape)}")
    return None


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, **kwargs: Any) -> nn.Module:
    if name not in MODELS:
        raise ModelError(f"unknown model {name!r}; allowed: {', '.join(sorted(MODELS))}")
    factory, _, allowed = MODELS[name]
    if problem := model_input_error(name, input_shape):
        raise ModelError(problem)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ModelError(f"unknown option(s) {', '.join(unknown)} for {name}; allowed: {', '.join(allowed) or 'none'}")
    return factory(tuple(input_shape), num_classes, **kwargs)


_RESIZABLE = (nn.Conv1d, nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)


def describe_channels(model: nn.Module) -> dict[str, list[int]]:
    """Per-layer [in, out, groups] of every conv/linear/norm layer: the architecture a pruned model needs."""
    out: dict[str, list[int]] = {}
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            out[name] = [m.in_channels, m.out_channels, m.groups]
        elif isinstance(m, nn.Linear):
            out[name] = [m.in_features, m.out_features, 1]
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            out[name] = [m.num_features, m.num_features, 1]
        elif isinstance(m, nn.LayerNorm):
            out[name] = [m.normalized_shape[0], m.normalized_shape[0], 1]
    return out


def apply_channels(model: nn.Module, channels: dict[str, list[int]]) -> nn.Module:
    """Resize layers in place to the described channel counts (weights become uninitialised: load a state dict
    next). Layers whose description matches are left alone."""
    import torch

    modules = dict(model.named_modules())
    for name, (cin, cout, groups) in channels.items():
        m = modules.get(name)
        if m is None or not isinstance(m, _RESIZABLE):
            raise ModelError(f"checkpoint describes layer {name!r} that model has not")
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            if (m.in_channels, m.out_channels, m.groups) == (cin, cout, groups):
                continue
            m.in_channels, m.out_channels, m.groups = cin, cout, groups
            m.weight = nn.Parameter(torch.empty(cout, cin // groups, *m.kernel_size))
            if m.bias is not None:
                m.bias = nn.Parameter(torch.empty(cout))
        elif isinstance(m, nn.Linear):
            if (m.in_features, m.out_features) == (cin, cout):
                continue
            m.in_features, m.out_features = cin, cout
            m.weight = nn.Parameter(torch.empty(cout, cin))
            if m.bias is not None:
                m.bias = nn.Parameter(torch.empty(cout))
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if m.num_features == cout:
                continue
            m.num_features = cout
            m.weight, m.bias = nn.Parameter(torch.empty(cout)), nn.Parameter(torch.empty(cout))
            m.running_mean, m.running_var = torch.zeros(cout), torch.ones(cout)
        else:
            if m.normalized_shape[0] == cout:
                continue
            m.normalized_shape = (cout,)
            m.weight, m.bias = nn.Parameter(torch.empty(cout)), nn.Parameter(torch.empty(cout))
    return model
