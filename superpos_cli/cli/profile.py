"""`superpos profile`: circuit, attention, optimizer, epoch (and lm) cost, as ratios."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from superpos_cli.cli import options as o
from superpos_cli.cli.render import _num, emit_json, stderr, stdout

# Per part: (title, reference column key, its header, extra columns (key, header, digits)).
_LAYOUT: dict[str, tuple[str, str, str, list[tuple[str, str, int]]]] = {
    "circuit": ("circuit evaluation (seconds per call)", "ratio_vs_aer", "x aer",
                [("circuits_per_s", "circuits/s", 0), ("batch", "batch", 0)]),
    "attention": ("attention forward+backward (seconds)", "ratio_vs_classical", "x classical", []),
    "noise": ("noisy and shot-sampled attention forward+backward (seconds)", "ratio_vs_noiseless_prob",
              "x noiseless prob", []),
    "preparation": ("fourier coefficient preparation + backward per step (seconds)", "ratio_vs_noiseless",
                    "x noiseless", []),
    "optimizer": ("optimizer step per variant (seconds)", "ratio_vs_fused_adam", "x fused adam",
                  [("compile_s", "compile s", 1)]),
    "epoch": ("textcls training time per epoch (seconds); 'again' is the reference timed twice: its overhead "
              "is this run's noise", "break_even_speedup", "break-even",
              [("overhead", "overhead", 1), ("steps", "steps", 0)]),
    "lm": ("built-in GSM8K GPT training throughput (tokens/s)", "ratio_vs_adam", "x adam", []),
}


def _label(part: str, row: dict[str, Any]) -> str:
    name = row["name"]
    if part in ("circuit", "attention", "noise", "preparation") and "n_qubits" in row:
        name += f" q={row['n_qubits']} d={row['depth']}"
    if part in ("attention", "noise") and "shape" in row:
        s = row["shape"]
        name += f" B={s['B']} H={s['H']} T={s['T']} d_k={s['d_k']}"
    if part == "optimizer":
        name = " ".join(str(v) for v in (name, row.get("scope"), row.get("path")) if v)
    return name


def part_table(part: str, rows: list[dict[str, Any]], peak_mb: float | None) -> Table:
    title, ref_key, ref_header, extra = _LAYOUT[part]
    unit_digits = 0 if part == "lm" else 4
    table = Table(title=title + (f", peak RSS {peak_mb:.0f} MB" if peak_mb is not None else ""))
    for header in ("name", "median", "min", "max", ref_header, *(h for _, h, _ in extra)):
        table.add_column(header, justify="left" if header == "name" else "right")
    for row in rows:
        cells = [_label(part, row), _num(row["median"], unit_digits), _num(row["min"], unit_digits),
                 _num(row["max"], unit_digits), _num(row.get(ref_key), 2)]
        for key, _, digits in extra:
            value = row.get(key)
            cells.append(_num(value, 1, pct=True, signed=True) if key == "overhead"
                         else str(value) if isinstance(value, int) else _num(value, digits))
        table.add_row(*cells)
    return table


def profile(
    qubits: Annotated[str, typer.Option("--qubits", help="Qubits, one value or a sweep such as 2,4,8.")] = "4",
    depth: Annotated[str, typer.Option("--depth", help="Circuit depth, one value or a sweep such as 1,2,4.")] = "2",
    parts: Annotated[str, typer.Option("--parts", help="circuit,attention,noise,preparation,optimizer,epoch,lm or all (lm: opt-in).")] = "all",
    repeats: Annotated[Optional[int], typer.Option("--repeats", help="Timed repeats per figure (min/median/max); default 5, 2 with --quick.")] = None,
    epoch_steps: Annotated[Optional[int], typer.Option("--epoch-steps", help="epoch: steps per sample (default one full epoch).")] = None,
    lm: Annotated[bool, typer.Option("--lm", help="Add the lm part: tokens/s of the built-in GSM8K GPT.")] = False,
    threads: Annotated[int, typer.Option("--threads", help="torch threads while timing (1: steadiest on a shared machine).")] = 1,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N: where circuit (fourier, torch), attention, optimizer, epoch and lm run; noise and preparation stay on the CPU.")] = "cpu",
    quick: Annotated[bool, typer.Option("--quick", help="Tiny sizes and 2 repeats: a smoke run, not a measurement.")] = False,
    json_: o.Json = False,
    out: o.Out = None,
) -> None:
    """Where the time goes: circuits/s, attention (noiseless, noisy, shot-sampled), coefficient
    preparation as qubits grow, optimizer step and epoch overhead, each vs a reference."""
    from superpos_cli.cli.prepare import prepare_outputs

    prepare_outputs(out=out)  # before the minutes of timing, not after
    from superpos_cli.experiments.profile import ProfileSpec, parse_int_list, parse_parts, quick_spec, run_profile

    selected = parse_parts(parts)
    if lm and "lm" not in selected:
        selected += ("lm",)
    from superpos_cli.tasks.device import check_torch_device

    check_torch_device(device)
    values = dict(device=device, qubits=parse_int_list(qubits, "--qubits"), depths=parse_int_list(depth, "--depth"),
                  parts=selected, epoch_steps=epoch_steps, threads=threads)
    if repeats is not None:
        values["repeats"] = repeats
    spec = quick_spec(**values) if quick else ProfileSpec(**values)
    with stderr.status("profiling") as status:
        doc = run_profile(spec, progress=lambda message: status.update(f"profiling {message}"))
    emit_json(doc, json_, out)
    if not json_:
        for part in spec.parts:
            stdout.print(part_table(part, doc[part], doc["peak_memory_mb"].get(part)))


def register(app: typer.Typer) -> None:
    app.command("profile")(profile)
