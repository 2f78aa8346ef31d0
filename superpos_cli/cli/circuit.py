"""`superpos circuit`: draw the variational circuit or print it as OpenQASM 3."""

from __future__ import annotations

from typing import Annotated

import typer



def circuit(
    qubits: Annotated[int, typer.Option(help="Number of qubits.")] = 4,
    depth: Annotated[int, typer.Option(help="Number of Ry/Rz/CNOT layers.")] = 2,
    encoding: Annotated[str, typer.Option(help="Where x enters: reupload (every layer) or first-layer.")] = "reupload",
    entangler: Annotated[str, typer.Option(help="CNOT pattern: chain or ring.")] = "chain",
    readout: Annotated[str, typer.Option(help="Readout of the first n_qubits amplitudes: real, abs or prob.")] = "real",
    qasm: Annotated[bool, typer.Option("--qasm", help="Print OpenQASM 3 instead of a drawing.")] = False,
) -> None:
    """Show the circuit C(x) with its parameters theta, phi and input x."""
    from superpos_cli.spec.options import OPTIONS

    # The spec's rules, before qiskit loads (seconds): a bad name is one fast line.
    for name, value in (("qubits", qubits), ("depth", depth), ("encoding", encoding), ("entangler", entangler),
                        ("readout", readout)):
        OPTIONS[name].parse(str(value))
    from qiskit import qasm3

    from superpos_cli.quantum.backends.qiskit_backend import QiskitCircuit

    from superpos_cli.quantum.circuit import CircuitSpec

    spec = CircuitSpec(n_qubits=qubits, depth=depth, encoding=encoding, entangler=entangler, readout=readout)
    built = QiskitCircuit(spec).circuit
    typer.echo(qasm3.dumps(built) if qasm else str(built.draw(output="text", fold=-1)))


def register(app: typer.Typer) -> None:
    app.command("circuit")(circuit)
