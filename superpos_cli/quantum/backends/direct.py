"""Compiled elementwise kernels called without dynamo's per-call work.

At the paper's sizes (a few 10k scores a call) dynamo's frame evaluation and guards
cost about as much as a kernel itself (~150-250 us a call measured here, three calls a
shot-sampled forward). :class:`DirectKernels` compiles each (kernel, argument
signature) once with a ``torch.compile`` whose backend captures the one graph inductor
built; later calls hand the arguments straight to that graph. The first call checks
the direct result against dynamo's bit for bit (NaN equal to NaN); anything
unexpected (several graphs, an input the graph reads that is not an argument, its
size or its offset) keeps that signature on the ordinary dynamo path.

The signature a direct call is valid for: each 1-d tensor argument is data of any
size >= 2 (dynamo specialises sizes 0 and 1), contiguous and without autograd; every
other tensor's shape, and every tensor's dtype and device, are part of the key; float
arguments may take any value (dynamo makes them 0-dim graph inputs, cached here).
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

import torch

# A graph input's source: an argument (L), or a module global (G: a float constant the
# kernel reads, which dynamo makes an input), or an argument's size or offset.
_SOURCE = re.compile(r"([LG])\['(\w+)'\](\.size\(\)\[(\d+)\]|\.storage_offset\(\))?")


def _same(out, expected) -> bool:
    """Bit for bit the same tensor, NaN equal to NaN."""
    if not isinstance(out, torch.Tensor) or out.shape != expected.shape or out.dtype != expected.dtype:
        return False
    if not out.is_floating_point():
        return torch.equal(out, expected)
    return torch.equal(out.isnan(), expected.isnan()) and torch.equal(out.nan_to_num(), expected.nan_to_num())


def signature(args: Sequence) -> tuple | None:
    """What a compiled kernel's validity depends on, per argument: a tensor's (dtype,
    device, shape), with the shape 1 for any 1-d tensor of length >= 2 (data of any
    size: dynamo specialises sizes 0 and 1), or ``float`` for a float; None where an
    argument has autograd, is not contiguous, is a 1-d tensor of length < 2, or is of
    another type (those calls keep dynamo's path)."""
    out = []
    for arg in args:
        if isinstance(arg, torch.Tensor):
            if arg.requires_grad or not arg.is_contiguous():
                return None
            if arg.dim() == 1:
                if arg.numel() < 2:
                    return None
                out.append((arg.dtype, arg.device, 1))
            else:
                out.append((arg.dtype, arg.device, tuple(arg.shape)))
        elif type(arg) is float:
            out.append(float)
        else:
            return None
    return tuple(out)


class ScalarCache:
    """0-dim tensors for float arguments (compiled graphs take them as inputs), cached:
    they take few values. Tensors pass through."""

    def __init__(self, limit: int = 256):
        self.limit, self._tensors = limit, {}

    def __call__(self, value, dtype: torch.dtype) -> torch.Tensor:
        if isinstance(value, torch.Tensor):
            return value
        key = (value, dtype)
        out = self._tensors.get(key)
        if out is None:
            if len(self._tensors) > self.limit:
                self._tensors.clear()
            out = self._tensors[key] = torch.tensor(value, dtype=dtype)
        return out


class DirectKernels:
    """name -> kernel, compiled by inductor and called directly once compiled (:meth:`run`)."""

    def __init__(self, kernels: dict[str, Callable], arg_names: dict[str, Sequence[str]],
                 n_outputs: dict[str, int], options: dict | None = None):
        self.kernels, self.arg_names, self.n_outputs, self.options = kernels, arg_names, n_outputs, options
        self.entries: dict[tuple, object] = {}  # key -> (compiled graph, input builders), or False: dynamo's path
        self._scalar = ScalarCache()
        self._dynamo: dict[str, Callable] = {}  # name -> torch.compile'd kernel, for signatures off the direct path

    def run(self, name: str, args: Sequence):
        """The kernel's result: directly where :meth:`call` can, through dynamo otherwise.
        Compiler failures propagate (callers fall back to eager kernels)."""
        direct = self.call(name, args)
        if direct is not None:
            return direct
        if name not in self._dynamo:
            self._dynamo[name] = torch.compile(self.kernels[name], dynamic=True, options=self.options)
        return self._dynamo[name](*args)

    def call(self, name: str, args: Sequence):
        """The kernel's result, or None where this signature takes dynamo's path."""
        key = self._key(name, args)
        if key is None:
            return None
        entry = self.entries.get(key)
        if entry is False:
            return None
        if entry is not None:
            return self._invoke(name, entry, args)
        return self._capture(name, key, args)

    def _key(self, name: str, args) -> tuple | None:
        described = signature(args)
        return None if described is None else (name, *described)

    def _invoke(self, name: str, entry, args):
        fn, builders = entry
        scope = dict(zip(self.arg_names[name], args))
        out = fn(*[build(scope) for build in builders])
        n = self.n_outputs[name]
        return out[0] if n == 1 else tuple(out[:n])

    def _capture(self, name: str, key: tuple, args):
        captured = []

        def backend(gm, example_inputs):
            from torch._inductor.compile_fx import compile_fx

            builders = self._builders(gm, self.kernels[name])  # before compile_fx, which drops the placeholders' metadata
            fn = compile_fx(gm, example_inputs, config_patches=self.options or {})
            captured.append((builders, fn))
            return fn

        result = torch.compile(self.kernels[name], dynamic=True, backend=backend)(*args)
        self.entries[key] = False
        if len(captured) == 1 and captured[0][0] is not None:
            entry = captured[0][1], captured[0][0]
            expected = (result,) if self.n_outputs[name] == 1 else tuple(result)
            again = self._invoke(name, entry, args)
            again = (again,) if self.n_outputs[name] == 1 else again
            if all(_same(o, e) for o, e in zip(again, expected)):
                self.entries[key] = entry
        return result

    def _builders(self, gm, kernel) -> list | None:
        """Per graph input, a function of the kernel's arguments (by name) that makes it."""
        out = []
        for node in gm.graph.nodes:
            if node.op != "placeholder":
                continue
            grapharg = node.meta.get("grapharg")
            if grapharg is None:
                return None
            source = grapharg.source.name
            source = source() if callable(source) else source
            match = _SOURCE.fullmatch(source)
            if match is None:
                return None
            scope_name, arg, dim = match.group(1), match.group(2), match.group(4)
            if scope_name == "G":
                if not (isinstance(grapharg.example, torch.Tensor) and grapharg.example.dim() == 0):
                    return None
                out.append(lambda scope, names=kernel.__globals__, arg=arg, dtype=grapharg.example.dtype:
                           self._scalar(names[arg], dtype))
            elif match.group(3) == ".storage_offset()":
                out.append(lambda scope, arg=arg: scope[arg].storage_offset())
            elif dim is not None:
                out.append(lambda scope, arg=arg, dim=int(dim): scope[arg].shape[dim])
            elif isinstance(grapharg.example, torch.Tensor) and grapharg.example.dim() == 0:
                # a float argument (dynamo's 0-dim input) or a 0-dim tensor one
                out.append(lambda scope, arg=arg, dtype=grapharg.example.dtype: self._scalar(scope[arg], dtype))
            elif isinstance(grapharg.example, torch.Tensor):
                out.append(lambda scope, arg=arg: scope[arg])
            else:
                return None
        return out
