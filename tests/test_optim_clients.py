"""SuperpositionalAdam under the real clients of torch.optim (issue 11, deliverable 6).

It must work wherever ``torch.optim.Adam`` does: ``torch.compile(optimizer.step)``,
Hugging Face ``Trainer`` with checkpoint / resume, ``OneCycleLR(cycle_momentum=True)``,
``torch.amp.GradScaler``, ``torch.save`` / ``torch.load(weights_only=True)`` of its
state, step hooks and ``load_state_dict`` validation. Each test compares against an
independent reference: torch's own Adam / AdamW (with the perturbation off, where
the two are the same optimizer) or the eager step of the same configuration.
"""

from __future__ import annotations

import pytest
import torch

from superpos_cli.optim import functional

from superpos_cli.optim import SuperpositionalAdam


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(16, 4, generator=generator), torch.randn(16, 2, generator=generator)


def _loss(model: torch.nn.Module) -> torch.Tensor:
    x, y = _batch()
    return torch.nn.functional.mse_loss(model(x), y)


def _train(model, optimizer, steps, step=None, scheduler=None):
    """``steps`` plain training steps; ``step`` replaces ``optimizer.step`` (a compiled one)."""
    step = step or optimizer.step
    for _ in range(steps):
        optimizer.zero_grad()
        _loss(model).backward()
        step()
        if scheduler is not None:
            scheduler.step()
    return _weights(model)


def _weights(model):
    return [p.detach().clone() for p in model.parameters()]


def _assert_close(a, b, atol=1e-6):
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, atol=atol, rtol=0)


# --------------------------------------------------------------- torch.compile

# Configurations a compiled step must reproduce: the default (foreach, sin on the
# first 4 tensors), partial scopes (coords on the foreach path; global, like f =
# none, resolves to the fused path, which a compiled step runs eagerly, as it does
# torch's own fused Adam), another f, random f (drawn outside the graph) and the
# single-tensor reference loop.
COMPILE_CASES = {
    "default": {},
    "scope-coords": dict(scope="coords", n_qubits=3),
    "scope-global": dict(scope="global", n_qubits=10),
    "scope-all-cos": dict(scope="all", perturb="cos"),
    "gaussian": dict(perturb="gaussian", seed=5),
    "uniform-single": dict(perturb="uniform", foreach=False, seed=5),
    "none-l2": dict(perturb="none", weight_decay=0.1, decoupled_weight_decay=False),
}


@pytest.fixture
def fresh_dynamo():
    """Dynamo's caches are per code object, and every test compiles the same
    ``step``: reset them, so no test runs into another's recompile limit (past it
    dynamo quietly runs eagerly, and a compiled-vs-eager test would prove nothing)."""
    torch.compiler.reset()
    yield
    torch.compiler.reset()
    # The fused path's kernels were compiled (warmed per list length) before the reset;
    # drop them too, or the next test recompiles them at each new size and hits the limit.
    functional._KERNELS.clear()


@pytest.mark.parametrize("case", COMPILE_CASES)
def test_compiled_step_equals_eager_step(case, fresh_dynamo):
    """Five compiled steps equal five eager ones, and only the first compiles:
    the rest run under ``fail_on_recompile`` (the step count t as a Python float
    would be a new constant, so a recompile, at every step)."""
    kwargs = dict(lr=0.05, **COMPILE_CASES[case])
    eager_model, compiled_model = _model(), _model()
    eager = SuperpositionalAdam(eager_model.parameters(), **kwargs)
    compiled = SuperpositionalAdam(compiled_model.parameters(), **kwargs)
    expected = _train(eager_model, eager, steps=5)
    step = torch.compile(compiled.step)
    _train(compiled_model, compiled, steps=1, step=step)
    with torch.compiler.set_stance("fail_on_recompile"):
        got = _train(compiled_model, compiled, steps=4, step=step)
    _assert_close(got, expected)
    assert float(compiled.state[compiled_model[0].weight]["step"]) == 5


class _CountingBackend:
    """A torch.compile backend that runs each graph as traced and counts the graphs."""

    def __init__(self) -> None:
        self.graphs = 0

    def __call__(self, graph_module, example_inputs):
        self.graphs += 1
        return graph_module.forward


@pytest.mark.parametrize("case", ["default", "gaussian", "uniform-single"])
def test_compiled_graphs_do_not_grow_with_the_parameter_count(case, fresh_dynamo):
    """Every coordinate in scope, 4 or 12 parameter tensors: the same number of
    graphs. (A random draw traced inside the per-tensor loop compiled once per
    parameter, up to dynamo's recompile limit, 8, and then ran eagerly.)"""

    def graphs(layers):
        torch.compiler.reset()
        torch.manual_seed(0)
        model = torch.nn.Sequential(*[torch.nn.Linear(4, 4) for _ in range(layers)])
        optimizer = SuperpositionalAdam(model.parameters(), lr=0.05, **dict(COMPILE_CASES[case], scope="all"))
        backend = _CountingBackend()
        step = torch.compile(optimizer.step, backend=backend)
        for _ in range(3):
            optimizer.zero_grad()
            model(torch.ones(2, 4)).square().mean().backward()
            step()
        return backend.graphs

    few = graphs(2)
    assert few >= 1 and graphs(6) == few


