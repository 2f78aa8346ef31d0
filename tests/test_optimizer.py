"""SuperpositionalAdam: the torch.optim contract, the paper's math, path agreement."""

import contextlib
import copy
import itertools
import math
import warnings

import pytest
import torch

from superpos_cli.optim import adam_native, functional
from superpos_cli.optim.optimizer import SCOPES, SuperpositionalAdam
from superpos_cli.optim.perturbations import PERTURBATIONS

# "default": both None; on these small tensors that is torch's fused Adam for every
# tensor plus a foreach pass for Q (no compiled kernel), or foreach with eps inside.
# "fused" on CPU runs adam_kernels.c; "compiled" is the fused path with the C kernels off:
# torch.compile's kernels, torch's fused Adam and foreach passes (what other devices run).
PATHS = {"single": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True},
         "compiled": {"fused": True}, "default": {}}
FUSED = ("fused", "compiled")
NATIVE = adam_native.kernels([torch.zeros(1)]) is not None  # a C compiler here


@contextlib.contextmanager
def _on_path(path):
    """NATIVE off for the "compiled" path, as it was otherwise."""
    saved = functional.NATIVE
    functional.NATIVE = path != "compiled"
    try:
        yield
    finally:
        functional.NATIVE = saved


@pytest.fixture(autouse=True)
def _path_switch(request):
    callspec = getattr(request.node, "callspec", None)
    with _on_path(callspec.params.get("path") if callspec else None):
        yield


def _mlp(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).to(dtype)


def _regression(dtype=torch.float32):
    generator = torch.Generator().manual_seed(123)
    x = torch.randn(64, 4, generator=generator, dtype=dtype)
    y = (x @ torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=dtype)).sin().unsqueeze(1)
    return x, y


def _train(model, optimizer, steps=20, scheduler=None):
    x, y = _regression(next(model.parameters()).dtype)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return [p.detach().clone() for p in model.parameters()]


def _assert_all_close(a, b, atol):
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, atol=atol, rtol=0)


# ----------------------------------------------------------------- equals Adam

REFERENCES = {
    # name: (torch class, weight_decay, decoupled_weight_decay)
    "adam": (torch.optim.Adam, 0.0, False),
    "adam-l2": (torch.optim.Adam, 0.01, False),
    "adamw": (torch.optim.AdamW, 0.01, True),
}
NEUTRAL = {"perturb-none": dict(perturb="none", perturb_scale=0.5), "scale-0": dict(perturb="sin", perturb_scale=0.0)}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("reference", REFERENCES)
@pytest.mark.parametrize("neutral", NEUTRAL)
def test_neutral_settings_match_torch_adam(path, reference, neutral):
    cls, wd, decoupled = REFERENCES[reference]
    torch_model = _mlp()
    expected = _train(torch_model, cls(torch_model.parameters(), lr=1e-2, weight_decay=wd))
    model = _mlp()
    optimizer = SuperpositionalAdam(
        model.parameters(), lr=1e-2, weight_decay=wd, decoupled_weight_decay=decoupled,
        scope="all", **NEUTRAL[neutral], **PATHS[path],
    )
    _assert_all_close(_train(model, optimizer), expected, atol=1e-6)


# --------------------------------------------------------------------- scopes

SHAPES = [(2, 3), (2,), (4,), (2, 2)]
NO_GRAD = 1  # holds its place in the order but is skipped
# (scope, n_qubits) -> per parameter, the flat indices that get Q, by hand.
SCOPE_MASKS = {
    ("tensors", 2): [range(6), range(0), range(0), range(0)],  # p0, then p1 (no grad) uses slot 2
    ("coords", 2): [range(2), range(0), range(2), range(2)],
    ("global", 9): [range(6), range(0), range(1), range(0)],  # 6 + 2 (p1, skipped) + 1
    ("all", 4): [range(6), range(0), range(4), range(4)],
}


def _params(seed=0, dtype=torch.float32, shapes=SHAPES):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=generator, dtype=dtype).requires_grad_() for s in shapes]


def _set_grads(params, generator, skip=()):
    for i, p in enumerate(params):
        p.grad = None if i in skip else torch.randn(p.shape, generator=generator, dtype=p.dtype)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("scope, n_qubits", SCOPE_MASKS)
