r"""SuperpositionalAdam: Adam plus the paper's superpositional term.

The paper (arXiv:2511.01918) calls its method "Superpositional Gradient Descent"
(SGD); it is an Adam variant, named ``SuperpositionalAdam`` here and ``sgd`` /
``superpos`` on the CLI. For each step t, with raw gradient g_t::

    theta_{t+1} = theta_t - lr * ( m^ / (sqrt(v^) + eps)  +  lambda * Q )
    Q_i = f(theta_{t,i}) * g_{t,i}   on the selected coordinates, 0 elsewhere

m^, v^ are Adam's bias-corrected moments and f comes from
:data:`superpos_cli.optim.perturbations.PERTURBATIONS` (``sin(pi theta)`` is the
paper's). The exact per-tensor math, weight decay included, is in
:mod:`superpos_cli.optim.functional`. With ``perturb="none"`` or
``perturb_scale=0`` this is ``torch.optim.Adam`` (``decoupled_weight_decay=False``)
or ``torch.optim.AdamW`` (True) to float rounding.

Scope (which coordinates get Q, the paper's "first n_qubits parameters"), counted
over all parameters in the order given, across param groups in order:

* ``tensors`` (default, our reading): every coordinate of the first ``n_qubits``
  parameter tensors;
* ``coords``: the first ``n_qubits`` coordinates of each tensor (flattened);
* ``global``: the first ``n_qubits`` coordinates of all parameters flattened and
  concatenated;
* ``all``: every coordinate.

A parameter without a gradient at a step is skipped but still holds its place in
the order, so the selected set never shifts from step to step.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Optional

import torch
from torch import Tensor

from superpos_cli.optim.functional import (
    fused_kernel_plan,
    kernel_compile_seconds,
    native_fused,
    perturbs,
    superpositional_adam,
    torch_fused_adam_supports,
)
from superpos_cli.errors import BadInput
from superpos_cli.optim.perturbations import get_perturbation
from superpos_cli.spec.options import OPTIONS
from superpos_cli.spec.registry import SCOPES

__all__ = ["SuperpositionalAdam", "SCOPES"]


# Below this many coordinates behind compiled kernels, the default path runs no
# compiled kernel (torch's fused Adam plus one foreach pass for Q): on a CPU a one-off
# compile (seconds) would cost more than it ever saves on a small model; on CUDA each
# compiled call's host overhead (~0.1 ms) outweighs the passes it saves until the
# memory traffic dominates. Measured on an H200 (torch 2.11, sin, scope tensors / all,
# step time over fused Adam's): 16.8M coordinates compiled 5.7x / 8.6x, not 2.6x / 3.5x;
# 67M even (2.0x); 268M 1.31x / 1.48x vs 1.26x / 2.04x; 1.07B 1.15x / 1.29x vs 1.25x / 2.02x.
_COMPILE_PAYS_NUMEL = 1 << 20
_COMPILE_PAYS_NUMEL_ON = {"cuda": 1 << 28}

_GENERATOR_KEY = "perturb_generator_state"


def _check_number(name: str, value: Any, *, option: str) -> None:
    """ValueError naming ``name`` unless ``value`` passes spec option ``option``'s rule
    (spec/options.py: the one rule the CLI, arms and suites apply too)."""
    try:
        OPTIONS[option].parse(value)
    except BadInput as err:
        raise ValueError(f"Invalid {name}: {value!r} ({err})") from None


def _check_flag(name: str, value: Any, *, allow_none: bool = False) -> None:
    if not (isinstance(value, bool) or (allow_none and value is None)):
        allowed = "True, False or None" if allow_none else "True or False"
        raise ValueError(f"Invalid {name}: {value!r} (must be {allowed})")


def _validate_group(group: dict) -> None:
    """ValueError naming the first bad hyperparameter of a param group."""
    _check_number("lr", group["lr"], option="lr")
    _check_number("eps", group["eps"], option="eps")
    betas = group["betas"]
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise ValueError(f"Invalid betas: {betas!r} (must be a pair (beta1, beta2))")
    _check_number("beta parameter at index 0", betas[0], option="beta1")
    _check_number("beta parameter at index 1", betas[1], option="beta2")
    _check_number("weight_decay", group["weight_decay"], option="weight_decay")
    _check_number("perturb_scale", group["perturb_scale"], option="lambda")
    get_perturbation(group["perturb"])
    for flag in ("eps_inside_sqrt", "perturb_unscaled", "decoupled_weight_decay"):
        _check_flag(flag, group[flag])
    _check_flag("foreach", group["foreach"], allow_none=True)
    _check_flag("fused", group["fused"], allow_none=True)
    if group["foreach"] and group["fused"]:
        raise ValueError("Invalid foreach/fused: foreach=True and fused=True cannot be combined")
    if group["fused"] and not all(torch.is_floating_point(p) for p in group["params"]):
        raise ValueError("Invalid fused: fused=True needs floating-point parameters")


class SuperpositionalAdam(torch.optim.Optimizer):
    """Adam with the superpositional term lambda * f(theta) * g (module doc has the math).

    Args:
        params: parameters or param groups; a group may override any per-group
            option (lr, betas, eps, weight_decay, perturb, perturb_scale,
            eps_inside_sqrt, perturb_unscaled, decoupled_weight_decay, foreach, fused).
        lr, betas, eps, weight_decay: as in ``torch.optim.Adam`` / ``AdamW``.
        perturb: name of f in ``PERTURBATIONS`` (sin, cos, gaussian, uniform, none).
        perturb_scale: lambda >= 0 (the paper's "quantum weight"; 0.1 and 0.5).
        scope: ``tensors`` | ``coords`` | ``global`` | ``all`` (module doc);
            optimizer-wide, like ``n_qubits``, because it counts across groups.
        n_qubits: how many tensors / coordinates the scope selects (>= 1).
        eps_inside_sqrt: use sqrt(v^ + eps) instead of sqrt(v^) + eps.
        perturb_unscaled: subtract lambda * Q instead of lr * lambda * Q.
        decoupled_weight_decay: True: theta *= 1 - lr * wd (AdamW); False: coupled
            L2, g += wd * theta (Adam's weight_decay). Q always uses the gradient
            before the L2 term (the raw g_t of the paper).
        seed: seed of the generator behind random f (gaussian, uniform). None takes
            ``torch.initial_seed()``, so ``torch.manual_seed(s)`` before
            construction makes runs reproducible. The generator state is part of
            ``state_dict()``.
        foreach, fused: implementation (all agree to float rounding).
            ``fused=True``: on CPU, one C pass over every tensor (adam_kernels.c);
            elsewhere single-pass compiled kernels for tensors wholly in scope,
            torch's fused Adam for the rest (foreach if compiling fails; see
            ``compile_seconds()``); ``foreach=True``: ``torch._foreach_*`` ops;
            ``foreach=False``: the single-tensor reference loop. Both None: fused,
            unless that would compile kernels for fewer than 2**20 coordinates
            (2**28 on CUDA), where the compile or the calls' overhead outweighs
            the gain; then torch's fused Adam
            for every tensor plus one foreach pass for Q (no compile), or foreach
            with ``eps_inside_sqrt``, under ``torch.compile`` or on a device without
            torch's fused Adam.

    ``torch.compile(optimizer.step)`` works as for ``torch.optim.Adam`` (the fused
    path then runs eagerly, as torch's does; :mod:`superpos_cli.optim.functional`
    says what else differs), and so do LR schedulers (``OneCycleLR`` cycles
    ``betas``), ``torch.amp.GradScaler``, step hooks and Hugging Face's ``Trainer``;
    tests/test_optim_clients.py drives each.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        perturb: str = "sin",
        perturb_scale: float = 0.5,
        scope: str = "tensors",
        n_qubits: int = 4,
        eps_inside_sqrt: bool = False,
        perturb_unscaled: bool = False,
        decoupled_weight_decay: bool = True,
        seed: Optional[int] = None,
        foreach: Optional[bool] = None,
        fused: Optional[bool] = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            perturb=perturb,
            perturb_scale=perturb_scale,
            eps_inside_sqrt=eps_inside_sqrt,
            perturb_unscaled=perturb_unscaled,
            decoupled_weight_decay=decoupled_weight_decay,
            foreach=foreach,
            fused=fused,
        )
        _validate_group(dict(defaults, params=[]))
        if scope not in SCOPES:
            raise ValueError(f"Invalid scope: {scope!r}; allowed: {', '.join(SCOPES)}")
        if not (isinstance(n_qubits, int) and not isinstance(n_qubits, bool) and n_qubits >= 1):
            raise ValueError(f"Invalid n_qubits: {n_qubits!r} (must be an integer >= 1)")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"Invalid seed: {seed!r} (must be None or an integer >= 0)")
        self.scope = scope
        self.n_qubits = n_qubits
        self.seed = torch.initial_seed() if seed is None else seed
        self._generator = torch.Generator()
        self._generator.manual_seed(self.seed)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        """Add a group (torch semantics), validating its hyperparameters."""
        super().add_param_group(param_group)
        try:
            _validate_group(self.param_groups[-1])
        except ValueError:
            self.param_groups.pop()
            raise

    # -- state ---------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """torch's optimizer state plus the perturbation generator's state."""
        state = super().state_dict()
        state[_GENERATOR_KEY] = self._generator.get_state()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output, generator included (so the noise
        sequence continues exactly where it was saved)."""
        state_dict = dict(state_dict)
        generator_state = state_dict.pop(_GENERATOR_KEY, None)
        super().load_state_dict(state_dict)
        if generator_state is not None:
            self._generator.set_state(generator_state)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle / deepcopy support: torch keeps only defaults, state and groups;
        scope, n_qubits, seed and the generator's state belong to this optimizer too."""
        state = super().__getstate__()
        state.update(scope=self.scope, n_qubits=self.n_qubits, seed=self.seed)
        state[_GENERATOR_KEY] = self._generator.get_state()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        generator_state = state.pop(_GENERATOR_KEY, None)
        super().__setstate__(state)
        # torch's load_state_dict also comes through here, with state and groups only.
        if generator_state is not None:
            self._generator = torch.Generator()
            self._generator.set_state(generator_state)

    def perturb_counts(self) -> list[list[int]]:
        """Per group, per parameter: how many leading (flattened) coordinates get Q."""
        counts: list[list[int]] = []
        remaining = self.n_qubits  # for scope "global"
        index = 0  # for scope "tensors"
        for group in self.param_groups:
            group_counts = []
            for p in group["params"]:
                numel = p.numel()
                if self.scope == "tensors":
                    k = numel if index < self.n_qubits else 0
                elif self.scope == "coords":
                    k = min(self.n_qubits, numel)
                elif self.scope == "global":
                    k = min(remaining, numel)
                    remaining -= k
                else:
                    k = numel
                index += 1
                group_counts.append(k)
            counts.append(group_counts)
        return counts

    def _init_group(
        self,
        group: dict,
        params: list[Tensor],
        grads: list[Tensor],
        exp_avgs: list[Tensor],
        exp_avg_sqs: list[Tensor],
        steps: list[Tensor],
    ) -> bool:
        """Fill the empty lists with the group's tensors that have a gradient,
        creating state lazily; return whether any has a gradient.

        torch's signature and contract on purpose: dynamo runs an optimizer's
        ``_init_group`` in Python instead of tracing it, when its arguments are the
        group and empty lists, and wraps the return value as a constant (so it
        must be one: a tensor list here failed with "Cannot construct
        ConstantVariable for value of type Parameter").
        """
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError("SuperpositionalAdam does not support sparse gradients")
            if torch.is_complex(p):
                raise RuntimeError("SuperpositionalAdam does not support complex parameters")
            state = self.state[p]
            if not state:
                # float32 step on the parameter's device: what torch's fused Adam
                # reads; the other paths read it with .item() (eagerly).
                state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            params.append(p)
            grads.append(p.grad)
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            steps.append(state["step"])
        return bool(params)

    def _paths(self, group: dict, params: list[Tensor], counts: list[int]) -> tuple[bool, bool, bool]:
        """(foreach, fused, compile_kernels) for this group, resolving the None
        defaults (class doc); kept per (tensors with their dtype and device, counts,
        the options it reads), as working it out costs ~30 us a step on textcls's 28
        tensors. dtype and device are in the key because ``model.to(...)`` after
        building the optimizer changes them without changing the tensors' identity."""
        if torch.compiler.is_compiling():  # traced once into the graph: nothing to keep
            return self._resolve_paths(group, params, counts)
        key = (tuple((id(p), p.dtype, p.device) for p in params), tuple(counts), group["foreach"],
               group["fused"], group["perturb"], group["perturb_scale"], group["eps_inside_sqrt"])
        cache = self.__dict__.setdefault("_path_cache", {})
        if key not in cache:
            if len(cache) > 64:  # parameters came and went (a sweep over groups): start afresh
                cache.clear()
            cache[key] = self._resolve_paths(group, params, counts)
        return cache[key]

    def _resolve_paths(self, group: dict, params: list[Tensor], counts: list[int]) -> tuple[bool, bool, bool]:
        foreach, fused = group["foreach"], group["fused"]
        if fused is None and foreach is None:
            if not all(torch.is_floating_point(p) for p in params):
                return True, False, True
            compiled = self._compiled_numel(group, params, counts)
            device = params[0].device.type if params else "cpu"
            if compiled == 0 or compiled >= _COMPILE_PAYS_NUMEL_ON.get(device, _COMPILE_PAYS_NUMEL):
                return False, True, True
            # A small model: torch's fused Adam for every tensor and Q in one foreach
            # pass, where torch has the fused kernel and no eps sits inside the sqrt.
            # Under torch.compile(step), foreach as before: dynamo traces it into one
            # graph, where the fused path would run eagerly (as torch's fused Adam).
            if not group["eps_inside_sqrt"] and not torch.compiler.is_compiling() and torch_fused_adam_supports(params):
                return False, True, False
            return True, False, True
        if fused:
            return False, True, True
        return foreach is not False, False, True

    def _compiled_numel(self, group: dict, params: list[Tensor], counts: list[int]) -> int:
        plan = fused_kernel_plan(
            params,
            counts,
            perturbation=get_perturbation(group["perturb"]),
            perturb_scale=group["perturb_scale"],
            eps_inside_sqrt=group["eps_inside_sqrt"],
        )
        return sum(p.numel() for p, key in zip(params, plan) if key is not None)

    def compile_seconds(self) -> Optional[float]:
        """Compile time of the kernels this optimizer's fused path uses (None if it
        uses none, or has not compiled them yet). Kernels are shared process-wide,
        so this is the one-off cost, whoever paid it."""
        keys = []
        for group, counts in zip(self.param_groups, self.perturb_counts()):
            params = list(group["params"])
            _, fused, compile_kernels = self._paths(group, params, counts)
            if not fused or native_fused(params):
                continue  # the C pass (adam_kernels.c) compiles nothing
            keys += fused_kernel_plan(
                params,
                counts,
                perturbation=get_perturbation(group["perturb"]),
                perturb_scale=group["perturb_scale"],
                eps_inside_sqrt=group["eps_inside_sqrt"],
                compile_kernels=compile_kernels,
            )
        return kernel_compile_seconds([key for key in keys if key is not None])

    # -- telemetry -----------------------------------------------------------

    @torch.no_grad()
    def perturbation_telemetry(self) -> dict[str, Optional[float]]:
        r"""How large the next :meth:`step`'s perturbation is next to Adam's own step.

        Call it after the gradients are final (clipped) and before ``step()``; it
        reads the parameters, gradients, state and learning rates the step will use
        and writes none of them. On the coordinates the scope selects::

            perturb_ratio = ||c * Q|| / ||lr * m^ / D||,   c = lr * lambda (lambda unscaled)
            scope_share   = selected coordinates / all coordinates of the parameters

        with Q, m^ and D as the foreach kernel (:mod:`superpos_cli.optim.functional`)
        computes them for this step, on copies of the selected slices (coupled L2
        included in g' for m and v; Q from the raw g): one ``torch._foreach_*`` call
        per operation for a group's selected tensors, so a call costs a few dozen
        dispatches, not a few per tensor. Adam's step excludes decoupled weight
        decay, which is neither Adam's direction nor the perturbation. Random f draws
        from a copy of the perturbation generator, so the real step draws the same
        numbers it would have without this call. Norms are over all selected
        coordinates of all groups together; parameters without a gradient are
        skipped, as the step skips them. ``perturb_ratio`` is 0.0 when Q is absent
        (lambda 0 or f = none) and None when Adam's step is 0 on the selection.
        """
        generator = torch.Generator()
        generator.set_state(self._generator.get_state())
        perturb_sq = adam_sq = 0.0
        selected = total = 0
        for group, counts in zip(self.param_groups, self.perturb_counts()):
            total += sum(p.numel() for p in group["params"])
            selected += sum(counts)
            scoped = [(p, k) for p, k in zip(group["params"], counts) if k and p.grad is not None]
            if not scoped:
                continue
            lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            thetas = [p.reshape(-1)[:k] for p, k in scoped]  # (k,) each
            grads = [p.grad.reshape(-1)[:k] for p, k in scoped]
            states = [self.state[p] for p, _ in scoped]
            m = [s["exp_avg"].reshape(-1)[:k] if s else torch.zeros_like(t) for s, (_, k), t in zip(states, scoped, thetas)]
            v = [s["exp_avg_sq"].reshape(-1)[:k] if s else torch.zeros_like(t) for s, (_, k), t in zip(states, scoped, thetas)]
            steps = [float(s["step"]) + 1 if s else 1.0 for s in states]
            g = torch._foreach_add(grads, thetas, alpha=wd) if wd != 0 and not group["decoupled_weight_decay"] else grads
            m = torch._foreach_lerp(m, g, 1 - beta1)
            v = torch._foreach_mul(v, beta2)
            torch._foreach_addcmul_(v, g, g, 1 - beta2)
            bias_correction2 = [1 - beta2**t for t in steps]
            if group["eps_inside_sqrt"]:
                denom = torch._foreach_div(v, bias_correction2)
                torch._foreach_add_(denom, eps)
                torch._foreach_sqrt_(denom)
            else:
                denom = torch._foreach_sqrt(v)
                torch._foreach_div_(denom, [bc**0.5 for bc in bias_correction2])
                torch._foreach_add_(denom, eps)
            adam = torch._foreach_div(m, denom)
            torch._foreach_mul_(adam, [lr / (1 - beta1**t) for t in steps])
            adam_sq += sum(float(n) ** 2 for n in torch._foreach_norm(adam))
            perturbation = get_perturbation(group["perturb"])
            if perturbs(perturbation, group["perturb_scale"]):
                c = group["perturb_scale"] if group["perturb_unscaled"] else lr * group["perturb_scale"]
                q = perturbation.foreach_fn(thetas, generator)
                torch._foreach_mul_(q, grads)
                perturb_sq += c**2 * sum(float(n) ** 2 for n in torch._foreach_norm(q))
        ratio = None if adam_sq == 0 else math.sqrt(perturb_sq / adam_sq)
        return {"perturb_ratio": ratio, "scope_share": selected / total if total else None}

    # -- step ----------------------------------------------------------------

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], float]] = None) -> Optional[float]:
        """One optimization step; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group, counts in zip(self.param_groups, self.perturb_counts()):
            params: list[Tensor] = []
            grads: list[Tensor] = []
            exp_avgs: list[Tensor] = []
            exp_avg_sqs: list[Tensor] = []
            steps: list[Tensor] = []
            self._init_group(group, params, grads, exp_avgs, exp_avg_sqs, steps)
            kept = [k for p, k in zip(group["params"], counts) if p.grad is not None]
            kwargs = self._kernel_kwargs(group, params, kept)
            superpositional_adam(
                params, grads, exp_avgs, exp_avg_sqs, steps, kept, generator=self._generator,
                scratch=self.__dict__.setdefault("_scratch", {}), **kwargs
            )
        return loss

    def _kernel_kwargs(self, group: dict, params: list[Tensor], counts: list[int]) -> dict[str, Any]:
        foreach, fused, compile_kernels = self._paths(group, params, counts)
        beta1, beta2 = group["betas"]
        return dict(
            foreach=foreach,
            fused=fused,
            compile_kernels=compile_kernels,
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            eps_inside_sqrt=group["eps_inside_sqrt"],
            decoupled_weight_decay=group["decoupled_weight_decay"],
            perturbation=get_perturbation(group["perturb"]),
            perturb_scale=group["perturb_scale"],
            perturb_unscaled=group["perturb_unscaled"],
        )
