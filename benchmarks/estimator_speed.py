"""How long the cost estimator takes on a ResNet-50 (built from plain torch layers) on CPU, against FlopCounterMode.

    .venv/bin/python benchmarks/estimator_speed.py [--repeats 5] [--size 224]

Prints the median time of ``runner.engine.cost.estimate`` (meta tensors, per-layer table, roofline, energy) next to
two baselines measured in the same run: FlopCounterMode over a real CPU forward pass (what one would do without the
estimator) and FlopCounterMode over a meta forward pass (counting only). The target is < 1 s for the estimator.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner.engine.cost import estimate  # noqa: E402


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


def timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = resnet50().eval()
    x = torch.randn(1, 3, args.size, args.size)
    print(f"ResNet-50, input 1x3x{args.size}x{args.size}, {sum(p.numel() for p in model.parameters()):,} params, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    t_est, report = timed(lambda: estimate(model, x), args.repeats)

    def flop_counter_real():
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            model(x)
        return fc.get_total_flops()

    def flop_counter_meta():
        state = {n: t.to("meta") for n, t in [*model.named_parameters(), *model.named_buffers()]}
        with FlopCounterMode(display=False) as fc:
            functional_call(model, state, (x.to("meta"),))
        return fc.get_total_flops()

    t_real, flops_real = timed(flop_counter_real, args.repeats)
    t_meta, flops_meta = timed(flop_counter_meta, args.repeats)
    macs = report["totals"]["macs"]
    print(f"{'method':<42} {'median s':>9}  {'MACs':>14}")
    print(f"{'estimate() (per-layer table, meta)':<42} {t_est:>9.3f}  {macs:>14,}")
    print(f"{'FlopCounterMode, real CPU forward':<42} {t_real:>9.3f}  {flops_real // 2:>14,}")
    print(f"{'FlopCounterMode, meta forward':<42} {t_meta:>9.3f}  {flops_meta // 2:>14,}")
    print(f"estimate() is {t_real / t_est:.1f}x the speed of a real FlopCounterMode pass; "
          f"{len(report['layers'])} layers; target < 1 s: {'met' if t_est < 1.0 else 'MISSED'}")
    assert macs == flops_real // 2 == flops_meta // 2, "MAC counts disagree"


if __name__ == "__main__":
    main()
