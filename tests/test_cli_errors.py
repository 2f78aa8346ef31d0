"""Bad invocations of the real CLI: exit 2, one line on stderr, no traceback, nothing written.

Each case runs ``python -m superpos_cli`` in a subprocess (the real console
entry, with its own imports and exit handling), with a private cache folder and
no ``$SUPERPOS_STORE``. Paths in the arguments are written ``{tmp}/...``, and
``{data}/NAME`` names one of the files :func:`_data_files` writes. After each
run nothing may have appeared under the test's folder except the empty default
store folder (created before the checks that then failed), and no results
store anywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from superpos_cli.fileio import MAX_LINE_BYTES

ROOT = Path(__file__).resolve().parents[1]
GOOD_ROWS = "".join(json.dumps({"text": f"w{i} {'good' if i % 2 else 'bad'}", "label": i % 2}) + "\n"
                    for i in range(8))
GSM8K_ROW = json.dumps({"question": "1+1?", "answer": "2 #### 2"}) + "\n"


def _data_files(folder: Path) -> None:
    folder.mkdir()
    (folder / "good.jsonl").write_text(GOOD_ROWS)
    (folder / "empty.jsonl").write_text("")
    (folder / "blank.jsonl").write_text("\n\n  \n")
    (folder / "nul.jsonl").write_bytes(b'{"text": "a", "label": 0}\n\x00\x00\x01\x02binary\x00\n')
    (folder / "latin1.jsonl").write_bytes(b'{"text": "caf\xe9", "label": 0}\n')
    (folder / "malformed.jsonl").write_text('{"text": "a", "label": 0}\n{oops\n')
    (folder / "no-label.jsonl").write_text('{"text": "a"}\n')
    (folder / "bool-label.jsonl").write_text('{"text": "a", "label": true}\n')
    (folder / "list.jsonl").write_text("[1, 2]\n")
    (folder / "one-label.jsonl").write_text('{"text": "a", "label": 0}\n{"text": "b", "label": 0}\n')
    (folder / "huge-line.jsonl").write_text('{"text": "' + "a" * (MAX_LINE_BYTES + 10) + '", "label": 0}\n')
    (folder / "no-header.csv").write_text("a,b\n1,2\n")
    (folder / "no-label.csv").write_text("text,label\nhello,\n")
    (folder / "gsm8k-malformed.jsonl").write_text(GSM8K_ROW + "{oops\n")
    (folder / "gsm8k-no-final.jsonl").write_text(json.dumps({"question": "q", "answer": "2"}) + "\n")
    (folder / "gsm8k-wrong-keys.jsonl").write_text(json.dumps({"q": "q", "a": "#### 2"}) + "\n")
    (folder / "gsm8k-all-bad.jsonl").write_text("{oops\n" * 3)
    (folder / "not-a-checkpoint").mkdir()
    (folder / "bad.toml").write_text("[suites.s\n")
    (folder / "unknown-key.toml").write_text('[suites.s]\nkind = "compare"\narms = ["adam"]\ncolour = 1\n')
    (folder / "bench.toml").write_text('[suites.b]\nkind = "bench"\nmetrics = ["attention"]\n')
    (folder / "notes.txt").write_text("not a bench record\n")
    (folder / "record.json").write_text("[1, 2]\n")


# (command line, a phrase the error line holds). 60+ cases over every subcommand.
CASES = [
    # ---------------------------------------------------------------- wrong types
    (["train", "--max-epochs", "two"], "max_epochs must be an integer >= 1, got 'two'"),
    (["train", "--lr", "fast"], "lr must be a number > 0, got 'fast'"),
    (["train", "--qubits", "2.5"], "qubits must be an integer in [1, 24], got '2.5'"),
    (["train", "--seed", "-1"], "seed must be an integer >= 0, got '-1'"),
    (["compare", "adam", "--seeds", "x"], "seeds must be an integer >= 1, got 'x'"),
    (["compare", "adam", "--target", "nan"], "target must be a number in (0, 1), got 'nan'"),
    (["compare", "adam", "--lr", "inf"], "lr must be a number > 0, got 'inf'"),
    (["compare", "adam", "--jobs", "many"], "Invalid value for '--jobs'"),
    (["ablate", "--lambda", "0,big"], "lambda must be a number >= 0, got 'big'"),
    (["ablate", "--qubits", "2,2.5"], "qubits must be an integer in [1, 24], got '2.5'"),
    (["ablate", "--eps-inside", "true,maybe"], "eps_inside must be true or false, got 'maybe'"),
    (["profile", "--repeats", "few"], "Invalid value for '--repeats'"),
    (["bench", "--repeats", "few"], "Invalid value for '--repeats'"),
    (["circuit", "--qubits", "four"], "Invalid value for '--qubits'"),
    (["results", "list", "--limit", "ten"], "Invalid value for '--limit'"),
    # ---------------------------------------------------------------- out of range
    (["train", "--max-epochs", "0"], "max_epochs must be an integer >= 1, got '0'"),
    (["train", "--qubits", "25"], "qubits must be an integer in [1, 24], got '25'"),
    (["train", "--dropout", "1"], "dropout must be a number in [0, 1), got '1'"),
    (["train", "--label-noise", "0.5"], "label_noise must be a number in [0, 0.5), got '0.5'"),
    (["compare", "adam", "--lr", "0"], "lr must be a number > 0, got '0'"),
    (["compare", "adam", "--lambda", "-0.1"], "lambda must be a number >= 0, got '-0.1'"),
    (["compare", "adam", "--beta2", "1"], "beta2 must be a number in [0, 1), got '1'"),
    (["compare", "adam", "--seeds", "0"], "seeds must be an integer >= 1, got '0'"),
    (["compare", "adam", "--jobs", "0"], "jobs must be >= 1, got 0"),
    (["compare", "adam", "--val-fraction", "1"], "val_fraction must be a number in (0, 1), got '1'"),
    (["compare", "sgd:lambda=-1"], "lambda must be a number >= 0, got '-1'"),
    (["compare", "sgd:eps=0"], "eps must be a number > 0, got '0'"),
    (["ablate", "--depth", "0,1"], "depth must be an integer in [1, 64], got '0'"),
    (["ablate", "--lambda", "0,1", "--seeds", "0"], "seeds must be an integer >= 1, got '0'"),
    (["results", "list", "--limit", "0"], "Invalid value for '--limit'"),
    # ---------------------------------------------------------------- unknown names
    (["train", "--optim", "adamx"], "unknown optimizer 'adamx'"),
    (["train", "--task", "mnist"], "task must be one of textcls, gsm8k, got 'mnist'"),
    (["train", "--perturb", "tan"], "perturb must be one of sin, cos, gaussian, uniform, none, got 'tan'"),
    (["train", "--colour", "red"], "No such option"),
    (["compare", "adam", "--attention", "magic"], "attention must be one of quantum, classical, got 'magic'"),
    (["compare", "adam", "--scope", "everywhere"], "scope must be one of tensors, coords, global, all"),
    (["compare", "adam", "--backend", "aer"], "backend must be one of fourier, torch, got 'aer'"),
    (["compare", "sgd:lamda=1"], "unknown optimizer option 'lamda'"),
    (["compare", "adam:lambda=0.1"], "option 'lambda' does not apply to optimizer 'adam'"),
    (["compare", "sgd:0.1"], "must look like key=value"),
    (["compare", "torch.optim.SGD:lr=fast"], "is not a Python literal"),
    (["compare", ":lr=1"], "names no optimizer"),
    (["compare", "adam", "--suite", "no-such-suite"], "give either arms or --suite"),
    (["compare", "--suite", "no-such-suite"], "unknown suite 'no-such-suite'"),
    (["compare", "--suite", "b", "--suites-file", "{data}/bench.toml"], "is a bench suite"),
    (["ablate", "--perturb", "sin,tan"], "perturb must be one of"),
    (["ablate", "--lambda", "0,1", "--control", "colour=red"], "unknown ablation axis 'colour'"),
    (["ablate", "--lambda", "0,1", "--control", "lambda=2"], "names no cell"),
    (["ablate", "--lambda", "0,1", "--optim", "torch.optim.SGD"], "must be a preset, not an import path"),
    (["bench", "--suite", "nope"], "unknown suite 'nope'"),
    (["profile", "--parts", "gpu"], "gpu"),
    (["circuit", "--encoding", "everywhere"], "encoding"),
    (["results", "nope"], "No such command 'nope'"),
    # ---------------------------------------------------------------- conflicts and combinations
    (["compare"], "name at least one optimizer arm"),
    (["compare", "sgd", "sgd"], "arms must be distinct"),
    (["compare", "adam", "--store", "{tmp}/r.db", "--no-store"], "give --store or --no-store, not both"),
    (["compare", "adam", "--limit", "3"], "--limit applies to task gsm8k, not textcls"),
    (["compare", "adam", "--d-model", "30"], "d_model 30 is not divisible by n_heads 4"),
    (["compare", "adam", "--task", "gsm8k", "--lora-rank", "4"], "--lora-rank needs --model PATH"),
    (["train", "--task", "gsm8k", "--model", "{data}/not-a-checkpoint"], "no config.json"),
    (["ablate"], "give at least one axis"),
    (["ablate", "--depth", "1,1"], "lists 1 twice"),
    (["ablate", "--lambda", "0,,1"], "has an empty value"),
    (["results", "export", "--csv", "--json", "--store", "{tmp}/r.db"], "pass only one of --csv and --json"),
    # ---------------------------------------------------------------- data files
    (["train", "--data", "{tmp}/missing.jsonl"], "no such file"),
    (["train", "--data", "{data}"], "is not a file"),
    (["compare", "adam", "--data", "{data}/empty.jsonl"], "holds no examples"),
    (["compare", "adam", "--data", "{data}/blank.jsonl"], "holds no examples"),
    (["compare", "adam", "--data", "{data}/nul.jsonl"], "line 2"),
    (["compare", "adam", "--data", "{data}/latin1.jsonl"], "latin1.jsonl"),
    (["compare", "adam", "--data", "{data}/malformed.jsonl"], "line 2 is not valid JSON"),
    (["compare", "adam", "--data", "{data}/no-label.jsonl"], "line 1 needs"),
    (["compare", "adam", "--data", "{data}/bool-label.jsonl"], "label must be an int or a string"),
    (["compare", "adam", "--data", "{data}/list.jsonl"], "line 1 needs"),
    (["compare", "adam", "--data", "{data}/one-label.jsonl"], "needs at least 2 distinct labels"),
    (["compare", "adam", "--data", "{data}/huge-line.jsonl"], "huge-line.jsonl"),
    (["compare", "adam", "--data", "{data}/no-header.csv"], "CSV needs a header"),
    (["compare", "adam", "--data", "{data}/no-label.csv"], "line 2 lacks text or label"),
    (["compare", "adamw", "--task", "gsm8k", "--data", "{data}/gsm8k-malformed.jsonl"], "line 2 is not valid JSON"),
    (["compare", "adamw", "--task", "gsm8k", "--data", "{data}/gsm8k-no-final.jsonl"], "#### <number>"),
    (["compare", "adamw", "--task", "gsm8k", "--data", "{data}/gsm8k-wrong-keys.jsonl"], "needs"),
    (["compare", "adamw", "--task", "gsm8k", "--skip-bad", "--data", "{data}/gsm8k-all-bad.jsonl"],
     "no well-formed examples"),
    (["compare", "adamw", "--task", "gsm8k", "--data", "{data}/nul.jsonl"], "nul.jsonl"),
    (["compare", "--suite", "s", "--suites-file", "{data}/bad.toml"], "not valid TOML"),
    (["compare", "--suite", "s", "--suites-file", "{data}/unknown-key.toml"], "unknown key 'colour'"),
    (["compare", "--suite", "s", "--suites-file", "{tmp}/missing.toml"], "does not exist"),
    (["bench", "--suite", "b", "--suites-file", "{data}/bench.toml", "--baseline", "{tmp}/missing.json"],
     "missing.json"),
    (["bench", "--suite", "b", "--suites-file", "{data}/bench.toml", "--baseline", "{data}/notes.txt"], "notes.txt"),
    (["bench", "--suite", "b", "--suites-file", "{data}/bench.toml", "--fail-on", "lots"], "lots"),
    # ---------------------------------------------------------------- unwritable outputs
    (["compare", "adam", "--out", "/proc/nope/x.json"], "--out '/proc/nope/x.json'"),
    (["compare", "adam", "--out", "{tmp}/no-folder/x.json"], "does not exist"),
    (["compare", "adam", "--out", "{data}"], "is a folder"),
    (["compare", "adam", "--plot", "{tmp}/no-folder/p.png"], "--plot"),
    (["compare", "adam", "--store", "{tmp}/no-folder/r.db"], "--store"),
    (["train", "--out", "/proc/nope/x.json"], "--out"),
    (["ablate", "--lambda", "0,1", "--out", "/proc/nope/x.json"], "--out"),
    (["ablate", "--lambda", "0,1", "--plot", "{tmp}/no-folder/p.png"], "--plot"),
    (["ablate", "--lambda", "0,1", "--store", "{tmp}/no-folder/r.db"], "--store"),
    (["bench", "--suite", "b", "--suites-file", "{data}/bench.toml", "--save-baseline", "/proc/nope/b.json"],
     "--save-baseline"),
    (["bench", "--suite", "b", "--suites-file", "{data}/bench.toml", "--github-json", "{tmp}/no-folder/g.json"],
     "--github-json"),
    (["bench", "--suite", "b", "--suites-file", "{data}/bench.toml", "--out", "/proc/nope/x.json"], "--out"),
    (["profile", "--out", "/proc/nope/x.json"], "--out"),
    # ---------------------------------------------------------------- results store
    (["results", "list", "--store", "{tmp}/missing.db"], "no results store"),
    (["results", "show", "abc", "--store", "{tmp}/missing.db"], "no results store"),
    (["results", "export", "--store", "{tmp}/missing.db", "--out", "{tmp}/e.csv"], "no results store"),
    (["bench", "history", "--metric", "attention", "--store", "{tmp}/missing.db"], "does not exist"),
    (["train", "--device", "gpu"], "device must be cpu, cuda or cuda:N, got 'gpu'"),
    (["ablate", "--lambda", "0,0.1", "--device", "cuda:x"], "device must be cpu, cuda or cuda:N"),
    # ---------------------------------------------------------------- memory (--max-memory)
    (["train", "--max-memory", "lots"], "max-memory must be a size such as 8G, 512M or 1.5GiB, got 'lots'"),
    (["compare", "adam", "--max-memory", "0"], "max-memory must be a size"),
    (["ablate", "--lambda", "0,0.1", "--max-memory", "-1G"], "max-memory must be a size"),
    (["train", "--max-memory", "100M"], "more than --max-memory 100 MiB"),
    (["reproduce", "--quick", "--max-memory", "100M", "--out-dir", "{tmp}/r"], "more than --max-memory 100 MiB"),
    (["reproduce", "--quick", "--ray-address", "auto", "--out-dir", "{tmp}/r"], "--ray-address needs --executor ray"),
    (["compare", "adam", "sgd", "--qubits", "20", "--backend", "torch", "--max-memory", "16G"], "quantum attention"),
    (["ablate", "--qubits", "4,12", "--readout", "prob", "--noise", "depolarizing:0.01", "--max-memory", "4G"],
     "use fewer --qubits (noise is simulated on density matrices"),
]


def _cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SUPERPOS_STORE"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def test_at_least_60_cases_over_every_subcommand():
    assert len(CASES) >= 60
    commands = {args[0] if args[0] not in ("results", "bench") or len(args) < 2 or args[1].startswith("-")
                else f"{args[0]} {args[1]}" for args, _ in CASES}
    assert {"train", "compare", "ablate", "profile", "bench", "circuit", "results list", "results show",
            "results export"} <= commands


@pytest.mark.parametrize("args, phrase", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_invocation_exits_2_with_one_line(tmp_path, args, phrase):
    data = tmp_path / "data"
    _data_files(data)
    before = _files(tmp_path)
    argv = [a.replace("{data}", str(data)).replace("{tmp}", str(tmp_path)) for a in args]
    phrase = phrase.replace("{data}", str(data)).replace("{tmp}", str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "superpos_cli", *argv], capture_output=True, text=True,
                          env=_cli_env(tmp_path), cwd=tmp_path, timeout=120)
    lines = done.stderr.splitlines()
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error:") and lines[0].strip() != "error:", done.stderr[-2000:]
    assert phrase in lines[0], lines[0]
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stdout == ""
    assert _files(tmp_path) == before  # no output, no store, no temporary file left behind


def test_help_of_every_command_exits_0(tmp_path):
    commands = [[], ["train"], ["compare"], ["ablate"], ["profile"], ["bench"], ["bench", "history"], ["circuit"],
                ["results"], ["results", "list"], ["results", "show"], ["results", "export"]]
    for command in commands:
        done = subprocess.run([sys.executable, "-m", "superpos_cli", *command, "--help"], capture_output=True,
                              text=True, env=_cli_env(tmp_path), cwd=tmp_path, timeout=120)
        assert done.returncode == 0, (command, done.stderr[-2000:])
        assert "Usage" in done.stdout and done.stderr == "", command


def test_the_cli_loads_without_torch(tmp_path):
    code = ("import sys, superpos_cli.cli.app; heavy = [m for m in ('torch', 'scipy', 'qiskit', 'qiskit_aer') "
            "if m in sys.modules]; assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_cli_env(tmp_path),
                          timeout=120)
    assert done.returncode == 0, done.stderr


_CONSOLE = ("import sys\nfrom superpos_cli.cli.app import run\nsys.argv = ['superpos'] + sys.argv[1:]\n"
            "try:\n    run()\nfinally:\n    print('teardown ran', file=sys.stderr)\n")


@pytest.mark.parametrize("args, code", [(["--help"], 0), (["circuit", "--qubits", "3", "--qasm"], 0),
                                        (["train", "--epochs", "1"], 2), (["circuit", "--qubits", "0"], 2)])
def test_the_console_script_leaves_with_the_commands_output_and_code(args, code, tmp_path):
    """``superpos`` (cli.app.run) ends with os._exit after the command: the same exit
    code and the same stdout and stderr, to the byte, as ``python -m superpos_cli``
    (which exits normally), nothing after it runs; under torchrun it exits normally."""
    env = _cli_env(tmp_path)
    module = subprocess.run([sys.executable, "-m", "superpos_cli", *args], capture_output=True, text=True, env=env,
                            cwd=tmp_path, timeout=120)
    console = subprocess.run([sys.executable, "-c", _CONSOLE, *args], capture_output=True, text=True, env=env,
                             cwd=tmp_path, timeout=120)
    assert module.returncode == console.returncode == code, (module.stderr, console.stderr)
    out, err = (text.replace("python -m superpos_cli", "superpos") for text in (module.stdout, module.stderr))
    assert console.stdout == out and console.stderr == err
    assert out if code == 0 else err.count("\n") == 1
    ranked = subprocess.run([sys.executable, "-c", _CONSOLE, *args], capture_output=True, text=True,
                            env={**env, "WORLD_SIZE": "2"}, cwd=tmp_path, timeout=120)
    assert ranked.returncode == code and ranked.stderr == err + "teardown ran\n"
