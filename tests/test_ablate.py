"""`superpos ablate`: grid, control, Holm-corrected statistics, store reuse, CLI input."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from typer.testing import CliRunner

from superpos_cli.cli.app import app
from superpos_cli.engine import stats
from superpos_cli.engine.loop import EpochRecord, EvalPoint, RunResult
from superpos_cli.errors import BadInput
from superpos_cli.experiments.ablate import AblateSpec, ablate_document, run_ablate
from superpos_cli.experiments.store import ResultsStore
from superpos_cli.spec.grid import Grid, parse_axis
from superpos_cli.spec.run import check

TINY = {"n_train": 64, "n_val": 64, "attention": "classical"}
TINY_TRAIN = {"max_epochs": 1, "evals_per_epoch": 2}
TINY_FLAGS = ["--task", "textcls", "--seeds", "2", "--max-epochs", "1", "--evals-per-epoch", "2"]


@pytest.fixture(autouse=True)
def _private_store(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("SUPERPOS_STORE", raising=False)


def _spec(axes: dict, control: str | None = None, seeds=(0, 1), base="sgd", values=None,
          train: dict = TINY_TRAIN) -> AblateSpec:
    """An ablation from option names and values, as the CLI and suites give them."""
    run = check("textcls", {**train, **(values or {})})
    typed = dict(parse_axis(name, list(v)) for name, v in axes.items())
    return AblateSpec(grid=Grid(base, {o.name: v for o, v in typed.items()}, control, run), seeds=list(seeds))


# --------------------------------------------------------------------------- grid and control


def test_two_by_two_grid_separates_optimizer_and_attention():
    spec = _spec({"perturb": ["sin", "none"], "attention": ["quantum", "classical"]})
    assert [c.label for c in spec.cells] == ["perturb=sin,attention=quantum", "perturb=sin,attention=classical",
                                             "perturb=none,attention=quantum", "perturb=none,attention=classical"]
    cell = spec.cells[2]
    assert cell.arm.name == "sgd:perturb=none" and cell.arm.options["perturb"] == "none"
    assert cell.run.task_options() == {"kind": "quantum"}  # model axes go to the task, optimizer axes to the arm
    assert spec.control_cell.label == "perturb=none,attention=classical"  # both effects off
    trials = spec.trials()
    assert len(trials) == 4 * 2
    assert [t.seed for t in trials] == [0, 0, 0, 0, 1, 1, 1, 1]  # cells interleaved within a seed


def test_cell_value_replaces_base_option_and_one_value_axes_stay_out_of_labels():
    spec = _spec({"lambda": [0, 0.3], "scope": ["all"]}, base="sgd:lambda=0.9,n-qubits=2")
    assert [c.label for c in spec.cells] == ["lambda=0", "lambda=0.3"]
    assert spec.cells[1].arm.name == "sgd:lambda=0.3,n_qubits=2,scope=all"
    assert spec.cells[1].arm.options["lambda"] == 0.3 and spec.cells[1].arm.options["scope"] == "all"


@pytest.mark.parametrize("axes, control, expected", [
    ({"lambda": [0.5, 0.1, 0]}, None, "lambda=0"),
    ({"perturb": ["sin", "cos", "none"]}, None, "perturb=none"),
    ({"qubits": [2, 4, 8]}, None, "qubits=2"),  # no "off" value: the first cell
    ({"lambda": [0.1, 0.5]}, None, "lambda=0.1"),
    ({"perturb": ["sin", "none"], "attention": ["quantum", "classical"]}, "perturb=none,attention=quantum",
     "perturb=none,attention=quantum"),
    ({"lambda": [0, 0.5], "attention": ["quantum", "classical"]}, "lambda=0.5", "lambda=0.5,attention=classical"),
])
def test_control_selection(axes, control, expected):
    assert _spec(axes, control).control_cell.label == expected


@pytest.mark.parametrize("axes, control, message", [
    ({"lambda": [0, 0.5]}, "lambda=0.3", "names no cell"),
    ({"lambda": [0, 0.5]}, "perturb=none", "not swept"),
    ({"lambda": [0, 0.5]}, "color=red", "unknown ablation axis"),
    ({"lambda": [0, 0.5]}, "lambda", "axis=value"),
])
def test_bad_control(axes, control, message):
    with pytest.raises(BadInput, match=message):
        _spec(axes, control)


@pytest.mark.parametrize("name, raw, message", [
    ("lambda", "0,,0.5", "empty value"),
    ("lambda", "0,abc", "lambda must be a number >= 0, got 'abc'"),
    ("lambda", "-1", ">= 0"),
    ("perturb", "sin,tan", "perturb must be one of sin, cos"),
    ("scope", "tensors,everything", "scope must be one of tensors"),
    ("qubits", "2,2.5", "qubits must be an integer in [1, 24], got '2.5'"),
    ("attention", "quantum,none", "attention must be one of quantum, classical"),
    ("grad_accum", "1,0", "grad_accum must be an integer >= 1"),
    ("depth", "1,1", "twice"),
])
def test_bad_axis_values(name, raw, message):
    with pytest.raises(BadInput) as err:
        parse_axis(name, raw)
    assert message in str(err.value)


# --------------------------------------------------------------------------- statistics


def _run(e2t: float | None, seed: int, epoch_s: float = 1.0) -> dict:
    """A RunResult record whose only interesting number is epochs-to-target."""
    evals = [EvalPoint(1.0, 10, 0.5, {"val_accuracy": 0.95 if e2t else 0.6})]
    epochs = [EpochRecord(1, 0.5, epoch_s, {"val_accuracy": 0.95 if e2t else 0.6})]
    result = RunResult(evals, epochs, "val_accuracy", 0.9, e2t, 10)
    return {"result": result.to_dict(), "key": None, "wall_s": 1.0, "seed": seed}


def _document(e2t_by_cell: list[list[float | None]]):
    lambdas = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7][: len(e2t_by_cell)]
    seeds = list(range(len(e2t_by_cell[0])))
    spec = _spec({"lambda": lambdas}, seeds=seeds, train={"max_epochs": 15})
    trials = spec.trials()
    index = {cell.label: i for i, cell in enumerate(spec.cells)}
    records = [_run(e2t_by_cell[index[t.cell]][t.seed], t.seed) for t in trials]
    return ablate_document(spec, trials, records)


def test_holm_applied_across_cells_and_best_needs_it():
    control = [8.0, 8.5, 9.0, 9.5, 10.0]
    fast = [4.0, 4.2, 4.4, 4.6, 4.8]
    doc = _document([control, fast, [8.2, 8.8, 9.1, 9.4, None]])
    cells = doc["cells"]
    assert cells[0]["control"] and cells[0]["p_value"] is None and cells[0]["p_holm"] is None
    raw = [c["p_value"] for c in cells]
    assert [c["p_holm"] for c in cells] == stats.holm(raw)
    assert cells[1]["p_holm"] == pytest.approx(min(1.0, 2 * cells[1]["p_value"]))
    assert cells[1]["verdict"] == "faster" and cells[1]["p_holm"] <= 0.05
    assert doc["best"] == "lambda=0.1" and cells[1]["best"] and not cells[2]["best"]
    assert cells[2]["epochs_to_target"]["success_rate"] == pytest.approx(0.8)  # the miss is counted, not dropped
    assert doc["trials"][1]["result"]["epochs_to_target"] == fast[0]  # raw per-seed values are in the document

    # The same winner among seven compared cells: its interval still separates, but
    # after Holm (7 x 0.0079 > 0.05) it is no longer significant, so no "best".
    many = _document([control, fast] + [list(control) for _ in range(6)])
    assert many["cells"][1]["verdict"] == "faster"
    assert many["cells"][1]["p_holm"] > 0.05
    assert many["best"] is None


# --------------------------------------------------------------------------- running


def test_run_then_rerun_executes_nothing(tmp_path):
    spec = _spec({"lambda": [0, 0.5]}, values=TINY)
    kinds: Counter = Counter()
    with ResultsStore(tmp_path / "r.db") as store:
        first = run_ablate(spec, store=store)
        second = run_ablate(spec, store=store, on_event=lambda kind, trial, payload: kinds.update([kind]))
    assert first["executed"] == 4 and first["reused"] == 0
    assert kinds["done"] == 0 and kinds["start"] == 0 and kinds["cached"] == 4
    assert second["executed"] == 0
    for a, b in zip(first["cells"], second["cells"]):
        assert a["final_accuracy"] == b["final_accuracy"] and a["epochs_to_target"] == b["epochs_to_target"]


def test_cli_json_plot_and_store(tmp_path):
    db, out, plot = tmp_path / "r.db", tmp_path / "a.json", tmp_path / "p.png"
    args = ["ablate", *TINY_FLAGS, "--attention", "classical", "--lambda", "0,0.5", "--store", str(db),
            "--json", "--out", str(out), "--plot", str(plot)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert [c["label"] for c in doc["cells"]] == ["lambda=0", "lambda=0.5"]
    assert doc["control"] == "lambda=0" and len(doc["trials"]) == 4
    assert plot.exists() and (tmp_path / "p-curves.png").exists() and (tmp_path / "p-accuracy.png").exists()
    table = CliRunner().invoke(app, [a for a in args if a not in ("--json",)])  # answered from the store
    assert table.exit_code == 0 and "lambda=0.5" in table.output and "control" in table.output


@pytest.mark.parametrize("args, message", [
    (["--lambda", "0,,1"], "empty value"),
    (["--lambda", "0,big"], "lambda must be a number >= 0, got 'big'"),
    (["--perturb", "sin,tan"], "perturb"),
    (["--scope", "somewhere"], "scope"),
    (["--lambda", "0,1", "--control", "lambda=2"], "names no cell"),
    (["--lambda", "0,1", "--seeds", "0"], "seeds must be an integer >= 1, got '0'"),
    (["--lambda", "0,1", "--jobs", "0"], "jobs must be >= 1"),
    ([], "at least one axis"),
    (["--suite", "no-such-suite"], "unknown suite"),
])
def test_cli_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    result = CliRunner().invoke(app, ["ablate", "--store", str(tmp_path / "r.db"), *args])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]


def test_cli_interrupt_exits_130_saying_what_was_saved(monkeypatch, tmp_path):
    from superpos_cli.experiments.interrupt import Interrupted

    db = tmp_path / "r.db"

    def interrupted(spec, store, fresh, on_event, jobs, **kwargs):
        raise Interrupted(1, len(spec.trials()), str(db))  # what execute raises after one stored trial

    monkeypatch.setattr("superpos_cli.experiments.ablate.run_ablate", interrupted)
    result = CliRunner().invoke(app, ["ablate", "--lambda", "0,1", "--store", str(db)])
    assert result.exit_code == 130
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"interrupted: 1 of 10 trials completed, stored in {db}; "
                     "rerun the same command to run the other 9"]


def test_cli_runs_an_ablate_suite_with_flags_overriding(tmp_path):
    suites = tmp_path / "suites.toml"
    suites.write_text('[suites.tiny]\nkind = "ablate"\ntask = "textcls"\nseeds = 3\naxes = { lambda = [0, 0.5] }\n'
                      'control = "lambda=0.5"\nmax_epochs = 1\nevals_per_epoch = 2\n'
                      'attention = "classical"\nn_train = 64\nn_val = 64\n'
                      '[suites.other]\nkind = "bench"\nmetrics = ["attention"]\n')
    base = ["ablate", "--suites-file", str(suites), "--store", str(tmp_path / "r.db")]
    result = CliRunner().invoke(app, [*base, "--suite", "tiny", "--seeds", "1", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["seeds"] == [0] and doc["control"] == "lambda=0.5" and doc["task_options"]["kind"] == "classical"
    wrong = CliRunner().invoke(app, [*base, "--suite", "other"])
    assert wrong.exit_code == 2 and "bench suite" in wrong.output


def test_cells_that_set_noise_and_a_device_are_skipped_and_the_words_mean_unset():
    from superpos_cli.spec.grid import Grid, parse_axis
    from superpos_cli.spec.run import check

    axes = dict(parse_axis(n, v) for n, v in [("noise", "none,depolarizing:0.01"),
                                                ("noise_device", ["none", "fake_manila"]), ("shots", "exact,1024")])
    grid = Grid("sgd", {o.name: vals for o, vals in axes.items()}, None, check("textcls", {"readout": "prob"}))
    assert len(grid.cells) == 6 and len(grid.skipped) == 2
    assert all(c["noise"] != "none" and c["noise_device"] == "fake_manila" for c in grid.skipped)
    assert grid.control_cell.axes == {"noise": "none", "noise_device": "none", "shots": "exact"}
    from superpos_cli.tasks import check_task_options

    check_task_options("textcls", grid.control_cell.run.task_options())  # "none" / "exact" are the unset values
    with pytest.raises(BadInput, match="names a cell the grid skips"):
        Grid("sgd", {o.name: vals for o, vals in axes.items()}, "noise=depolarizing:0.01,noise_device=fake_manila",
             check("textcls", {"readout": "prob"}))
    # The table's line under it names them, the exclusive pair and what varies only.
    from superpos_cli.cli.render import skipped_cells_line

    line = skipped_cells_line({"skipped_cells": [{"readout": "prob", **c} for c in grid.skipped]})
    assert line == ("2 cell(s) of the grid not run (--noise and --noise-device exclude each other): "
                    "noise=depolarizing:0.01,noise_device=fake_manila,shots=exact; "
                    "noise=depolarizing:0.01,noise_device=fake_manila,shots=1024")
    assert skipped_cells_line({"skipped_cells": []}) is None
    with pytest.raises(BadInput, match="exclude each other"):
        check("textcls", {"readout": "prob", "noise": "depolarizing:0.01", "noise_device": "fake_manila"})
