"""Every run option of superpos, declared once (see spec/option.py for what derives from it).

Adding an option: one entry here, and the engine field it names in ``dest``. The
CLI flags, TOML keys, arm keys, ablation axes, validation and stored config follow.
Defaults marked "the task's default" live in the task's dataclass (tasks/, models/);
tests/test_spec.py checks the help text against them.
"""

from __future__ import annotations

from pathlib import Path

from superpos_cli.spec import registry as r
from superpos_cli.spec.option import Option


def _problem(check):
    """An Option.extra_check from a checker that raises BadInput (its message, minus
    the option's own name, becomes the problem)."""
    def run(value):
        from superpos_cli.errors import BadInput

        try:
            check(value)
        except BadInput as err:
            return str(err)
        return None

    return run


def _noise(value):
    from superpos_cli.quantum.noise_spec import parse_noise

    parse_noise(value)


def _device(value):
    from superpos_cli.quantum.noise_spec import check_device

    check_device(value)


def _torch_device(value):
    from superpos_cli.tasks.device import check_torch_device

    check_torch_device(value)


def _opts(*options: Option) -> dict[str, Option]:
    return {o.name: o for o in options}


OPTIONS: dict[str, Option] = _opts(
    # ------------------------------------------------------------------ task and data
    Option("task", str, "Task: textcls (the paper's text classification) or gsm8k (its LLM protocol).", "task",
           default="textcls", choices=r.tasks),
    Option("data", Path, "Your own data: JSONL/CSV (textcls) or GSM8K JSONL (gsm8k); parsed before any work.",
           "task", dest="data_path", path_kind="file", paper="§4"),
    Option("limit", int, "Use the first N problems.", "task", low=2, tasks=("gsm8k",), default_text="all"),
    Option("model", Path, "Local Hugging Face causal-LM checkpoint folder (config.json inside).", "task",
           dest="hf_model_path", path_kind="dir", tasks=("gsm8k",), default_text="the built-in model"),
    Option("lora_rank", int, "LoRA rank for --model (0: full fine-tuning).", "task", low=0, tasks=("gsm8k",),
           default=0, axis=True),
    Option("loss_on", str, "Tokens the loss counts: the answer's or all.", "task", choices=r.LOSS_ON,
           tasks=("gsm8k",), default="answer", axis=True),
    Option("skip_bad", bool, "Skip malformed lines of --data and count them.", "task", tasks=("gsm8k",),
           default=False),
    Option("n_train", int, "Training examples of the synthetic task.", "task", low=1, tasks=("textcls",),
           default=600),
    Option("n_val", int, "Validation examples of the synthetic task.", "task", low=1, tasks=("textcls",),
           default=400),
    Option("label_noise", float, "Share of labels flipped at random (synthetic task).", "task", low=0, high=0.5,
           high_open=True, tasks=("textcls",), default=0.03),
    Option("negation_rate", float, "Probability that a cue word is negated (synthetic task).", "task", low=0,
           high=1, tasks=("textcls",), default=0.0),
    Option("max_vocab", int, "Vocabulary cap: the most frequent training words (the rest become <unk>, counted).",
           "task", low=3, tasks=("textcls",), default=20000),
    Option("val_fraction", float, "Share of a --data file held out for validation.", "task", low=0, high=1,
           low_open=True, high_open=True, default_text="0.2 textcls, 0.1 gsm8k"),
    Option("batch_size", int, "Examples per batch.", "task", low=1, default_text="32 textcls, 1 gsm8k"),
    Option("device", str, "Torch device: cpu, cuda or cuda:N.", "task",
           default_text="cpu, or cuda when available (gsm8k)", extra_check=_problem(_torch_device)),
    # ------------------------------------------------------------------ model, attention, circuit
    Option("n_layers", int, "Transformer layers (built-in models).", "model", low=1, default=2),
    Option("d_model", int, "Model width (built-in models).", "model", low=1, default=64),
    Option("n_heads", int, "Attention heads (built-in models).", "model", low=1, default=4),
    Option("d_ff", int, "Feed-forward width (built-in models).", "model", low=1,
           default_text="128 textcls, 256 gsm8k"),
    Option("dropout", float, "Dropout (built-in models).", "model", low=0, high=1, high_open=True,
           default_text="0.1 textcls, 0 gsm8k"),
    Option("attention", str, "quantum (Phi from the circuit added to every score) or classical (the control).",
           "model", dest="kind", choices=r.ATTENTION_KINDS, default_text="quantum textcls, classical gsm8k",
           paper="§3", axis=True, off="classical"),
    Option("qubits", int, "Qubits of the attention circuit.", "model", dest="n_qubits", low=1, high=24, default=4,
           paper="§2", axis=True),
    Option("depth", int, "Layers of the attention circuit.", "model", low=1, high=64, default=2, paper="§2",
           axis=True),
    Option("backend", str, "Circuit backend inside attention (both exact).", "model", choices=r.ATTENTION_BACKENDS,
           default="fourier", paper="§2", axis=True),
    Option("phi_input", str, "Circuit input: the raw score QK^T or the scaled one.", "model",
           choices=r.PHI_INPUTS, default="raw", paper="§3", axis=True),
    Option("circuit_per_head", bool, "Each head gets its own circuit parameters.", "model", dest="per_head",
           default=False, paper="§2", axis=True),
    Option("encoding", str, "Where x enters the circuit: every Ry (reupload) or the first layer's.", "model",
           choices=r.ENCODINGS, default="reupload", paper="§2", axis=True),
    Option("entangler", str, "CNOT chain or ring.", "model", choices=r.ENTANGLERS, default="chain", paper="§2",
           axis=True),
    Option("readout", str, "Readout of the first n amplitudes: sum of real parts, abs, or probabilities.", "model",
           choices=r.READOUTS, default="real", paper="§2", axis=True),
    Option("noise", str, "Noise channels inside the circuit: KIND:P[,KIND:P...], kinds depolarizing, "
           "amplitude-damping, readout (needs --readout prob).", "model", default_text="none", paper="§5.4",
           axis=True, off="none", extra_check=_problem(_noise)),
    Option("noise_device", str, "Calibration snapshot of a real IBM device, e.g. fake_brisbane (extra `devices`; "
           "needs --readout prob; none: no device).", "model", default_text="none", paper="§5.4", axis=True,
           off="none", unset_word="none", extra_check=_problem(_device)),
    Option("shots", int, "Estimate every score from N shots instead of its exact value (needs --readout prob; "
           "exact: the exact readout).", "model", low=1, default_text="exact", paper="§5.4", axis=True,
           off="exact", unset_word="exact"),
    # ------------------------------------------------------------------ optimizer (arm keys)
    Option("lr", float, "Learning rate.", "optimizer", low=0, low_open=True,
           default_text="the task's: 1e-3 textcls, 2e-5 gsm8k", axis=True),
    Option("lambda", float, "Perturbation scale lambda of sgd (the paper's quantum weight).", "optimizer", low=0,
           default_text="0.5 (sgd)", paper="§1", axis=True, off=0.0, aliases=("lam", "perturb_scale")),
    Option("perturb", str, "Perturbation f in lambda*f(theta)*g.", "optimizer", choices=r.perturbations,
           default="sin", paper="§1", axis=True, off="none"),
    Option("scope", str, "Coordinates that get the perturbation.", "optimizer", choices=r.SCOPES,
           default="tensors", paper="§1", axis=True),
    Option("n_qubits", int, "n_qubits of the optimizer's scope (the 'first n_qubits parameters').", "optimizer",
           low=1, default=4, paper="§1", axis=True),
    Option("weight_decay", float, "Weight decay (decoupled unless --l2).", "optimizer", low=0,
           default_text="the task's: 0 textcls, 0.01 gsm8k", paper="§1", axis=True, aliases=("wd",)),
    Option("beta1", float, "First-moment decay.", "optimizer", low=0, high=1, high_open=True, default=0.9, axis=True),
    Option("beta2", float, "Second-moment decay.", "optimizer", low=0, high=1, high_open=True, default=0.999,
           axis=True),
    Option("eps", float, "Denominator epsilon.", "optimizer", low=0, low_open=True, default=1e-8, axis=True),
    Option("eps_inside", bool, "eps inside the square root: sqrt(v + eps).", "optimizer", default=False,
           paper="§1", axis=True),
    Option("perturb_unscaled", bool, "lambda*Q not multiplied by lr.", "optimizer", dest="unscaled",
           default=False, paper="§1", axis=True, aliases=("unscaled",)),
    Option("l2", bool, "Coupled L2 instead of decoupled weight decay.", "optimizer", default=False, paper="§1",
           axis=True),
    Option("fused", bool, "Fused single-pass step (adam, adamw, sgd).", "optimizer",
           default_text="torch's fused Adam where torch has it (CPU, CUDA)"),
    Option("momentum", float, "Momentum of the classic SGD preset `momentum`.", "optimizer", low=0, default=0.9,
           axis=True),
    # ------------------------------------------------------------------ training protocol
    Option("target", float, "Validation accuracy target (epochs to target).", "train", low=0, high=1,
           low_open=True, high_open=True, default=0.9),
    Option("max_epochs", int, "Epochs per run.", "train", low=1, default_text="12 textcls, 1 gsm8k"),
    Option("evals_per_epoch", int, "Validation evaluations per epoch.", "train", low=1, default=10),
    Option("evals_after_target", int, "Evaluations per epoch once the target is reached (the epoch's end "
           "among them); as many as evals-per-epoch keeps the curves dense.", "train", low=1, default=1),
    Option("grad_clip", float, "Clip the gradient norm to this value.", "train", low=0, low_open=True,
           default_text="none textcls, 1.0 gsm8k", axis=True),
    Option("schedule", str, "Learning-rate schedule.", "train", choices=r.SCHEDULES,
           default_text="constant textcls, warmup-linear gsm8k", axis=True),
    Option("warmup_steps", int, "Warmup steps of warmup-linear.", "train", low=0, default_text="0 textcls, 500 gsm8k",
           axis=True),
    Option("warmup_cap", float, "Warmup takes at most this share of all optimizer steps.", "train", low=0, high=1,
           low_open=True, default_text="1 textcls, 0.1 gsm8k"),
    Option("grad_accum", int, "Batches accumulated per optimizer step.", "train", low=1, default=1, axis=True),
    # ------------------------------------------------------------------ seeds
    Option("seeds", int, "Number of paired seeds (seed-offset, seed-offset+1, ...).", "seeds", low=1, default=5),
    Option("seed_offset", int, "First seed.", "seeds", low=0, default=0),
    Option("seed", int, "Seed of one run: data, initialisation, order, dropout.", "seeds", low=0, default=0),
)

# The paper's protocol per task, beneath every explicit value (paper-spec §4):
# text classification lr 1e-3, no weight decay; GSM8K one epoch, lr 2e-5, weight
# decay 0.01, 500 warmup steps (ours: capped at 10% of the steps) then linear
# decay, gradient clipping 1.0.
TASK_PROTOCOL: dict[str, dict[str, object]] = {
    "textcls": {"max_epochs": 12, "lr": 1e-3, "weight_decay": 0.0},
    "gsm8k": {"max_epochs": 1, "evals_per_epoch": 10, "schedule": "warmup-linear", "warmup_steps": 500,
              "warmup_cap": 0.1, "grad_clip": 1.0, "lr": 2e-5, "weight_decay": 0.01},
}

_BY_ALIAS = {alias: o.name for o in OPTIONS.values() for alias in o.aliases}


def option_named(name: str) -> Option | None:
    """The option called ``name`` (its name, alias, or flag spelling), else None."""
    key = name.strip().lower().lstrip("-").replace("-", "_")
    key = _BY_ALIAS.get(key, key)
    return OPTIONS.get(key)


def in_group(*groups: str) -> list[Option]:
    return [o for o in OPTIONS.values() if o.group in groups]