def test_scope_changes_exactly_named_coordinates(scope, n_qubits, path):
    adam_path = {"fused": {"fused": True}}.get(path, PATHS[path])
    reference, params = _params(), _params()
    adam = torch.optim.AdamW(reference, lr=0.05, weight_decay=0.0, **adam_path)
    optimizer = SuperpositionalAdam(params, lr=0.05, scope=scope, n_qubits=n_qubits, **PATHS[path])
    for opt, ps in ((adam, reference), (optimizer, params)):
        generator = torch.Generator().manual_seed(5)
        for _ in range(3):
            _set_grads(ps, generator, skip={NO_GRAD})
            opt.step()
    for i, (a, b) in enumerate(zip(reference, params)):
        inside = torch.zeros(a.numel(), dtype=torch.bool)
        inside[list(SCOPE_MASKS[scope, n_qubits][i])] = True
        diff = (a - b).detach().abs().view(-1)
        assert torch.all(diff[~inside] <= 1e-7), f"param {i} changed outside scope"
        assert (diff[inside] > 1e-6).all(), f"param {i} unchanged inside scope"
    assert torch.equal(params[NO_GRAD], _params()[NO_GRAD])


# ---------------------------------------------------------------- closed form

# One step from fresh state: m^ = g and v^ = g^2, so the Adam step is
# lr * g / (|g| + eps). theta = [0.25, 0.5, -1/6, 1], g = [0.2, -0.4, 0.1, 0.3],
# lr = 0.1, lambda = 0.5, eps = 1e-8. For theta_0 = 0.25 with sin:
#   Adam:   0.1 * 0.2 / 0.20000001      = 0.09999999500
#   Q:      sin(pi/4) * 0.2             = 0.14142135624
#   theta': 0.25 - 0.099999995 - 0.1 * 0.5 * 0.14142135624 = 0.14292893719
# f values by hand: sin = [sqrt2/2, 1, -1/2, 0], cos = [sqrt2/2, 0, sqrt3/2, -1].
CLOSED_FORM = {
    "sin": [0.14292893718813426, 0.6199999975000001, -0.26416665666666767, 0.9000000033333332],
    "cos": [0.14292893718813426, 0.5999999975000001, -0.2709967836855899, 0.9150000033333332],
    "none": [0.15000000499999974, 0.5999999975000001, -0.26666665666666767, 0.9000000033333332],
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("perturb", CLOSED_FORM)
def test_one_step_closed_form(perturb, path):
    # fused: float32 (its compiled kernel is exercised in float32); others float64.
    dtype, atol = (torch.float32, 1e-7) if path in FUSED else (torch.float64, 1e-15)
    theta = torch.tensor([0.25, 0.5, -1 / 6, 1.0], dtype=dtype, requires_grad=True)
    theta.grad = torch.tensor([0.2, -0.4, 0.1, 0.3], dtype=dtype)
    SuperpositionalAdam([theta], lr=0.1, perturb=perturb, perturb_scale=0.5, **PATHS[path]).step()
    torch.testing.assert_close(theta.detach(), torch.tensor(CLOSED_FORM[perturb], dtype=dtype), atol=atol, rtol=0)


def test_unscaled_and_eps_inside_closed_form():
    theta = torch.tensor([0.25], dtype=torch.float64, requires_grad=True)
    theta.grad = torch.tensor([0.2], dtype=torch.float64)
    SuperpositionalAdam([theta], lr=0.1, eps=1e-2, eps_inside_sqrt=True, perturb_unscaled=True, foreach=False).step()
    # 0.25 - 0.1 * 0.2 / sqrt(0.04 + 0.01) - 0.5 * sin(pi/4) * 0.2
    expected = 0.25 - 0.1 * 0.2 / math.sqrt(0.05) - 0.5 * math.sqrt(2) / 2 * 0.2
    assert theta.item() == pytest.approx(expected, abs=1e-15)


# ------------------------------------------------------------- randomness

def _noisy_run(perturb, steps=4, path="foreach", **kwargs):
    params = _params(shapes=[(3, 3), (5,)])
    optimizer = SuperpositionalAdam(params, lr=0.01, perturb=perturb, scope="all", **PATHS[path], **kwargs)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        _set_grads(params, generator)
        optimizer.step()
    return [p.detach().clone() for p in params]


@pytest.mark.parametrize("perturb", ["gaussian", "uniform"])
def test_noise_reproducible_per_seed(perturb):
    _assert_all_close(_noisy_run(perturb, seed=1), _noisy_run(perturb, seed=1), atol=0)
    assert not torch.equal(_noisy_run(perturb, seed=1)[0], _noisy_run(perturb, seed=2)[0])
    torch.manual_seed(11)
    a = _noisy_run(perturb)
    torch.manual_seed(11)
    _assert_all_close(_noisy_run(perturb), a, atol=0)
    state = torch.get_rng_state()
    _noisy_run(perturb, seed=3)
    assert torch.equal(state, torch.get_rng_state()), "the global RNG must not be used"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("perturb", ["gaussian", "sin"])
def test_state_dict_round_trip_mid_run(perturb, path):
    def make(params, seed=4):
        return SuperpositionalAdam(params, lr=0.01, perturb=perturb, scope="all", seed=seed, **PATHS[path])

    def feed(params, optimizer, grads):
        for step_grads in grads:
            for p, g in zip(params, step_grads):
                p.grad = g
            optimizer.step()

    generator = torch.Generator().manual_seed(0)
    grads = [[torch.randn(s, generator=generator) for s in SHAPES] for _ in range(8)]
    straight = _params()
    feed(straight, make(straight), grads)

    first = _params()
    optimizer = make(first)
    feed(first, optimizer, grads[:4])
    saved = copy.deepcopy(optimizer.state_dict())
    resumed = [p.detach().clone().requires_grad_() for p in first]
    feed(first, optimizer, grads[4:5])  # the live run moves on; the saved copy must not
    # Another seed: only the restored generator state can reproduce the noise.
    optimizer = make(resumed, seed=99)
    optimizer.load_state_dict(saved)
    feed(resumed, optimizer, grads[4:])
    _assert_all_close([p.detach() for p in resumed], [p.detach() for p in straight], atol=0)


def test_deepcopy_keeps_configuration_and_generator():
    params = _params()
    optimizer = SuperpositionalAdam(params, perturb="uniform", scope="coords", n_qubits=3, seed=5, foreach=True)
    generator = torch.Generator().manual_seed(0)
    _set_grads(params, generator)
    optimizer.step()
    twin = copy.deepcopy(optimizer)  # copies the parameters too, state keyed by the copies
    twin_params = twin.param_groups[0]["params"]
    assert (twin.scope, twin.n_qubits, twin.seed) == ("coords", 3, 5)
    _set_grads(params, generator)
    for t, p in zip(twin_params, params):
        t.grad = p.grad.clone()
    optimizer.step()
    twin.step()
    _assert_all_close([t.detach() for t in twin_params], [p.detach() for p in params], atol=0)


# ---------------------------------------------------------- path agreement

MATRIX = list(
    itertools.product(
        sorted(PERTURBATIONS),
        SCOPES,
        [False, True],  # eps_inside_sqrt
        [False, True],  # perturb_unscaled
        [(0.0, True), (0.05, True), (0.05, False)],  # (weight_decay, decoupled)
    )
)


def _path_run(path, dtype, perturb, scope, eps_inside, unscaled, wd, decoupled):
    with _on_path(path):
        return _path_steps(path, dtype, perturb, scope, eps_inside, unscaled, wd, decoupled)


def _path_steps(path, dtype, perturb, scope, eps_inside, unscaled, wd, decoupled):
    params = _params(seed=1, dtype=dtype)
    optimizer = SuperpositionalAdam(
        params, lr=0.02, eps=1e-3, weight_decay=wd, decoupled_weight_decay=decoupled,
        perturb=perturb, scope=scope, n_qubits=3, eps_inside_sqrt=eps_inside,
        perturb_unscaled=unscaled, seed=9, **PATHS[path],
    )
    generator = torch.Generator().manual_seed(2)
    for _ in range(3):
        _set_grads(params, generator, skip={NO_GRAD})
        optimizer.step()
    return [p.detach() for p in params] + [
        optimizer.state[p][key] for p in params if p in optimizer.state for key in ("exp_avg", "exp_avg_sq")
    ]


@pytest.mark.parametrize("perturb, scope, eps_inside, unscaled, wd_mode", MATRIX)
def test_paths_agree(perturb, scope, eps_inside, unscaled, wd_mode):
    case = (perturb, scope, eps_inside, unscaled, *wd_mode)
    reference64 = _path_run("single", torch.float64, *case)
    _assert_all_close(_path_run("foreach", torch.float64, *case), reference64, atol=1e-12)
    reference32 = _path_run("single", torch.float32, *case)
    _assert_all_close(_path_run("foreach", torch.float32, *case), reference32, atol=1e-6)
    _assert_all_close(_path_run("fused", torch.float32, *case), reference32, atol=1e-6)
    _assert_all_close(_path_run("compiled", torch.float32, *case), reference32, atol=1e-6)
    _assert_all_close(_path_run("fused", torch.float64, *case), reference64, atol=1e-12)
    _assert_all_close(_path_run("default", torch.float64, *case), reference64, atol=1e-12)
    _assert_all_close(_path_run("default", torch.float32, *case), reference32, atol=1e-6)


@pytest.mark.parametrize("path", FUSED)
def test_fused_float64_agrees(path):
    case = ("sin", "tensors", False, False, 0.05, True)
    _assert_all_close(_path_run(path, torch.float64, *case), _path_run("single", torch.float64, *case), atol=1e-12)


@pytest.mark.parametrize("path", FUSED)
@pytest.mark.parametrize("perturb", ["sin", "gaussian"])
def test_fused_runs_of_equal_size_tensors_agree(perturb, path):
    """Equal-size tensors share compiled calls in runs of 4, 2, 1 (seven tensors:
    4 + 2 + 1), while other sizes and a non-contiguous tensor go on their own; every
    tensor must still get its own update, as in the single-tensor reference."""

    def run(path):
        generator = torch.Generator().manual_seed(3)
        params = [torch.randn(5, 6, generator=generator) for _ in range(7)]
        params += [torch.randn(9, generator=generator), torch.randn(6, 5, generator=generator).t()]
        params = [p.requires_grad_() for p in params]
        optimizer = SuperpositionalAdam(params, lr=0.02, perturb=perturb, scope="all", seed=4, **PATHS[path])
        for _ in range(3):
            for p in params:
                p.grad = torch.randn(p.shape, generator=generator)
            optimizer.step()
        return [p.detach() for p in params]

    assert not run("single")[-1].is_contiguous()
    _assert_all_close(run(path), run("single"), atol=1e-6)


def test_chunks_split_greedily():
    assert functional._chunks(list(range(7))) == [[0, 1, 2, 3], [4, 5], [6]]
    assert functional._chunks(list(range(9))) == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]
    assert functional._chunks([]) == []


