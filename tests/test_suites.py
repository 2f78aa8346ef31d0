"""benchmarks.toml: every shipped suite loads; each kind of mistake names suite, key and expectation."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from superpos_cli.errors import BadInput
from superpos_cli.experiments.plan import train_config
from superpos_cli.spec.arms import parse_arm
from superpos_cli.spec.grid import Grid
from superpos_cli.spec.run import RunSettings
from superpos_cli.experiments.suites import (AblateSuite, BenchCompare, BenchSuite, CompareSuite, default_path,
                                             get_suite, load_suites)

SHIPPED = Path(__file__).resolve().parents[1] / "benchmarks.toml"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "benchmarks.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_every_shipped_suite_loads():
    suites = load_suites(SHIPPED)
    assert {"paper-textcls", "paper-gsm8k", "ablate-lambda", "ablate-perturb", "ablate-factorial", "ci"} <= set(suites)
    for name, suite in suites.items():
        assert suite.name == name
        if isinstance(suite, CompareSuite):
            run = suite.run
            assert all(parse_arm(a, run.optimizer_overrides(), run.optimizer_protocol()) for a in suite.arms)
        elif isinstance(suite, AblateSuite):
            assert Grid(suite.base, suite.axes, suite.control, suite.run).cells

    paper = suites["paper-textcls"]
    assert paper.arms == ("adam", "sgd:lambda=0.1", "sgd:lambda=0.5")
    assert paper.run.task == "textcls"
    assert paper.run.task_options() == {"kind": "quantum"}  # option "attention" -> its dest, as the flag does
    train = train_config(paper.run)
    assert train.max_epochs == 12 and train.target == 0.9 and paper.run.seeds() == [0, 1, 2, 3, 4]

    gsm8k = suites["paper-gsm8k"]
    assert gsm8k.task == "gsm8k" and gsm8k.run.task_options() == {"limit": 500} and gsm8k.run.seeds() == [0, 1, 2]
    # gsm8k's protocol (paper-spec §4) lies beneath: one epoch, warmup then linear decay, clip 1.0
    assert gsm8k.run.train_values()["max_epochs"] == 1 and gsm8k.run.train_values()["grad_clip"] == 1.0

    factorial = suites["ablate-factorial"]
    grid = Grid(factorial.base, factorial.axes, factorial.control, factorial.run)
    assert len(grid.cells) == 4 and grid.control_cell.label == "perturb=none,attention=classical"
    assert suites["ablate-lambda"].axes == {"lambda": (0.0, 0.1, 0.3, 0.5, 0.7)}

    ci = suites["ci"]
    assert isinstance(ci, BenchSuite) and ci.repeats == 5 and ci.fail_on == 0.10
    assert ci.threshold("optimizer_step") == 0.15 and ci.threshold("attention") == 0.15 and ci.threshold("convergence") == 0.10
    assert ci.compare == BenchCompare(arms=("adam", "sgd"), run=RunSettings(
        task="textcls", values={"seeds": 2, "max_epochs": 4, "target": 0.8}))


def test_get_suite_lists_known_names():
    assert get_suite("ci", SHIPPED).kind == "bench"
    with pytest.raises(BadInput, match="unknown suite 'nope'; known suites: paper-textcls"):
        get_suite("nope", SHIPPED)


def test_default_path_prefers_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert default_path() == SHIPPED
    _write(tmp_path, '[suites.x]\nkind = "bench"\nmetrics = ["attention"]\n')
    assert default_path() == Path("benchmarks.toml")
    assert list(load_suites()) == ["x"]


@pytest.mark.parametrize("body, message", [
    # unknown key
    ('kind = "compare"\ntask = "textcls"\narms = ["adam"]\ncolour = 3',
     "suite 's': unknown key 'colour'; allowed: kind, description, arms or a run option (task, data,"),
    ('kind = "ablate"\ntask = "textcls"\naxes = { lamda = [0, 0.5] }', "unknown ablation axis 'lamda'"),
    # task_options tables are gone: run options sit at the top level
    ('kind = "compare"\ntask = "textcls"\narms = ["adam"]\ntask_options = { attention = "quantum" }',
     "unknown key 'task_options'"),
    ('kind = "compare"\ntask = "textcls"\narms = ["adam"]\nmax-epochs = 3', "unknown key 'max-epochs'"),
    ('kind = "compare"\ntask = "textcls"\narms = ["adam"]\nwd = 0.1', "unknown key 'wd'"),  # aliases: arms only
    ('kind = "bench"\nmetrics = ["attention"]\ncompare = { task = "textcls", arms = ["adam"], epochs = 2 }',
     "suite 's': compare: unknown key 'epochs'"),
    ('kind = "bench"\nmetrics = ["attention"]\nseeds = 2', "unknown key 'seeds'; allowed: kind, description, repeats"),
    # wrong type
    ('kind = "compare"\ntask = "textcls"\narms = "adam"', "key 'arms' must be a list of strings, got a string 'adam'"),
    ('kind = "compare"\ntask = "textcls"\narms = ["adam"]\nseeds = "5"',
     "seeds must be an integer >= 1, got a string '5'"),
    ('kind = "compare"\ntask = "textcls"\narms = ["adam"]\nseeds = 2.5', "seeds must be an integer >= 1, got a number 2.5"),
    ('kind = "compare"\ntask = "textcls"\narms = ["adam"]\nattention = 1',
     "attention must be one of quantum, classical, got an integer 1"),
    ('kind = "compare"\ntask = "textcls"\narms = ["adam"]\nfused = "yes"', "fused must be true or false, got a string"),
    ('kind = "bench"\nmetrics = ["attention"]\nfail_on = true', "key 'fail_on' must be a number, got a boolean"),
    ('kind = "ablate"\ntask = "textcls"\naxes = { lambda = 0.5 }', "axes.lambda must be a list of values"),
    ('kind = "ablate"\ntask = "textcls"\naxes = { lambda = [0, "big"] }',
     "axes.lambda: lambda must be a number >= 0, got a string 'big'"),
    ('kind = "ablate"\ntask = "textcls"\naxes = { lambda = ["0.5"] }', "lambda must be a number >= 0, got a string '0.5'"),
    # missing field
    ('kind = "compare"\ntask = "textcls"', "suite 's': missing key 'arms' (a list of strings)"),
    ('kind = "ablate"\ntask = "textcls"', "missing key 'axes'"),
    ('kind = "bench"', "missing key 'metrics'"),
    ('task = "textcls"', "key 'kind' must be one of compare, ablate, bench, got missing"),
    # unknown kind
    ('kind = "sweep"\ntask = "textcls"', "key 'kind' must be one of compare, ablate, bench, got 'sweep'"),
    # bad values, combinations
    ('kind = "compare"\ntask = "mnist"\narms = ["adam"]', "task must be one of textcls, gsm8k, got 'mnist'"),
    ('kind = "compare"\ntask = "textcls"\narms = ["adam", "sgd:lamda=1"]', "unknown optimizer option 'lamda'"),
    ('kind = "compare"\ntask = "textcls"\narms = ["adamx"]', "unknown optimizer 'adamx'"),
    ('kind = "compare"\ntask = "textcls"\narms = ["adam"]\ntarget = 1.5', "target must be a number in (0, 1), got a number 1.5"),
    ('kind = "compare"\ntask = "textcls"\narms = ["adam"]\nlimit = 3', "--limit applies to task gsm8k, not textcls"),
    ('kind = "compare"\ntask = "textcls"\narms = ["adam"]\nd_model = 30', "d_model 30 is not divisible by n_heads 4"),
    ('kind = "ablate"\ntask = "textcls"\naxes = { lambda = [0, 0.5] }\ncontrol = "lambda=0.3"', "names no cell"),
    ('kind = "ablate"\ntask = "textcls"\naxes = { lambda = [0, 0, 0.5] }', "lists 0 twice"),
    ('kind = "bench"\nmetrics = ["attention"]\nthresholds = { optimizer_step = 0.1 }',
     "thresholds.optimizer_step names a metric not in 'metrics'"),
])
def test_mistakes_name_suite_key_and_expectation(tmp_path, body, message):
    path = _write(tmp_path, "[suites.s]\n" + body + "\n")
    with pytest.raises(BadInput) as err:
        load_suites(path)
    text = str(err.value)
    assert text.startswith("benchmarks.toml: suite 's'")
    assert message in text
    assert "\n" not in text


def test_file_level_errors(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        load_suites(tmp_path / "missing.toml")
    with pytest.raises(BadInput, match="not valid TOML"):
        load_suites(_write(tmp_path, "[suites.s\n"))
    with pytest.raises(BadInput, match="unknown top-level key 'suite'"):
        load_suites(_write(tmp_path, '[suite.s]\nkind = "bench"\n'))
