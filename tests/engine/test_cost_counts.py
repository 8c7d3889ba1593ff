"""MAC counts computed by hand for each counted op, and agreement with torch's FlopCounterMode."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

from runner.engine.cost import estimate


def layer(report, name):
    return next(r for r in report["layers"] if r["name"] == name)


def flop_counter_macs(model: nn.Module, x: torch.Tensor) -> int:
    """FlopCounterMode / 2 over a meta forward pass (on CPU tensors torch hides fused attention from it)."""
    state = {n: t.to("meta") for n, t in [*model.named_parameters(), *model.named_buffers()]}
    model.eval()
    with FlopCounterMode(display=False) as counter:
        functional_call(model, state, (x.to("meta"),))
    return counter.get_total_flops() // 2


def test_conv2d_macs_are_outputs_times_kernel_volume():
    # given a 3->8 channel 3x3 conv, padding 1, on one 3x8x8 image
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1))
    # when it is estimated
    report = estimate(model, (3, 8, 8))
    # then MACs = output elements (8*8*8 = 512) x kernel volume (3*3*3 = 27) = 13824, FLOPs twice that
    conv = layer(report, "0")
    assert conv["macs"] == 13824 and conv["flops"] == 27648
    assert conv["params"] == 8 * 27 + 8
    assert conv["input_shape"] == [1, 3, 8, 8] and conv["output_shape"] == [1, 8, 8, 8]


def test_linear_macs_are_batch_times_in_times_out():
    report = estimate(nn.Sequential(nn.Linear(64, 10)), torch.randn(4, 64))
    assert layer(report, "0")["macs"] == 4 * 64 * 10  # 2560
    assert report["totals"]["params"] == 650


def test_depthwise_conv_counts_one_input_channel_per_output():
    # 16 channels, groups=16, 3x3, 10x10 output: 16*100 outputs x 9 MACs each
    report = estimate(nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16)), (16, 10, 10))
    assert layer(report, "0")["macs"] == 14400


def test_grouped_conv_counts_in_channels_per_group():
    # 8->16 channels in 4 groups (2 input channels each), 3x3 valid on 6x6 -> 4x4, batch 2:
    # 2*16*4*4 = 512 outputs x (2*9 = 18) MACs = 9216
    report = estimate(nn.Sequential(nn.Conv2d(8, 16, 3, groups=4)), torch.randn(2, 8, 6, 6))
    assert layer(report, "0")["macs"] == 9216


def test_transposed_conv_counts_scattered_inputs():
    # each of the 4*5*5 input elements is multiplied into 2 output channels x 3*3 taps: 100*18 = 1800
    report = estimate(nn.Sequential(nn.ConvTranspose2d(4, 2, 3, stride=2)), (4, 5, 5))
    assert layer(report, "0")["macs"] == 1800


class MatmulBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(7, 3))
        self.proj = nn.Linear(3, 3, bias=False)

    def forward(self, x):  # x: [2, 5, 7]
        y = torch.bmm(x, self.w.expand(2, 7, 3))  # 2*5*7*3 = 210, weight operand
        return self.proj(y @ y.transpose(1, 2) @ y)  # act x act: 2*5*3*5 = 150, 2*5*5*3 = 150; proj 2*5*3*3 = 90


def test_matmul_and_bmm_in_a_module_forward_are_attributed_to_it():
    report = estimate(MatmulBlock(), torch.randn(2, 5, 7))
    own = layer(report, "(model)")
    assert own["macs"] == 210 + 150 + 150
    assert layer(report, "proj")["macs"] == 90
    assert report["totals"]["macs"] == 600
    assert "matmul" in own["ops"]


class SDPA(nn.Module):
    def forward(self, q):
        return F.scaled_dot_product_attention(q, q, q)


def test_fused_attention_counts_qk_and_av():
    # q, k, v: [B=1, H=2, L=6, E=4]: q kᵀ = 1*2*6*6*4 = 288, attn v = 288
    report = estimate(SDPA(), torch.randn(1, 2, 6, 4))
    assert report["totals"]["macs"] == 576
    assert "attention" in report["layers"][0]["ops"] or "matmul" in report["layers"][0]["ops"]


def test_multihead_attention_counts_projections_and_attention():
    # embed 8, 2 heads, L=5, batch 1: in-proj 5*8*24 = 960, scores+weighted sum 2*5*5*(4+4) = 400, out-proj 5*8*8 = 320
    mha = nn.MultiheadAttention(8, 2, batch_first=True)

    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = mha

        def forward(self, x):
            return self.mha(x, x, x, need_weights=False)[0]

    report = estimate(Wrap(), (5, 8))
    assert layer(report, "mha")["macs"] == 1680
    assert layer(report, "mha")["params"] == sum(p.numel() for p in mha.parameters())


def test_bn_activation_and_pooling_add_traffic_but_no_macs():
    model = nn.Sequential(nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2))
    report = estimate(model, (4, 8, 8))
    assert report["totals"]["macs"] == 0
    bn = layer(report, "0")
    # fp32: input 256*4 + output 256*4 + weight, bias, running mean, running var 4*4 each
    assert bn["bytes"] == 1024 + 1024 + 64
    assert layer(report, "2")["bytes"] == 1024 + 256


class Bottleneck(nn.Module):
    def __init__(self, cin, mid, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid)
        self.conv2, self.bn2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False, groups=2), nn.BatchNorm2d(mid)
        self.conv3, self.bn3 = nn.Conv2d(mid, cin * stride, 1, bias=False), nn.BatchNorm2d(cin * stride)
        self.down = nn.Conv2d(cin, cin * stride, 1, stride, bias=False)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        return F.relu(self.bn3(self.conv3(y)) + self.down(x))


class TinyTransformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Conv1d(3, 16, 4, stride=4)
        self.block = nn.TransformerEncoderLayer(16, 4, 32, batch_first=True, dropout=0.0)
        self.attn = SDPA()
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        t = self.embed(x).transpose(1, 2)
        t = self.block(t)
        t = t + self.attn(t.unsqueeze(1)).squeeze(1)
        return self.head(torch.einsum("bld->bd", t))


@pytest.mark.parametrize(("model", "x"), [
    (nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), Bottleneck(8, 4, 2), Bottleneck(16, 8, 1),
                   nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)), torch.randn(2, 3, 16, 16)),
    (TinyTransformer(), torch.randn(2, 3, 32)),
    (MatmulBlock(), torch.randn(2, 5, 7)),
    (nn.Sequential(nn.Conv1d(3, 6, 5, groups=3), nn.ConvTranspose1d(6, 4, 3, stride=2), nn.Flatten(),
                   nn.Linear(4 * 25, 3)), torch.randn(1, 3, 16)),
], ids=["resnet-like", "transformer", "matmul", "conv1d"])
def test_macs_equal_flop_counter_mode_half(model, x):
    report = estimate(model, x)
    assert report["mode"] == "meta"
    assert report["totals"]["macs"] == flop_counter_macs(model, x)
    assert report["totals"]["flops"] == 2 * report["totals"]["macs"]


def test_real_cpu_flop_counter_agrees_on_models_without_fused_attention():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), Bottleneck(8, 4, 2), nn.Flatten(), nn.Linear(16 * 6 * 6, 4))
    x = torch.randn(1, 3, 14, 14)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    assert estimate(model, x)["totals"]["macs"] == counter.get_total_flops() // 2


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 6)

    def forward(self, x):
        if x.sum().item() > -1e9:  # needs real values: cannot run on meta tensors
            x = self.fc(x)
        return x


def test_models_that_need_real_values_fall_back_to_one_real_pass():
    report = estimate(DataDependent(), (6,), batch_size=3)
    assert report["mode"] == "real"
    assert any("meta" in note for note in report["notes"])
    assert layer(report, "fc")["macs"] == 3 * 6 * 6


def test_shape_inputs_get_the_batch_prepended_and_tensors_can_be_resized():
    model = nn.Sequential(nn.Linear(10, 2))
    assert estimate(model, (10,), batch_size=8)["input_shapes"] == [[8, 10]]
    assert estimate(model, torch.randn(3, 10))["batch_size"] == 3
    assert estimate(model, torch.randn(3, 10), batch_size=5)["totals"]["macs"] == 5 * 10 * 2


def test_estimate_leaves_the_model_untouched():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.5))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    estimate(model, (4,), batch_size=2)
    assert model.training and all(m.training for m in model.modules())
    after = model.state_dict()
    assert all(after[k].device.type == "cpu" and torch.equal(after[k], v) for k, v in before.items())


def test_view_only_layers_move_no_data():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Dropout(0.5), nn.Identity(), nn.Linear(2 * 6 * 6, 3))
    report = estimate(model, (1, 8, 8))
    assert [r["name"] for r in report["layers"]] == ["0", "4"]