@pytest.mark.parametrize("path", FUSED)
def test_fused_kernel_follows_current_thread_count(path):
    """The compiled kernel is an OpenMP loop split at call time (cpp.dynamic_threads):
    a kernel compiled at one thread count gives the same bits at another (as the C pass)."""
    case = ("sin", "all", False, False, 0.05, True)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _path_run(path, torch.float32, *case)
        torch.set_num_threads(2)
        two = _path_run(path, torch.float32, *case)
    finally:
        torch.set_num_threads(before)
    _assert_all_close(two, one, atol=0)


def test_fused_falls_back_to_foreach_when_compile_fails(monkeypatch):
    def broken(kernel):
        def fail(*args):
            raise RuntimeError("no C++ compiler")

        return fail

    monkeypatch.setattr(functional, "_KERNELS", {})
    monkeypatch.setattr(functional, "_compile", broken)
    case = ("sin", "all", False, False, 0.0, True)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        fused = _path_run("compiled", torch.float32, *case)
    _assert_all_close(fused, _path_run("foreach", torch.float32, *case), atol=0)
    (record,) = functional.compiled_kernels()
    assert record["kind"] == "sin" and "no C++ compiler" in record["error"]


# ------------------------------------------------------ torch.optim contract

BAD_HYPERPARAMETERS = [
    ("lr", dict(lr=-1e-3)),
    ("lr", dict(lr=float("nan"))),
    ("eps", dict(eps=-1e-8)),
    ("index 0", dict(betas=(1.0, 0.999))),
    ("index 0", dict(betas=(-0.1, 0.999))),
    ("index 1", dict(betas=(0.9, 1.0))),
    ("betas", dict(betas=(0.9,))),
    ("weight_decay", dict(weight_decay=-0.01)),
    ("perturb_scale", dict(perturb_scale=-0.5)),
    ("perturb_scale", dict(perturb_scale=float("inf"))),
    ("perturb", dict(perturb="tanh")),
    ("scope", dict(scope="first")),
    ("n_qubits", dict(n_qubits=0)),
    ("n_qubits", dict(n_qubits=2.5)),
    ("eps_inside_sqrt", dict(eps_inside_sqrt="yes")),
    ("perturb_unscaled", dict(perturb_unscaled=1)),
    ("decoupled_weight_decay", dict(decoupled_weight_decay=None)),
    ("seed", dict(seed=-1)),
    ("seed", dict(seed=1.5)),
    ("foreach", dict(foreach=True, fused=True)),
]