@pytest.mark.parametrize("path", [{}, {"foreach": False}])
def test_default_perturbation_compiles_to_one_graph(path, fresh_dynamo):
    """sin on the foreach / single-tensor path has no graph break at all."""
    eager_model, compiled_model = _model(), _model()
    eager = SuperpositionalAdam(eager_model.parameters(), lr=0.05, **path)
    compiled = SuperpositionalAdam(compiled_model.parameters(), lr=0.05, **path)
    step = torch.compile(compiled.step, fullgraph=True)
    _assert_close(_train(compiled_model, compiled, steps=3, step=step), _train(eager_model, eager, steps=3))


# ------------------------------------------------------- Hugging Face Trainer


def test_hf_trainer_resume_from_checkpoint_equals_uninterrupted_run(tmp_path):
    """Trainer(optimizers=(opt, scheduler)) on a tiny random Llama: stopping at a
    mid-epoch checkpoint and resuming gives the uninterrupted run's weights. The
    Trainer saves the optimizer with torch.save and loads it with weights_only=True;
    gaussian f, so the perturbation generator's state has to travel too."""
    transformers = pytest.importorskip("transformers")

    class Rows(torch.utils.data.Dataset):
        def __init__(self) -> None:
            self.ids = torch.randint(0, 32, (8, 6), generator=torch.Generator().manual_seed(0))

        def __len__(self) -> int:
            return len(self.ids)

        def __getitem__(self, i):
            return {"input_ids": self.ids[i], "labels": self.ids[i]}

    def run(output_dir, max_steps, resume=None):
        torch.manual_seed(0)
        config = transformers.LlamaConfig(
            vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
            num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=16,
        )
        model = transformers.LlamaForCausalLM(config)
        optimizer = SuperpositionalAdam(model.parameters(), lr=0.01, perturb="gaussian", seed=1)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 / (1 + s))
        args = transformers.TrainingArguments(
            output_dir=str(output_dir), max_steps=max_steps, per_device_train_batch_size=4,
            save_strategy="steps", save_steps=3, logging_strategy="no", seed=0,
            report_to=[], use_cpu=True, disable_tqdm=True, dataloader_num_workers=0,
        )
        trainer = transformers.Trainer(model=model, args=args, train_dataset=Rows(), optimizers=(optimizer, scheduler))
        trainer.train(resume_from_checkpoint=resume)
        return _weights(model), optimizer

    uninterrupted, _ = run(tmp_path / "full", 6)
    run(tmp_path / "part", 3)  # 2 steps an epoch: checkpoint-3 is mid-epoch
    checkpoint = tmp_path / "part" / "checkpoint-3"
    assert (checkpoint / "optimizer.pt").is_file()
    resumed, optimizer = run(tmp_path / "part", 6, resume=str(checkpoint))
    _assert_close(resumed, uninterrupted)
    assert all(float(state["step"]) == 6 for state in optimizer.state.values())
    assert uninterrupted[0].ne(run(tmp_path / "short", 3)[0][0]).any()  # the last 3 steps did move it


# ------------------------------------------------------------ LR schedulers


def test_one_cycle_lr_with_momentum_matches_torch_adamw():
    """OneCycleLR(cycle_momentum=True) cycles beta1 through ``betas``; with the
    perturbation off the run is AdamW's under the same schedule."""

    def run(cls, **kwargs):
        model = _model()
        optimizer = cls(model.parameters(), lr=0.01, weight_decay=0.01, **kwargs)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=0.05, total_steps=12, cycle_momentum=True, base_momentum=0.8, max_momentum=0.95
        )
        betas = []
        for _ in range(12):
            _train(model, optimizer, steps=1)
            scheduler.step()
            betas.append(optimizer.param_groups[0]["betas"])
        return _weights(model), betas

    ours, our_betas = run(SuperpositionalAdam, perturb_scale=0.0)
    reference, torch_betas = run(torch.optim.AdamW)
    _assert_close(ours, reference)
    assert our_betas == torch_betas and len({b[0] for b in our_betas}) > 5  # beta1 really cycled
    assert all(b[1] == 0.999 for b in our_betas)
    perturbed, _ = run(SuperpositionalAdam)  # and with the perturbation on it runs, differently
    assert all(torch.isfinite(p).all() for p in perturbed) and perturbed[0].ne(reference[0]).any()


# ----------------------------------------------------------------- GradScaler


def _scaled_step(model, optimizer, scaler, poison=False):
    optimizer.zero_grad()
    scaler.scale(_loss(model)).backward()
    if poison:
        model[0].weight.grad[0, 0] = float("inf")
    scaler.step(optimizer)
    scaler.update()


