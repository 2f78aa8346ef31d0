import pytest
import torch

from superpos_cli.cli.app import app
from superpos_cli.errors import BadInput
from superpos_cli.quantum import CircuitSpec
from superpos_cli.quantum.gates import cnot_permutation


@pytest.mark.parametrize(
    "kwargs",
    [dict(n_qubits=0), dict(n_qubits=2.5), dict(n_qubits=True), dict(n_qubits=99), dict(depth=0),
     dict(encoding="every"), dict(entangler="star"), dict(readout="imag")],
)
def test_bad_spec_values_raise_badinput(kwargs):
    with pytest.raises(BadInput):
        CircuitSpec(**kwargs)


def test_ops_follow_the_paper():
    spec = CircuitSpec(3, 2, encoding="first-layer", entangler="ring")
    ops = spec.ops()
    assert [op.gate for op in ops[:3]] == ["h"] * 3
    layer0 = ops[3:3 + 9]
    assert [op.gate for op in layer0] == ["ry", "rz"] * 3 + ["cx"] * 3
    assert [op.qubits for op in layer0 if op.gate == "cx"] == [(0, 1), (1, 2), (2, 0)]
    assert all(op.encoded for op in layer0 if op.gate == "ry")
    assert not any(op.encoded for op in ops[12:])
    assert spec.n_encodings == 3 and CircuitSpec(3, 2).n_encodings == 6
    assert CircuitSpec(1, entangler="ring").cnots() == ()


def test_cnot_permutation_big_endian():
    # CNOT(0 -> 1) on 2 qubits: |10> (index 2) <-> |11> (index 3).
    assert cnot_permutation(2, ((0, 1),)).tolist() == [0, 1, 3, 2]
    state = torch.eye(8)[4]  # |100>
    after = state[cnot_permutation(3, ((0, 1), (1, 2)))]  # chain: |100> -> |110> -> |111>
    assert after.argmax().item() == 7


def test_circuit_command_draws_and_exports_qasm():
    from typer.testing import CliRunner

    runner = CliRunner()
    drawn = runner.invoke(app, ["circuit", "--qubits", "3", "--depth", "2", "--entangler", "ring"])
    assert drawn.exit_code == 0, drawn.output
    assert "Ry(theta[0] + x)" in drawn.output and "Rz(phi[5])" in drawn.output
    qasm = runner.invoke(app, ["circuit", "--qubits", "2", "--depth", "1", "--qasm"])
    assert qasm.exit_code == 0, qasm.output
    try:
        from qiskit import qasm3

        import qiskit_qasm3_import  # noqa: F401
    except ImportError:
        assert qasm.output.startswith("OPENQASM 3.0;")
        for line in ("qubit[2] q;", "h q[0];", "cx q[0], q[1];"):
            assert line in qasm.output
        assert qasm.output.count("ry(") == 2 and qasm.output.count("rz(") == 2
    else:
        loaded = qasm3.loads(qasm.output)
        assert loaded.num_qubits == 2 and loaded.count_ops()["cx"] == 1
    bad = runner.invoke(app, ["circuit", "--readout", "imag"])
    assert bad.exit_code == 2 and "readout" in bad.output and "'imag'" in bad.output
