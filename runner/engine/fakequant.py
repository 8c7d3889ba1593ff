"""Fake quantization in plain PyTorch: observers, quantizers with a straight-through estimator, LSQ step sizes,
and the layer wrapper that quantizes a conv/linear layer's weights and its input activations.

A b-bit quantizer maps x to scale * (clamp(round(x / scale) + zero_point, qmin, qmax) - zero_point). Symmetric
quantizers have zero_point 0 and use a signed range [-(2^(b-1)-1), 2^(b-1)-1] (an unsigned [0, 2^b-1] one when
the observed tensor is never negative, e.g. after a ReLU); asymmetric ones use [0, 2^b-1] with a zero point.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

OBSERVERS = ("minmax", "percentile", "mse")
_RESERVOIR = 200_000  # activation values kept for percentile / MSE calibration (a uniform sample)


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """round() in the forward pass, identity in the backward pass (straight-through estimator)."""
    return (x.round() - x).detach() + x


def grad_scale(x: torch.Tensor, g: float) -> torch.Tensor:
    """Same value, gradient multiplied by g (LSQ scales the step-size gradient by 1/sqrt(numel * qmax))."""
    return (x - x * g).detach() + x * g


def fake_quant(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int) -> torch.Tensor:
    q = torch.clamp(round_ste(x / scale) + zero_point, qmin, qmax)
    return (q - zero_point) * scale


def qparams(lo: torch.Tensor, hi: torch.Tensor, bits: int, *, symmetric: bool, power_of_two: bool
            ) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """Scale, zero point and integer range covering [lo, hi] (tensors: per-tensor scalars or per-channel)."""
    lo, hi = torch.minimum(lo, torch.zeros_like(lo)), torch.maximum(hi, torch.zeros_like(hi))
    if symmetric:
        signed = bool((lo < 0).any())
        qmin, qmax = (-(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
        scale = torch.maximum(-lo, hi) / qmax
    else:
        qmin, qmax = 0, 2 ** bits - 1
        scale = (hi - lo) / qmax
    scale = torch.clamp(scale, min=1e-8)
    if power_of_two:  # fixed point: the scale is 2^-f for an integer number f of fractional bits
        scale = torch.exp2(torch.ceil(torch.log2(scale)))
    zero_point = torch.zeros_like(scale) if symmetric else torch.clamp(torch.round(-lo / scale), qmin, qmax)
    return scale, zero_point, qmin, qmax


class Quantizer(nn.Module):
    """Observes a tensor during calibration, then fake-quantizes it.

    ``channel_axis`` None: one scale per tensor; 0: one per output channel (weights). With ``learned`` the scale is
    a parameter trained by the task loss (LSQ, Esser et al. 2020), its gradient scaled by 1/sqrt(numel * qmax).
    """

    def __init__(self, bits: int, *, symmetric: bool = True, channel_axis: int | None = None,
                 observer: str = "minmax", percentile: float = 99.99, power_of_two: bool = False):
        super().__init__()
        self.bits, self.symmetric, self.channel_axis = bits, symmetric, channel_axis
        self.observer, self.percentile, self.power_of_two = observer, percentile, power_of_two
        self.mode = "observe"  # observe -> quant (or off)
        self.learned = False
        self.qmin, self.qmax = 0, 2 ** bits - 1
        self.register_buffer("scale", torch.ones(1))
        self.register_buffer("zero_point", torch.zeros(1))
        self._lo: torch.Tensor | None = None
        self._hi: torch.Tensor | None = None
        self._sample: list[torch.Tensor] = []
        self._n_seen = 0

    # -------------------------------------------------------------- calibration
    def _channels_view(self, x: torch.Tensor) -> torch.Tensor:
        return x.detach().float().transpose(0, self.channel_axis).flatten(1)

    @torch.no_grad()
    def observe(self, x: torch.Tensor) -> None:
        if self.channel_axis is None:
            flat = x.detach().float().flatten()
            lo, hi = flat.min(), flat.max()
            if self.observer != "minmax":
                keep = max(1, _RESERVOIR // 16)
                self._sample.append(flat[torch.randperm(flat.numel(), device=flat.device)[:keep]].cpu())
        else:  # weights: seen once, all of them
            view = self._channels_view(x)
            lo, hi = view.min(1).values, view.max(1).values
            self._sample = [view.cpu()]
        self._lo = lo if self._lo is None else torch.minimum(self._lo, lo)
        self._hi = hi if self._hi is None else torch.maximum(self._hi, hi)

    @torch.no_grad()
    def freeze(self) -> None:
        """Fix scale and zero point from what was observed, by the chosen observer."""
        if self._lo is None:
            raise RuntimeError("quantizer frozen before it observed any data: calibrate first")
        lo, hi = self._lo.cpu(), self._hi.cpu()
        if self.observer == "percentile" and self._sample:
            data = torch.cat(self._sample, dim=-1)
            q = torch.tensor([1 - self.percentile / 100, self.percentile / 100])
            if data.numel() > 16_000_000 and data.dim() == 1:
                data = data[:16_000_000]
            bounds = torch.quantile(data, q, dim=-1) if data.dim() == 1 else torch.quantile(data, q, dim=1)
            lo, hi = torch.minimum(lo, torch.zeros_like(lo)).clamp(min=bounds[0]), hi.clamp(max=bounds[1])
        elif self.observer == "mse" and self._sample:
            lo, hi = self._mse_range(torch.cat(self._sample, dim=-1), lo, hi)
        scale, zp, self.qmin, self.qmax = qparams(lo, hi, self.bits, symmetric=self.symmetric,
                                                  power_of_two=self.power_of_two)
        if self.channel_axis is not None:
            shape = [1] * 8
            scale, zp = scale.view(-1, *shape[: self._ndim - 1]), zp.view(-1, *shape[: self._ndim - 1])
            scale, zp = scale.transpose(0, self.channel_axis), zp.transpose(0, self.channel_axis)
        device = self.scale.device
        self.scale, self.zero_point = scale.to(device), zp.to(device)
        self._sample, self.mode = [], "quant"

    def _mse_range(self, data: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor):
        """Shrink [lo, hi] by the factor in 0.3..1 that minimises the quantization MSE on the observed values."""
        best_err, best = None, (lo, hi)
        rows = data if data.dim() == 2 else data[None]
        for alpha in torch.linspace(0.3, 1.0, 36):
            a_lo, a_hi = lo * alpha, hi * alpha
            s, z, qmin, qmax = qparams(a_lo, a_hi, self.bits, symmetric=self.symmetric, power_of_two=self.power_of_two)
            s, z = s.reshape(-1, 1), z.reshape(-1, 1)
            err = ((fake_quant(rows, s, z, qmin, qmax) - rows) ** 2).mean(1)
            if best_err is None:
                best_err, best = err, (a_lo.clone(), a_hi.clone())
            else:
                better = err < best_err
                best_err = torch.where(better, err, best_err)
                best = (torch.where(better.reshape(best[0].shape), a_lo, best[0]),
                        torch.where(better.reshape(best[1].shape), a_hi, best[1]))
        return best

    # -------------------------------------------------------------- quantization
    def make_learnable(self) -> None:
        """LSQ: the step size becomes a trained parameter (the zero point stays fixed)."""
        scale = self.scale.detach().clone()
        del self.scale
        self.scale = nn.Parameter(scale)
        self.learned = True

    def effective_scale(self, numel: int) -> torch.Tensor:
        s = self.scale
        if self.learned:
            s = grad_scale(s, 1.0 / math.sqrt(max(numel, 1) * max(self.qmax, 1)))
            s = s.abs() + 1e-8
        if self.power_of_two:
            s = torch.exp2(round_ste(torch.log2(s)))
        return s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "observe":
            self._ndim = x.dim()
            self.observe(x)
            return x
        if self.mode == "off":
            return x
        numel = x[0].numel() if self.channel_axis is None else x.numel() // x.shape[self.channel_axis]
        return fake_quant(x, self.effective_scale(numel), self.zero_point, self.qmin, self.qmax)

    def extra_repr(self) -> str:
        return (f"bits={self.bits}, symmetric={self.symmetric}, per_channel={self.channel_axis is not None}, "
                f"observer={self.observer}, pot={self.power_of_two}, mode={self.mode}")


class QuantLayer(nn.Module):
    """A conv or linear layer with fake-quantized weights (per output channel or per tensor) and inputs."""

    def __init__(self, layer: nn.Module, *, w_bits: int, a_bits: int, per_channel: bool, symmetric: bool,
                 observer: str, percentile: float, power_of_two: bool):
        super().__init__()
        self.layer, self.w_bits, self.a_bits = layer, w_bits, a_bits
        # Weights and activations share the symmetric/asymmetric choice; either way 0 is represented exactly
        # (an asymmetric zero point is an integer), so pruned weights stay pruned.
        self.wq = Quantizer(w_bits, symmetric=symmetric, channel_axis=0 if per_channel else None, observer=observer,
                            percentile=percentile, power_of_two=power_of_two)
        self.aq = Quantizer(a_bits, symmetric=symmetric, observer=observer, percentile=percentile,
                            power_of_two=power_of_two)

    def quantized_weight(self) -> torch.Tensor:
        return self.wq(self.layer.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.aq(x)
        w = self.quantized_weight()
        m = self.layer
        if isinstance(m, nn.Linear):
            return F.linear(x, w, m.bias)
        conv = F.conv1d if isinstance(m, nn.Conv1d) else F.conv2d
        return conv(x, w, m.bias, m.stride, m.padding, m.dilation, m.groups)


def wrap_layers(model: nn.Module, bits: dict[str, tuple[int, int]], **options) -> dict[str, QuantLayer]:
    """Replace each named layer in ``bits`` with a QuantLayer in place; returns name -> wrapper."""
    wrapped = {}
    for name, (wb, ab) in bits.items():
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        q = QuantLayer(getattr(parent, attr), w_bits=wb, a_bits=ab, **options)
        setattr(parent, attr, q)
        wrapped[name] = q
    return wrapped


@torch.no_grad()
def calibrate(model: nn.Module, wrapped: dict[str, QuantLayer], batches) -> None:
    """Weights observed once, activations over ``batches`` (eval mode: BN statistics are left alone)."""
    was_training = model.training
    model.eval()
    for q in wrapped.values():
        q.wq.mode, q.aq.mode = "observe", "observe"
        q.quantized_weight()
        q.wq.freeze()
    for xb in batches:
        model(xb)
    for q in wrapped.values():
        q.aq.freeze()
    model.train(was_training)
