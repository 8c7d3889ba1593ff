"""Every registry model: the estimator's MACs equal torch's FlopCounterMode / 2 (conv, linear, matmul, attention)."""
from __future__ import annotations

import pytest
import torch
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

from runner.engine.cost import estimate
from runner.engine.models import MODELS, build_model

SHAPES = {2: (3, 64), 3: (3, 32, 32)}


def sample_shape(name: str) -> tuple[int, ...]:
    ranks = MODELS[name][1]
    return SHAPES[ranks[0]] if ranks else (1, 8, 8)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_macs_equal_flop_counter_mode_on_registry_model(name):
    torch.manual_seed(0)
    shape = sample_shape(name)
    model = build_model(name, shape, 10).eval()
    x = torch.randn(2, *shape)
    report = estimate(model, x)
    # FlopCounterMode over the same forward on meta tensors (on real CPU tensors torch runs attention as one fused
    # kernel FlopCounterMode does not count; on meta it decomposes into the bmm it does count)
    state = {n: t.to("meta") for n, t in [*model.named_parameters(), *model.named_buffers()]}
    with FlopCounterMode(display=False) as counter:
        functional_call(model, state, (x.to("meta"),))
    assert report["mode"] == "meta"
    assert report["totals"]["macs"] == counter.get_total_flops() // 2 > 0
    assert sum(r["macs"] for r in report["layers"]) == report["totals"]["macs"]
    assert report["totals"]["params"] == sum(p.numel() for p in model.parameters())
