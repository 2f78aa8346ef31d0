"""Make tests/data/reproduce_quick.json.gz, the report test's fixture, from the JSON
document of a real `superpos reproduce --quick` (reproduce/reproduce.json):

    python tests/data/make_report_fixture.py reproduce/reproduce.json

Kept: everything the report reads. Trimmed, to keep the file small: each trial
record down to what the telemetry figure reads (arm, seed, per-evaluation epoch
and perturbation ratio; ablation steps' trials, which no figure reads, dropped),
and floats rounded to 6 significant digits. The claims are not trusted from the
file: the test recomputes them with the current code (reproduce.claims).
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

OUT = Path(__file__).with_name("reproduce_quick.json.gz")


def _round(x):
    if isinstance(x, float):
        return float(f"{x:.6g}")
    if isinstance(x, list):
        return [_round(v) for v in x]
    if isinstance(x, dict):
        return {k: _round(v) for k, v in x.items()}
    return x


def _trial(trial: dict) -> dict:
    evals = (trial.get("result") or {}).get("evals", [])
    return {"arm": trial.get("arm"), "seed": trial.get("seed"), "status": trial.get("status"),
            "result": {"evals": [{"epoch": e["epoch"], "perturb_ratio": e.get("perturb_ratio")} for e in evals]}}


def trim(doc: dict) -> dict:
    doc = dict(doc)
    steps = []
    for step in doc["steps"]:
        step = dict(step, doc=dict(step["doc"]))
        if "trials" in step["doc"]:
            step["doc"]["trials"] = [_trial(t) for t in step["doc"]["trials"]] if step["kind"] == "compare" else []
        steps.append(step)
    doc["steps"] = steps
    return _round(doc)


if __name__ == "__main__":
    source = json.loads(Path(sys.argv[1]).read_text())
    with gzip.open(OUT, "wt", encoding="utf-8") as handle:
        json.dump(trim(source), handle, separators=(",", ":"))
    print(f"{OUT}: {OUT.stat().st_size} bytes")