def test_grad_scaler_skips_the_step_on_an_inf_gradient():
    model = _model()
    optimizer = SuperpositionalAdam(model.parameters(), lr=0.05)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    _scaled_step(model, optimizer, scaler)
    before = _weights(model)
    state_before = {name: t.clone() for name, t in optimizer.state[model[0].weight].items()}
    _scaled_step(model, optimizer, scaler, poison=True)
    for x, y in zip(_weights(model), before, strict=True):
        assert torch.equal(x, y)
    for name, t in optimizer.state[model[0].weight].items():
        assert torch.equal(t, state_before[name]), name
    assert scaler.get_scale() == 2.0**9  # the scaler backed off


def test_grad_scaler_finite_steps_match_torch_adamw():
    def run(cls, **kwargs):
        model = _model()
        optimizer = cls(model.parameters(), lr=0.05, **kwargs)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12, growth_interval=2)
        for _ in range(6):
            _scaled_step(model, optimizer, scaler)
        return _weights(model), scaler.get_scale()

    ours, our_scale = run(SuperpositionalAdam, perturb_scale=0.0)
    reference, torch_scale = run(torch.optim.AdamW, weight_decay=0.0)
    _assert_close(ours, reference)
    assert our_scale == torch_scale == 2.0**15  # grew 3 times: no step was skipped


# --------------------------------------------------------- state_dict on disk


def test_state_dict_round_trips_through_weights_only_load(tmp_path):
    """torch.save / torch.load(weights_only=True) keeps everything, the noise
    generator included: a fresh optimizer (another seed) that loads the file
    continues exactly as the original does."""
    model = _model()
    optimizer = SuperpositionalAdam(model.parameters(), lr=0.05, perturb="gaussian", seed=7)
    _train(model, optimizer, steps=3)
    path = tmp_path / "optimizer.pt"
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, path)

    loaded = torch.load(path, weights_only=True)
    twin = _model(seed=1)
    twin.load_state_dict(loaded["model"])
    twin_optimizer = SuperpositionalAdam(twin.parameters(), lr=0.05, perturb="gaussian", seed=8)
    twin_optimizer.load_state_dict(loaded["optimizer"])

    expected = _train(model, optimizer, steps=3)
    got = _train(twin, twin_optimizer, steps=3)
    for x, y in zip(got, expected, strict=True):
        assert torch.equal(x, y)
    # ...which holds because the generator came along: without it, seed 8's noise.
    other = _model(seed=1)
    other.load_state_dict(loaded["model"])
    other_optimizer = SuperpositionalAdam(other.parameters(), lr=0.05, perturb="gaussian", seed=8)
    other_optimizer.load_state_dict({k: v for k, v in loaded["optimizer"].items() if k != "perturb_generator_state"})
    assert _train(other, other_optimizer, steps=3)[0].ne(expected[0]).any()


# ------------------------------------------------------------------- hooks


def test_step_pre_and_post_hooks_are_called():
    model = _model()
    optimizer = SuperpositionalAdam(model.parameters(), lr=0.05)
    calls = []

    def pre(opt, args, kwargs):
        calls.append(("pre", opt, model[0].weight.detach().clone()))

    def post(opt, args, kwargs):
        calls.append(("post", opt, model[0].weight.detach().clone()))

    pre_handle = optimizer.register_step_pre_hook(pre)
    post_handle = optimizer.register_step_post_hook(post)
    before = model[0].weight.detach().clone()
    _train(model, optimizer, steps=1)
    assert [(name, opt) for name, opt, _ in calls] == [("pre", optimizer), ("post", optimizer)]
    assert torch.equal(calls[0][2], before) and not torch.equal(calls[1][2], before)
    pre_handle.remove()
    post_handle.remove()
    _train(model, optimizer, steps=1)
    assert len(calls) == 2


# ------------------------------------------------------ load_state_dict checks


def _two_groups(model):
    params = list(model.parameters())
    return [{"params": params[:2]}, {"params": params[2:], "lr": 0.01}]


MISMATCHES = {
    # name: (how the saved optimizer's params are given, how the loading one's are)
    "fewer-params": (lambda m: m.parameters(), lambda m: list(m.parameters())[:3]),
    "more-groups": (_two_groups, lambda m: m.parameters()),
    "fewer-groups": (lambda m: m.parameters(), _two_groups),
    "group-sizes": (_two_groups, lambda m: [{"params": [m[0].weight]}, {"params": list(m.parameters())[1:]}]),
}


@pytest.mark.parametrize("case", MISMATCHES)
def test_mismatched_load_state_dict_raises_value_error_like_torch(case):
    saved_params, loading_params = MISMATCHES[case]
    for cls in (torch.optim.Adam, SuperpositionalAdam):  # torch's Adam is the reference
        model = _model()
        source = cls(saved_params(model), lr=0.05)
        _train(model, source, steps=1)
        target = cls(loading_params(model), lr=0.05)
        before = target.state_dict()
        with pytest.raises(ValueError):
            target.load_state_dict(source.state_dict())
        after = target.state_dict()  # nothing half-loaded (the generator neither)
        assert after["param_groups"] == before["param_groups"] and not after["state"]
        if cls is SuperpositionalAdam:
            assert torch.equal(after["perturb_generator_state"], before["perturb_generator_state"])
