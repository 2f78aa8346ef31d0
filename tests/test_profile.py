"""superpos profile: the JSON contract on a tiny configuration, and bad input."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from superpos_cli.cli.app import app
from superpos_cli.errors import BadInput
from superpos_cli.experiments.profile import EPOCH_CONTROL, ProfileSpec, parse_parts
from superpos_cli.experiments.timing import interleaved_runs, interleaved_steps, paired_ratio

runner = CliRunner()

REFERENCE = {"circuit": "ratio_vs_aer", "attention": "ratio_vs_classical", "noise": "ratio_vs_noiseless_prob",
             "preparation": "ratio_vs_noiseless", "optimizer": "ratio_vs_fused_adam", "epoch": "break_even_speedup"}


def test_profile_json_has_every_part_with_ratios(tmp_path):
    out = tmp_path / "profile.json"
    result = runner.invoke(app, ["profile", "--quick", "--qubits", "4", "--depth", "2", "--repeats", "1",
                                 "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert json.loads(out.read_text()) == doc
    assert {"machine", "versions", "peak_memory_mb"} <= set(doc)
    for part, ratio in REFERENCE.items():
        rows = doc[part]
        assert rows, part
        for row in rows:
            assert row["min"] <= row["median"] <= row["max"], (part, row["name"])
            assert row[ratio] > 0, (part, row["name"])
        assert doc["peak_memory_mb"][part] > 0
    assert {r["backend"] for r in doc["circuit"]} >= {"fourier", "aer"}
    noise = {r["name"] for r in doc["noise"]}
    assert {"attention fourier prob", "attention fourier depolarizing:0.01", "attention fourier readout:0.02",
            "attention fourier shots=1024"} <= noise
    assert next(r for r in doc["noise"] if r["name"] == "attention fourier prob")["ratio_vs_noiseless_prob"] == 1.0
    assert {(r["n_qubits"], r["name"]) for r in doc["preparation"]} == {
        (q, name) for q in (2, 3) for name in ("prepare noiseless", "prepare depolarizing:0.01")}
    assert all(r["circuits_per_s"] > 0 for r in doc["circuit"])
    assert next(r for r in doc["circuit"] if r["backend"] == "aer")["ratio_vs_aer"] == pytest.approx(1.0)
    epoch = {r["name"]: r for r in doc["epoch"]}
    assert list(epoch) == ["adam+classical", EPOCH_CONTROL, "adam+quantum", "sgd+classical", "sgd+quantum"]
    assert epoch["adam+classical"]["overhead"] == 0.0
    control = epoch[EPOCH_CONTROL]  # the reference again, timed beside it: same config, its own samples
    assert control["control"] and not any(r["control"] for r in epoch.values() if r is not control)
    assert (control["optimizer"], control["attention"]) == ("adam", "classical")
    assert control["samples"] != epoch["adam+classical"]["samples"]
    for row in epoch.values():
        assert row["break_even_speedup"] == pytest.approx(1 + row["overhead"])
    assert any(r.get("compile_s") is not None or r["path"] == "foreach" for r in doc["optimizer"])
    for row in doc["optimizer"]:  # each variant against the fused Adam steps timed beside it
        assert len(row["samples"]) == len(row["reference_samples"])
        assert row["ratio_vs_fused_adam"] == pytest.approx(paired_ratio(row["samples"], row["reference_samples"]))
    reference = next(r for r in doc["optimizer"] if (r["name"], r["path"]) == ("adam", "fused"))
    assert reference["ratio_vs_fused_adam"] == 1.0
    others = [r["reference_samples"] for r in doc["optimizer"] if r is not reference]
    assert len({tuple(s) for s in others}) == len(others)  # a fresh pairing per variant


def test_profile_table_for_selected_parts():
    result = runner.invoke(app, ["profile", "--quick", "--parts", "epoch", "--repeats", "1"])
    assert result.exit_code == 0, result.output
    assert "per epoch" in result.output and "break-even" in result.output
    assert "circuit evaluation" not in result.output


def test_noise_rows_time_one_circuit_with_and_without_noise():
    """Every variant shares the projections, and every circuit variant theta and phi."""
    from superpos_cli.experiments.profile_noise import REFERENCE, attention_modules

    modules = attention_modules(16, 2, 2, 1, device=None)
    reference = modules[REFERENCE].state_dict()
    assert len(modules) >= 6
    for name, module in modules.items():
        for key, value in module.state_dict().items():
            assert torch.equal(value, reference[key]), (name, key)


def test_profile_shows_noise_and_preparation_tables():
    result = runner.invoke(app, ["profile", "--quick", "--parts", "noise,preparation", "--repeats", "1"])
    assert result.exit_code == 0, result.output
    assert "shot-sampled attention" in result.output and "x noiseless prob" in result.output
    assert "prepare depolarizing:0.01 q=3 d=2" in result.output


@pytest.mark.parametrize("args", [["--qubits", "0"], ["--qubits", "two"], ["--depth", "0"],
                                  ["--parts", "circuit,warp"], ["--repeats", "0"]])
def test_bad_values_exit_2(args):
    result = runner.invoke(app, ["profile", *args])
    assert result.exit_code == 2
    assert "error:" in result.output


def test_parse_parts_and_spec():
    assert parse_parts("all") == ("circuit", "attention", "noise", "preparation", "optimizer", "epoch")
    assert parse_parts("optimizer, circuit") == ("optimizer", "circuit")
    with pytest.raises(BadInput):
        ProfileSpec(qubits=(2, 0))


def test_interleaving_alternates_order():
    calls = []
    interleaved_runs({k: (lambda k=k: calls.append(k)) for k in "ABC"}, repeats=2, warmup=0)
    assert calls == list("ABCCBA")


def test_step_interleaving_alternates_call_by_call_and_sums_rounds():
    calls = []

    def stepper(name, seconds):
        def step():
            calls.append(name)
            return seconds
        return step

    totals = interleaved_steps({"A": stepper("A", 1.0), "B": stepper("B", 2.0)}, steps=3, repeats=2, warmup=1)
    assert calls == list("ABBAAB" "BAABBA" "ABBAAB")  # one warmup round, then two timed ones
    assert totals == {"A": [3.0, 3.0], "B": [6.0, 6.0]}


def test_ratios_are_paired_by_round():
    """A candidate twice as slow as its reference in most rounds is 2x, however the
    machine drifts between rounds (for the second, the ratio of the medians says 0.75x)."""
    from superpos_cli.experiments.timing import paired_ratio

    reference = [1.0, 1.0, 4.0, 4.0, 4.0]
    assert paired_ratio([2 * r for r in reference], reference) == 2.0
    assert paired_ratio([2.0, 2.0, 8.0, 3.0, 3.0], reference) == 2.0
    with pytest.raises(ValueError):
        paired_ratio([1.0], [1.0, 2.0])


def test_paired_rounds_take_each_sides_median_call(monkeypatch):
    """ratio_samples on a fake clock: calls alternate M R, R M, ... after the warmup
    pairs; a round's sample is each side's median call, so one descheduled call (a
    reference call 10x as long) moves neither the sample nor the ratio."""
    from superpos_cli.experiments import timing

    clock, calls = [0.0], []
    reference_costs = iter([1.0] * 2 + [1.0, 10.0, 1.0] + [1.0] * 3)  # 2 warmup calls, then 2 rounds of 3

    def method():
        calls.append("M")
        clock[0] += 2.0

    def reference():
        calls.append("R")
        clock[0] += next(reference_costs)

    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])
    ratios, method_s, reference_s = timing.ratio_samples(method, reference, repeats=2, inner=3, warmup=2)
    assert calls == list("MRMR") + list("MRRMMR") * 2
    assert (ratios, method_s, reference_s) == ([2.0, 2.0], [2.0, 2.0], [1.0, 1.0])