@pytest.mark.parametrize("name, kwargs", BAD_HYPERPARAMETERS)
def test_bad_hyperparameter_raises_naming_it(name, kwargs):
    with pytest.raises(ValueError, match=name):
        SuperpositionalAdam(_params(), **kwargs)


@pytest.mark.parametrize("name, override", [("perturb_scale", -1.0), ("lr", -0.1), ("perturb", "x")])
def test_bad_group_override_raises(name, override):
    params = _params()
    with pytest.raises(ValueError, match=name):
        SuperpositionalAdam([{"params": params[:2]}, {"params": params[2:], name: override}])


@pytest.mark.parametrize("path", PATHS)
def test_closure_returns_loss(path):
    model = _mlp()
    x, y = _regression()
    optimizer = SuperpositionalAdam(model.parameters(), lr=3e-2, **PATHS[path])

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    losses = [optimizer.step(closure).item() for _ in range(40)]
    assert losses[-1] < losses[0] / 1.5


@pytest.mark.parametrize("path", PATHS)
def test_lambda_lr_scheduler(path):
    def schedule(epoch):
        return 1.0 if epoch < 3 else 0.1

    torch_model = _mlp()
    adam = torch.optim.Adam(torch_model.parameters(), lr=1e-2)
    expected = _train(torch_model, adam, scheduler=torch.optim.lr_scheduler.LambdaLR(adam, schedule))
    model = _mlp()
    optimizer = SuperpositionalAdam(
        model.parameters(), lr=1e-2, perturb="none", decoupled_weight_decay=False, **PATHS[path]
    )
    got = _train(model, optimizer, scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, schedule))
    _assert_all_close(got, expected, atol=1e-6)

    # lr 0 freezes the parameters, the lr-scaled Q term included.
    model = _mlp()
    optimizer = SuperpositionalAdam(model.parameters(), lr=1e-2, scope="all", **PATHS[path])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: float(epoch < 3))
    before = _train(model, optimizer, steps=3, scheduler=scheduler)
    _assert_all_close(_train(model, optimizer, steps=3), before, atol=0)


