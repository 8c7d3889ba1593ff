"""Counting machinery of the cost estimator: which ATen ops are MACs, and attributing ops to modules.

A TorchDispatchMode sees every ATen op after autograd and composite decomposition; forward pre/post hooks keep a
stack of running modules, so each op lands on the innermost one. See runner.engine.cost for what the numbers mean.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

aten = torch.ops.aten


def _numel(shape) -> int:
    return math.prod(int(s) for s in shape)


def _mm_macs(args, out) -> int:
    # out is [.., m, n] (or [n] / scalar for mv/dot); the reduction length k is the last dim of the first matrix.
    a = args[0]
    return _numel(out.shape) * int(a.shape[-1])


def _addmm_macs(args, out) -> int:
    return _numel(out.shape) * int(args[1].shape[-1])


def _conv_macs(args, out) -> int:
    x, w = args[0], args[1]
    transposed = bool(args[6]) if len(args) > 6 else False
    # w: [C_out, C_in/groups, *k] (or [C_in, C_out/groups, *k] when transposed). Each output element (or each
    # input element, for a transposed conv, which scatters) takes prod(w.shape[1:]) MACs.
    return _numel(x.shape if transposed else out.shape) * _numel(w.shape[1:])


def _sdpa_macs(args, out) -> int:
    # q [B, H, L, E], k [B, H, S, E], v [B, H, S, Ev]: q kᵀ is B·H·L·S·E, attn v is B·H·L·S·Ev.
    q, k, v = args[0], args[1], args[2]
    batch_heads = _numel(q.shape[:-2])
    return batch_heads * int(q.shape[-2]) * int(k.shape[-2]) * (int(q.shape[-1]) + int(v.shape[-1]))


def _flash_fwd_macs(args, out) -> int:
    # _flash/_efficient_attention_forward take q [B, L, H, E], k [B, S, H, E], v [B, S, H, Ev].
    q, k, v = args[0], args[1], args[2]
    b, length, heads, e = (int(s) for s in q.shape)
    return b * heads * length * int(k.shape[1]) * (e + int(v.shape[-1]))


_MAC_RULES: dict[Any, tuple[str, Any]] = {}


def _rule(names: list[str], kind: str, fn) -> None:
    for name in names:
        packet = getattr(aten, name, None)
        if packet is not None:
            _MAC_RULES[packet] = (kind, fn)


_rule(["mm", "bmm", "mv", "dot", "vdot", "_scaled_mm"], "matmul", _mm_macs)
_rule(["addmm", "baddbmm", "addmv", "addbmm"], "matmul", _addmm_macs)
_rule(["convolution", "_convolution", "convolution_overrideable", "cudnn_convolution"], "conv", _conv_macs)
_rule(["_scaled_dot_product_flash_attention", "_scaled_dot_product_flash_attention_for_cpu",
       "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention"], "attention", _sdpa_macs)
_rule(["_flash_attention_forward", "_efficient_attention_forward"], "attention", _flash_fwd_macs)


def _batch_norm_meta(x, *args):
    channels = x.shape[1] if x.dim() > 1 else 0
    return torch.empty_like(x), x.new_empty((channels,)), x.new_empty((channels,))


# PyTorch's meta batch norm goes through a Python decomposition that costs ~6 ms a call (half of a ResNet-50's
# estimate); the output shapes are trivial, so they are produced directly.
_META_SHORTCUTS = {aten.native_batch_norm.default: _batch_norm_meta}
# Allocations move no data.
_ALLOCATIONS = {aten.empty, aten.empty_like, aten.empty_strided, aten.new_empty, aten.new_empty_strided}


@dataclass
class Row:
    name: str
    type: str
    order: int
    calls: int = 0
    leaf: bool = True
    input_shape: list[int] | None = None
    output_shape: list[int] | None = None
    w_bits: int = 32
    a_bits: int = 32
    macs: int = 0
    macs_weight: int = 0  # MACs with a weight operand (w × a); the rest are activation × activation
    effective_macs: float = 0.0
    weight_bytes: float = 0.0
    act_in_bytes: float = 0.0
    act_out_bytes: float = 0.0
    param_names: set[str] = field(default_factory=set)
    ops: set[str] = field(default_factory=set)


@dataclass
class _Frame:
    module: nn.Module
    name: str
    seq: int
    w_bits: int
    a_bits: int
    child_called: bool = False
    first_op_seq: int | None = None
    macs: int = 0
    macs_weight: int = 0
    effective_macs: float = 0.0
    op_weight_bytes: float = 0.0
    op_in_bytes: float = 0.0
    op_out_bytes: float = 0.0
    op_params: set[str] = field(default_factory=set)
    ops: set[str] = field(default_factory=set)


def _act_bytes(t: torch.Tensor, a_bits: int) -> float:
    """Bytes of an activation tensor: floats at the activation bit width, integer/bool tensors at their dtype."""
    if t.is_floating_point() or t.is_complex():
        return t.numel() * a_bits / 8.0
    return float(t.numel() * t.element_size())


def _first_shape(obj) -> list[int] | None:
    for leaf in tree_leaves(obj):
        if isinstance(leaf, torch.Tensor):
            return [int(s) for s in leaf.shape]
    return None


class Tracker(TorchDispatchMode):
    """Module stack (from hooks) + op counting (from dispatch). One instance per estimate() call."""

    def __init__(self, model: nn.Module, bits_for, tensor_names: dict[int, str], param_ids: set[int],
                 sparsity: dict[str, tuple[int, int]]):
        super().__init__()
        self.bits_for = bits_for
        self.tensor_names = tensor_names  # id(tensor as the forward sees it) -> parameter/buffer name
        self.param_ids = param_ids
        self.sparsity = sparsity
        self.names = {id(m): n for n, m in model.named_modules()}
        self.stack: list[_Frame] = []
        self.rows: dict[str, Row] = {}
        self.seq = 0
        self.handles = []
        for module in model.modules():
            self.handles.append(module.register_forward_pre_hook(self._pre))
            self.handles.append(module.register_forward_hook(self._post, with_kwargs=True))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def _named(self, t: torch.Tensor) -> str | None:
        name = self.tensor_names.get(id(t))
        if name is None and t._base is not None:
            name = self.tensor_names.get(id(t._base))
        return name

    def _pre(self, module, args):
        if self.stack:
            self.stack[-1].child_called = True
        name = self.names.get(id(module), "")
        w_bits, a_bits = self.bits_for(name)
        self.stack.append(_Frame(module, name, self._next(), w_bits, a_bits))

    def _post(self, module, args, kwargs, output):
        frame = self.stack.pop()
        row = self.rows.get(frame.name)
        leaf = not frame.child_called
        order = frame.seq if leaf else (frame.first_op_seq or frame.seq)
        if row is None:
            row = Row(frame.name or "(model)", type(module).__name__, order, w_bits=frame.w_bits,
                       a_bits=frame.a_bits)
            self.rows[frame.name] = row
        row.order = min(row.order, order)
        row.leaf = row.leaf and leaf
        row.calls += 1
        row.macs += frame.macs
        row.macs_weight += frame.macs_weight
        row.effective_macs += frame.effective_macs
        row.ops |= frame.ops
        if row.input_shape is None:
            row.input_shape = _first_shape((args, kwargs))
            row.output_shape = _first_shape(output)
        if leaf and frame.first_op_seq is not None:
            # A leaf moves its inputs, outputs and its own weights (parameters and floating buffers) once per call;
            # one that ran only views (Flatten, Identity, Dropout in eval) moves nothing.
            for leaf_t in tree_leaves((args, kwargs)):
                if isinstance(leaf_t, torch.Tensor):
                    row.act_in_bytes += _act_bytes(leaf_t, frame.a_bits)
            for leaf_t in tree_leaves(output):
                if isinstance(leaf_t, torch.Tensor):
                    row.act_out_bytes += _act_bytes(leaf_t, frame.a_bits)
            for pname, p in list(module.named_parameters(prefix=frame.name)) + [
                    (n, b) for n, b in module.named_buffers(prefix=frame.name) if b.is_floating_point()]:
                row.weight_bytes += p.numel() * frame.w_bits / 8.0
                if pname in self.sparsity:
                    row.param_names.add(pname)
        elif not leaf:
            row.act_in_bytes += frame.op_in_bytes
            row.act_out_bytes += frame.op_out_bytes
            row.weight_bytes += frame.op_weight_bytes
            row.param_names |= frame.op_params

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        shortcut = _META_SHORTCUTS.get(func)
        if shortcut is not None and args[0].device.type == "meta":
            out = shortcut(*args)
        else:
            out = func(*args, **kwargs)
        if not self.stack:
            return out
        frame = self.stack[-1]
        rule = _MAC_RULES.get(func.overloadpacket)
        if rule is not None:
            kind, fn = rule
            macs = int(fn(args, out if isinstance(out, torch.Tensor) else out[0]))
            weight_name = None
            for a in args:  # the weight matrix/kernel operand (addmm's first operand is a 1-D bias)
                if isinstance(a, torch.Tensor) and a.dim() >= 2 and (id(a) in self.param_ids or (
                        a._base is not None and id(a._base) in self.param_ids)):
                    weight_name = self._named(a)
                    break
            frame.macs += macs
            frame.ops.add(kind)
            if weight_name is not None:
                frame.macs_weight += macs
                zeros, numel = self.sparsity.get(weight_name, (0, 1))
                frame.effective_macs += macs * (1.0 - zeros / numel)
            else:
                frame.effective_macs += macs
        self._op_traffic(frame, func, args, kwargs, out)
        return out

    def _op_traffic(self, frame: _Frame, func, args, kwargs, out) -> None:
        # Used only for ops written directly in a non-leaf forward (a leaf's traffic is taken at module level), but
        # whether a frame is a leaf is known only when it returns, so every non-view op is tallied.
        if func.is_view or func.overloadpacket in _ALLOCATIONS:
            return
        if frame.first_op_seq is None:
            frame.first_op_seq = self._next()
        for a in tree_leaves((args, kwargs)):
            if isinstance(a, torch.Tensor):
                name = self._named(a)
                if name is not None:
                    frame.op_weight_bytes += a.numel() * frame.w_bits / 8.0
                    frame.op_params.add(name)
                else:
                    frame.op_in_bytes += _act_bytes(a, frame.a_bits)
        for o in tree_leaves(out):
            if isinstance(o, torch.Tensor):
                frame.op_out_bytes += _act_bytes(o, frame.a_bits)


def run_counted(model: nn.Module, inputs, bits_for, sparsity, meta: bool) -> dict[str, Row]:
    """One forward pass (on meta tensors, or real ones when ``meta`` is False) with counting; rows by module name."""
    state = dict(model.named_parameters())
    state.update(dict(model.named_buffers()))
    if meta:
        state = {n: t.detach().to("meta") for n, t in state.items()}
        call_inputs = tuple(t.to("meta") for t in inputs)
    else:
        device = next((t.device for t in state.values()), torch.device("cpu"))
        # The caller's own tensors when it gave real ones (token ids must stay valid ids), else random ones.
        call_inputs = tuple(t.to(device) if t.device.type != "meta" else
                            torch.randn(t.shape, device=device) if t.is_floating_point()
                            else torch.zeros(t.shape, dtype=t.dtype, device=device) for t in inputs)
    tensor_names = {id(t): n for n, t in state.items()}
    param_ids = {id(state[n]) for n, _ in model.named_parameters()}
    tracker = Tracker(model, bits_for, tensor_names, param_ids, sparsity)
    try:
        with tracker:
            if meta:
                torch.func.functional_call(model, state, call_inputs, strict=False)
            else:
                model(*call_inputs)
    finally:
        tracker.remove()
    return tracker.rows
