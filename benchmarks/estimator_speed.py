"""How long the cost estimator takes on a ResNet-50 (built from plain torch layers) on CPU, against FlopCounterMode.

    .venv/bin/python benchmarks/estimator_speed.py [--repeats 5] [--size 224]

Prints the median time of ``runner.engine.cost.estimate`` (meta tensors, per-layer table, roofline, energy) next to
two baselines measured in the same run: FlopCounterMode over a real CPU forward pass (what one would do without the
estimator) and FlopCounterMode over a meta forward pass (counting only). The target is < 1 s for the estimator, and
its MAC count must agree exactly with FlopCounterMode's (FLOPs / 2). ``run(ctx)`` is the ``estimator`` section of
benchmarks/run_all.py.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import median_time as timed  # noqa: E402
from runner.engine.cost import estimate  # noqa: E402

NAME = "estimator"
TITLE = "Estimator: cost estimate of a ResNet-50 vs FlopCounterMode"
GOAL_S = 1.0


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(out))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + identity)


def resnet50(num_classes: int = 1000) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                               nn.MaxPool2d(3, 2, 1)]
    inplanes = 64
    for planes, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(blocks):
            layers.append(Bottleneck(inplanes, planes, stride if i == 0 else 1))
            inplanes = planes * 4
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(inplanes, num_classes)]
    return nn.Sequential(*layers)


def measure(repeats: int = 5, size: int = 224) -> dict:
    """Median seconds of estimate() and of the two FlopCounterMode baselines, and the three MAC counts."""
    torch.manual_seed(0)
    model = resnet50().eval()
    x = torch.randn(1, 3, size, size)
    t_est, report = timed(lambda: estimate(model, x), repeats)

    def flop_counter_real():
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            model(x)
        return fc.get_total_flops()

    def flop_counter_meta():
        state = {n: t.to("meta") for n, t in [*model.named_parameters(), *model.named_buffers()]}
        with FlopCounterMode(display=False) as fc:
            functional_call(model, state, (x.to("meta"),))
        return fc.get_total_flops()

    t_real, flops_real = timed(flop_counter_real, repeats)
    t_meta, flops_meta = timed(flop_counter_meta, repeats)
    return {"size": size, "repeats": repeats, "params": sum(p.numel() for p in model.parameters()),
            "threads": torch.get_num_threads(), "layers": len(report["layers"]),
            "estimate_s": t_est, "flopcounter_real_s": t_real, "flopcounter_meta_s": t_meta,
            "macs_estimate": report["totals"]["macs"], "macs_flopcounter_real": flops_real // 2,
            "macs_flopcounter_meta": flops_meta // 2}


def run(ctx):
    from benchmarks.common import Section, at_most

    section = Section(NAME, TITLE)
    m = measure(repeats=3 if ctx.quick else 5)
    section.details = m
    section.add("estimate() time, ResNet-50 at 224x224", m["estimate_s"], "s", m["flopcounter_real_s"],
                "FlopCounterMode over a real CPU forward", goal=f"< {GOAL_S:g} s", passed=at_most(m["estimate_s"], GOAL_S),
                note=f"FlopCounterMode over a meta forward (counting only): {m['flopcounter_meta_s']:.3f} s; "
                     f"{m['layers']} layers, {m['params']:,} params, {m['threads']} threads")
    agree = m["macs_estimate"] == m["macs_flopcounter_real"] == m["macs_flopcounter_meta"]
    section.add("MACs", float(m["macs_estimate"]), "MACs", float(m["macs_flopcounter_real"]),
                "FlopCounterMode FLOPs / 2", goal="equal", passed=agree)
    return section


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    m = measure(args.repeats, args.size)
    print(f"ResNet-50, input 1x3x{args.size}x{args.size}, {m['params']:,} params, "
          f"torch {torch.__version__}, {m['threads']} threads")
    print(f"{'method':<42} {'median s':>9}  {'MACs':>14}")
    print(f"{'estimate() (per-layer table, meta)':<42} {m['estimate_s']:>9.3f}  {m['macs_estimate']:>14,}")
    print(f"{'FlopCounterMode, real CPU forward':<42} {m['flopcounter_real_s']:>9.3f}  {m['macs_flopcounter_real']:>14,}")
    print(f"{'FlopCounterMode, meta forward':<42} {m['flopcounter_meta_s']:>9.3f}  {m['macs_flopcounter_meta']:>14,}")
    print(f"estimate() is {m['flopcounter_real_s'] / m['estimate_s']:.1f}x the speed of a real FlopCounterMode pass; "
          f"{m['layers']} layers; target < {GOAL_S:g} s: {'met' if m['estimate_s'] < GOAL_S else 'MISSED'}")
    if not m["macs_estimate"] == m["macs_flopcounter_real"] == m["macs_flopcounter_meta"]:
        sys.exit("MAC counts disagree")


if __name__ == "__main__":
    main()