@pytest.mark.parametrize("path", PATHS)
def test_param_groups_with_own_perturb_scale(path):
    # Independent tensors (no shared loss), so one group cannot steer the other.
    reference, params = _params(), _params()
    adam = torch.optim.AdamW(reference, lr=1e-2, weight_decay=0.0, **({"fused": True} if path in FUSED else {}))
    optimizer = SuperpositionalAdam(
        [{"params": params[:2], "perturb_scale": 0.0}, {"params": params[2:], "perturb_scale": 0.5}],
        lr=1e-2, scope="all", **PATHS[path],
    )
    for opt, ps in ((adam, reference), (optimizer, params)):
        generator = torch.Generator().manual_seed(3)
        for _ in range(5):
            _set_grads(ps, generator)
            opt.step()
    _assert_all_close([p.detach() for p in params[:2]], [p.detach() for p in reference[:2]], atol=1e-6)
    assert all((a - b).abs().min() > 1e-6 for a, b in zip(params[2:], reference[2:]))
    assert [g["perturb_scale"] for g in optimizer.state_dict()["param_groups"]] == [0.0, 0.5]


def test_lazy_state():
    params = _params()
    optimizer = SuperpositionalAdam(params)
    assert not optimizer.state
    _set_grads(params, torch.Generator().manual_seed(0), skip={NO_GRAD})
    optimizer.step()
    assert params[NO_GRAD] not in optimizer.state
    state = optimizer.state[params[0]]
    assert set(state) == {"step", "exp_avg", "exp_avg_sq"} and state["step"].item() == 1


def test_small_model_default_path_never_compiles(monkeypatch):
    def refuse(kernel):
        raise AssertionError("compiled on a small model")

    monkeypatch.setattr(functional, "_compile", refuse)
    monkeypatch.setattr(functional, "_KERNELS", {})
    model = _mlp()
    optimizer = SuperpositionalAdam(model.parameters(), scope="all")
    _train(model, optimizer, steps=2)
    assert optimizer.compile_seconds() is None


def test_profile_rows():
    from superpos_cli.experiments.profile_optimizer import profile_optimizer

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no fallback from the fused path
        rows = profile_optimizer(repeats=2, warmup=1, shapes=[(64, 32)] * 6)
    assert {(r["name"], r["scope"], r["path"]) for r in rows} >= {
        ("adam", None, "fused"), ("sgd", "tensors", "fused"), ("sgd", "all", "foreach")
    }
    keys = {"part", "name", "scope", "path", "median", "min", "max"}
    keys |= {"ratio_vs_fused_adam", "compile_s", "peak_memory_mb"}
    for row in rows:
        assert keys <= set(row) and row["part"] == "optimizer"
        assert row["min"] <= row["median"] <= row["max"]
    assert next(r for r in rows if r["name"] == "adam" and r["path"] == "fused")["ratio_vs_fused_adam"] == 1.0
    compiled = next(r for r in rows if r["scope"] == "tensors" and r["path"] == "fused")["compile_s"]
    assert compiled is None if NATIVE else compiled > 0  # the C pass compiles nothing


@pytest.mark.parametrize("options, expected", [
    ({}, (False, True, False)),  # small: torch's fused Adam + a foreach pass for Q
    ({"eps_inside_sqrt": True}, (True, False, True)),  # torch's fused Adam has eps outside
    ({"perturb": "none"}, (False, True, True)),  # no Q: nothing to compile, all fused
    ({"fused": True}, (False, True, True)),
    ({"foreach": True}, (True, False, True)),
])
def test_default_path_of_a_small_model(options, expected, monkeypatch):
    """(foreach, fused, compile_kernels) chosen for a 97-coordinate model, and no
    kernel compiled on its steps unless fused=True asks for one (and there is no C pass)."""
    model = _mlp()
    optimizer = SuperpositionalAdam(model.parameters(), lr=1e-2, scope="all", **options)
    group = optimizer.param_groups[0]
    params = list(group["params"])
    assert optimizer._paths(group, params, optimizer.perturb_counts()[0]) == expected
    monkeypatch.setattr(functional, "_KERNELS", {})
    _train(model, optimizer, steps=2)
    assert bool(functional._KERNELS) == ("fused" in options and not NATIVE)


@pytest.mark.parametrize("perturb", sorted(name for name, p in PERTURBATIONS.items() if p.into_fn is not None))
def test_default_path_keeps_one_f_buffer_across_steps(perturb, monkeypatch):
    """The small-model default writes f(theta) into one scratch buffer per dtype and
    device, reused by every later step (a deepcopy starts its own), to float rounding
    the values of the same path drawing fresh tensors."""
    import superpos_cli.optim.optimizer as optimizer_module

    monkeypatch.setattr(functional, "BUFFER_FROM", 0)  # the test's tensors are small
    monkeypatch.setattr(functional, "NATIVE", False)  # the torch passes keep the buffer; the C pass needs none

    def run():
        params = _params(seed=1)
        optimizer = SuperpositionalAdam(params, lr=0.02, perturb=perturb, scope="all", seed=9)
        generator = torch.Generator().manual_seed(2)
        pointers = set()
        for _ in range(3):
            _set_grads(params, generator, skip={NO_GRAD})
            optimizer.step()
            pointers.update(b.data_ptr() for b in optimizer._scratch.values())
        return optimizer, params, pointers

    optimizer, params, pointers = run()
    (buffer,) = optimizer._scratch.values()
    assert len(pointers) == 1 and buffer.numel() == sum(p.numel() for i, p in enumerate(params) if i != NO_GRAD)
    assert not getattr(copy.deepcopy(optimizer), "_scratch", None)
    original = functional.superpositional_adam
    monkeypatch.setattr(optimizer_module, "superpositional_adam",
                        lambda *args, **kwargs: original(*args, **{**kwargs, "scratch": None}))
    _, fresh, pointers = run()  # without the scratch dict
    assert not pointers
    _assert_all_close([p.detach() for p in params], [p.detach() for p in fresh], atol=1e-6)


def test_a_model_moved_after_the_optimizer_is_built_gets_its_path_again():
    """The step's path is kept per tensor identity, dtype and device: parameters
    moved to float64 in place (as ``model.double()`` does) have their path resolved
    again rather than reusing the float32 one."""
    moved = _params(seed=1)
    optimizer = SuperpositionalAdam(moved, lr=0.02, perturb="sin", scope="all", seed=9)
    generator = torch.Generator().manual_seed(2)
    _set_grads(moved, generator, skip={NO_GRAD})
    optimizer.step()
    with torch.no_grad():
        for p in moved:
            p.data = p.data.double()
            if p.grad is not None:
                p.grad = p.grad.double()
    for state in optimizer.state.values():
        for key in ("exp_avg", "exp_avg_sq"):
            state[key] = state[key].double()
    _set_grads(moved, generator, skip={NO_GRAD})
    optimizer.step()
    assert all(p.dtype == torch.float64 for p in moved)
    assert len(optimizer._path_cache) == 2
