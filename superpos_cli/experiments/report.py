"""The reproduction report: one self-contained HTML file drawn from the reproduce document.

Everything shown comes from the document ``superpos reproduce --json`` prints
(house rule 5): a header (date, scale, machine, versions, code fingerprint, the
command to rerun), the claims table (paper / here / verdict), then one section
per step with its question, its own command, its table and its figures. Figures
are matplotlib PNGs (experiments/plots.py, plus the telemetry and cost plots
here) embedded as base64 ``data:`` URIs, and the styles are inline: the file
needs no network and no other file to be read, mailed or archived.
"""

from __future__ import annotations

import base64
import html
import tempfile
from pathlib import Path
from typing import Any, Callable

from superpos_cli.fileio import save_with, write_text

_STATUS_COLOURS = {"reproduced": "#1a7f37", "partly": "#7d8c00", "not reproduced": "#b35900", "opposite": "#cf222e",
                   "inconclusive": "#6e7781", "answered": "#0969da"}

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1180px;
color:#1f2328;line-height:1.45;padding:0 1em}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.86em}
th,td{border:1px solid #d0d7de;padding:.3em .45em;text-align:right;vertical-align:top}
th{background:#f6f8fa}td.l,th.l{text-align:left}tr.paper td{color:#57606a;font-style:italic}
code,pre{background:#f6f8fa;padding:.15em .35em;border-radius:4px;font-size:.88em}
pre{padding:.6em;overflow-x:auto;white-space:pre-wrap}
.status{font-weight:600;white-space:nowrap}.meta td{text-align:left}
img{max-width:100%;border:1px solid #d0d7de;margin:.4em 0}.figs{display:flex;flex-wrap:wrap;gap:1em}
.figs figure{margin:0;flex:0 1 calc(50% - .5em);min-width:340px}.figs figure.full{flex-basis:100%}
.note{color:#57606a;font-size:.9em}.ci{color:#57606a;font-size:.85em;white-space:nowrap}
.wide{overflow-x:auto}th{vertical-align:bottom}.meta th{vertical-align:top}
"""


# --------------------------------------------------------------------------- entry points


def write_report(doc: dict[str, Any], path: str | Path) -> None:
    """Write the HTML report of the reproduce document ``doc`` to ``path`` (atomically)."""
    write_text(path, render_html(doc), "--out-dir")


def render_html(doc: dict[str, Any]) -> str:
    """The report as one HTML string (module docstring)."""
    with tempfile.TemporaryDirectory(prefix="superpos-report-") as tmp:
        figures = _Figures(Path(tmp))
        sections = [_step_section(step, figures) for step in doc["steps"]]
    body = [
        f"<h1>Superpositional Gradient Descent: reproduction ({_e(doc['scale'])})</h1>",
        f"<p class='note'>arXiv:2511.01918 · {_e(doc['started_at'])} · {doc['wall_s']:.0f} s wall · "
        f"{doc['executed']} trials run, {doc['reused']} reused from the store · scale: "
        f"{_e(doc['scale_description'])}</p>",
        "<h2 id='claims'>Claims and open questions</h2>",
        _claims_table(doc["claims"]),
        "<p class='note'>Verdicts follow from the 95% paired bootstrap intervals (and Holm-adjusted p-values "
        "for the sweeps), never from point estimates; 'not reproduced' means the interval contains no "
        "difference, 'opposite' that it lies on the other side.</p>",
        *sections,
        _header(doc),
    ]
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>superpos reproduce ({_e(doc['scale'])})</title><style>{_STYLE}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


# --------------------------------------------------------------------------- pieces


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


class _WithCI(tuple):
    """A table cell ``(value, interval)``: the interval goes on its own line, small
    and unbroken, so a narrow column never splits "[90.0%, 94.2%]" in two."""


def _cell(c: Any) -> str:
    if isinstance(c, _WithCI):
        value, ci = c
        return _e(value) + (f"<br><span class='ci'>{_e(ci.strip())}</span>" if ci else "")
    return _e(c)


def _table(headers: list[str], rows: list[list[Any]], classes: list[str] | None = None, left: int = 1) -> str:
    head = "".join(f"<th class='l'>{_e(h)}</th>" if i < left else f"<th>{_e(h)}</th>" for i, h in enumerate(headers))
    out = [f"<div class='wide'><table><tr>{head}</tr>"]
    for k, row in enumerate(rows):
        cls = f" class='{classes[k]}'" if classes and classes[k] else ""
        cells = "".join(f"<td class='l'>{_cell(c)}</td>" if i < left else f"<td>{_cell(c)}</td>"
                        for i, c in enumerate(row))
        out.append(f"<tr{cls}>{cells}</tr>")
    return "".join(out) + "</table></div>"


def _claims_table(claims: list[dict[str, Any]]) -> str:
    rows = []
    for c in claims:
        colour = _STATUS_COLOURS.get(c["status"], "#1f2328")
        # Most verdicts begin with their status ("not reproduced (no significant
        # difference)"): the coloured status is that beginning, not a second copy.
        rest = c["verdict"][len(c["status"]):] if c["verdict"].startswith(c["status"]) else f": {c['verdict']}"
        rows.append(f"<tr><td class='l'><a href='#step-{_e(c['step'])}'>{_e(c['claim'])}</a></td>"
                    f"<td class='l'>{_e(c['paper'])}</td><td class='l'>{_e(c['here'])}</td>"
                    f"<td class='l'><span class='status' style='color:{colour}'>{_e(c['status'])}</span>"
                    f"{_e(rest)}</td></tr>")
    return ("<table id='claims-table'><tr><th class='l'>claim</th><th class='l'>paper</th><th class='l'>here</th>"
            "<th class='l'>verdict</th></tr>" + "".join(rows) + "</table>")


def _header(doc: dict[str, Any]) -> str:
    m, v, f = doc["machine"], doc["versions"], doc["fingerprint"]
    rows = [
        ["rerun (reuses every stored trial)", doc["command"]],
        ["machine", f"{m.get('cpu')} ({m.get('machine')}, {m.get('system')}), {m.get('logical_cores')} logical / "
                    f"{m.get('physical_cores')} physical cores, {m.get('memory_gb')} GB"],
        ["jobs", doc["jobs"]],
        ["versions", ", ".join(f"{k} {val}" for k, val in v.items() if k != "commit")],
        ["git commit", v.get("commit") or "none"],
        ["code fingerprint", f"{f.get('id')} (sources sha256 {f.get('sources')}; "
                             + ", ".join(f"{k} {val}" for k, val in (f.get("versions") or {}).items()) + ")"],
        ["scale", doc["scale_description"]],
    ]
    return ("<h2 id='provenance'>Machine, versions, code</h2><table class='meta'>"
            + "".join(f"<tr><th class='l'>{_e(k)}</th><td class='l'><code>{_e(val)}</code></td></tr>"
                      for k, val in rows) + "</table>")


def _num(x: Any, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _pct(x: Any, signed: bool = False) -> str:
    return "-" if x is None else (f"{x:+.1%}" if signed else f"{x:.1%}")


def _ci(ci: Any, fmt: Callable[[Any], str]) -> str:
    # A no-break space inside the brackets: a narrow column wraps between cells' words,
    # never inside an interval.
    if not ci or ci[0] is None and ci[1] is None:
        return ""
    return f" [{fmt(ci[0]) if ci[0] is not None else 'inf'},\u00a0{fmt(ci[1]) if ci[1] is not None else 'inf'}]"


def _epochs(summary: dict[str, Any]) -> _WithCI:
    e = summary["epochs_to_target"]
    median = f"> {e['max_epochs']}" if e["median"] is None else f"{e['median']:.2f}"
    return _WithCI((median, _ci(e["ci"], lambda x: f"{x:.2f}")))


def _reached(summary: dict[str, Any]) -> str:
    e = summary["epochs_to_target"]
    return f"{sum(x is not None for x in e['per_seed'])}/{len(e['per_seed'])}"


def _small(x: Any) -> str:
    return "-" if x is None else f"{x:.2g}"


# --------------------------------------------------------------------------- step sections


def _step_section(step: dict[str, Any], figures: "_Figures") -> str:
    doc = step["doc"]
    head = [f"<h2 id='step-{_e(step['id'])}'>{_e(step['title'])}</h2>",
            f"<p><b>Question.</b> {_e(step['question'])}</p>",
            f"<p class='note'>{step['executed']} run, {step['reused']} reused, {step['wall_s']:.0f} s. "
            f"This step alone: <code>{_e(step['command'])}</code></p>"]
    if step["kind"] == "compare":
        body = _compare(step, doc, figures)
    elif step["kind"] == "ablate":
        body = _ablate(step, doc, figures)
    else:
        body = _profile(step, doc, figures)
    return "\n".join(head + body)


def _telemetry(summary: dict[str, Any]) -> str:
    ratio, share = summary.get("perturb_ratio") or {}, summary.get("scope_share") or {}
    return f"{_small(ratio.get('median'))}\u00a0/ {_pct(share.get('median'))}" if ratio.get("median") is not None else "-"


def _compare(step: dict[str, Any], doc: dict[str, Any], figures: "_Figures") -> list[str]:
    from superpos_cli.experiments.reproduce import power_note

    accuracy = doc["metric"] == "epochs_to_target"
    if accuracy:
        headers = ["arm", "final accuracy [CI]", f"epochs to {doc['target']:.0%} [CI]", "reached", "epoch s",
                   "overhead", "break-even", "achieved speedup", "time ratio", "epochs ratio CI", "p", "verdict",
                   "perturb/step, scope"]
    else:
        headers = ["arm", "mean train loss [CI]", "loss change", "loss ratio CI", "epoch s", "overhead", "p",
                   "verdict", "perturb/step, scope"]
    rows, classes = [], []
    for arm in doc["arms"]:
        if accuracy:
            acc = arm["final_accuracy"]
            rows.append([arm["name"], _WithCI((_pct(acc["mean"]), _ci(acc["ci"], lambda x: f"{x:.1%}"))), _epochs(arm),
                         _reached(arm), _num(arm["epoch_time_s"]["median"], 3), _pct(arm["overhead"], True),
                         _num(arm["break_even_speedup"]), _num(arm["achieved_speedup"]),
                         _num(arm["time_to_target_ratio"]), _ci(arm["epochs_ratio_ci"], lambda x: f"{x:.2f}"),
                         _small(arm["p_value"]), arm["verdict"] or "reference", _telemetry(arm)])
        else:
            loss = arm["mean_train_loss"]
            rows.append([arm["name"], _WithCI((_num(loss["mean"], 4), _ci(loss["ci"], lambda x: f"{x:.4f}"))),
                         _pct(arm["loss_change"], True), _ci(arm["loss_ratio_ci"], lambda x: f"{x:.4f}"),
                         _num(arm["epoch_time_s"]["median"], 3), _pct(arm["overhead"], True), _small(arm["p_value"]),
                         arm["verdict"] or "reference", _telemetry(arm)])
        classes.append("")
    for ref in (doc.get("paper") or {}).get("rows", []):
        if accuracy:
            rows.append([ref["name"], _pct(ref.get("final_accuracy")), _num(ref.get("epochs_to_target"), 1), "",
                         "", _pct(ref.get("overhead"), True), _num(ref.get("break_even_speedup")),
                         _num(ref.get("achieved_speedup")), _num(ref.get("time_to_target_ratio")), "", "", "", ""])
        else:
            rows.append([ref["name"], _num(ref.get("mean_train_loss"), 4), _pct(ref.get("loss_change"), True),
                         "", "", "", "", "", ""])
        classes.append("paper")
    out = [_table(headers, rows, classes)]
    notes = [f"{a['name']} vs {doc['arms'][0]['name']}:{power_note(a)}" for a in doc["arms"][1:] if power_note(a)]
    if notes:
        out.append("<p class='note'>" + "<br>".join(_e(n) for n in notes) + "</p>")
    out.append("<p class='note'>perturb/step: median over evaluation windows of ||lr lambda Q|| / ||Adam's step|| "
               "on the scope, and the share of coordinates the scope selects (telemetry).</p>")
    title = f"{doc['task']}: {' vs '.join(a['name'] for a in doc['arms'])} ({len(doc['seeds'])} seeds)"
    figs = [figures.convergence(f"{step['id']}-curves", doc["arms"],
                                "validation accuracy" if accuracy else "training loss",
                                doc["target"] if accuracy else None, title)]
    figs.append(figures.telemetry(f"{step['id']}-telemetry", doc))
    out.append(_figs(figs))
    return out


def _ablate(step: dict[str, Any], doc: dict[str, Any], figures: "_Figures") -> list[str]:
    accuracy = doc["metric"] == "epochs_to_target"
    # No overhead column: a sweep's cells may be trials stored by another step, run at
    # another time, so their epoch times are not side by side (the table step's are).
    headers = ["cell", "final accuracy [CI]", f"epochs to {doc['target']:.0%} [CI]", "reached",
               "epochs ratio CI", "p (Holm)", "verdict", "perturb/step, scope"] if accuracy else \
        ["cell", "mean train loss [CI]", "loss change", "p (Holm)", "verdict", "perturb/step, scope"]
    rows = []
    for cell in doc["cells"]:
        name = cell["label"] + (" (control)" if cell["control"] else "") + (" (best)" if cell.get("best") else "")
        if accuracy:
            acc = cell["final_accuracy"]
            rows.append([name, _WithCI((_pct(acc["mean"]), _ci(acc["ci"], lambda x: f"{x:.1%}"))), _epochs(cell),
                         _reached(cell),
                         _ci(cell["epochs_ratio_ci"], lambda x: f"{x:.2f}"),
                         f"{_small(cell['p_value'])} ({_small(cell.get('p_holm'))})",
                         cell["verdict"] or "control", _telemetry(cell)])
        else:
            loss = cell["mean_train_loss"]
            rows.append([name, _WithCI((_num(loss["mean"], 4), _ci(loss["ci"], lambda x: f"{x:.4f}"))),
                         _pct(cell["loss_change"], True),
                         f"{_small(cell['p_value'])} ({_small(cell.get('p_holm'))})", cell["verdict"] or "control",
                         _telemetry(cell)])
    swept = [name for name, values in doc["axes"].items() if len(values) > 1] or list(doc["axes"])
    # The 2x2 and the noise grid read best with the non-optimizer axis on x.
    axis = next((a for a in swept if a in ("attention", "noise")), swept[0])
    metric, label = ("epochs_to_target", f"epochs to {doc['target']:.0%} (median, 95% CI)") if accuracy else \
        ("mean_train_loss", "mean training loss (mean, 95% CI)")
    figs = [figures.sweep(f"{step['id']}-sweep", doc["cells"], axis, metric, label)]
    if accuracy:
        figs.append(figures.sweep(f"{step['id']}-accuracy", doc["cells"], axis, "final_accuracy",
                                  "final validation accuracy (mean, 95% CI)"))
    figs.append(figures.convergence(f"{step['id']}-curves", [{"name": c["label"], "curves": c["curves"]}
                                                             for c in doc["cells"]],
                                    "validation accuracy" if accuracy else "training loss",
                                    doc["target"] if accuracy else None,
                                    f"{doc['task']}: {doc['base']} ({len(doc['seeds'])} seeds)"))
    return [_table(headers, rows), _figs(figs)]


def _profile(step: dict[str, Any], doc: dict[str, Any], figures: "_Figures") -> list[str]:
    from superpos_cli.experiments.reproduce import cost_growth

    out = []
    circuit = doc.get("circuit", [])
    if circuit:
        backends = list(dict.fromkeys(r["backend"] for r in circuit))
        grid: dict[tuple[int, int], dict[str, Any]] = {}
        for r in circuit:
            grid.setdefault((r["n_qubits"], r["depth"]), {})[r["backend"]] = r
        rows = [[f"{q} x {d}"] + [f"{_small(cells[b]['median'])} s ({_small(cells[b]['circuits_per_s'])}/s)"
                                  if b in cells else "-" for b in backends] for (q, d), cells in sorted(grid.items())]
        out += ["<p>Circuit evaluation: seconds per call (circuits per second), median over repeats; batch "
                + _e(", ".join(f"{b} {next(r['batch'] for r in circuit if r['backend'] == b)}" for b in backends))
                + ".</p>", _table(["qubits x depth", *backends], rows)]
    attention = doc.get("attention", [])
    if attention:
        backends = [b for b in dict.fromkeys(r["backend"] for r in attention) if b != "classical"]
        grid = {}
        for r in attention:
            grid.setdefault((r["n_qubits"], r["depth"]), {})[r["backend"]] = r
        shape = attention[0]["shape"]
        rows = [[f"{q} x {d}", _small(cells.get("classical", {}).get("median"))]
                + [f"{_num(cells[b]['ratio_vs_classical'])}x ({_small(cells[b]['median'])} s)" if b in cells else "-"
                   for b in backends] for (q, d), cells in sorted(grid.items())]
        out += [f"<p>Quantum attention forward+backward at B={shape['B']} H={shape['H']} T={shape['T']} "
                f"d_k={shape['d_k']}: ratio to classical attention timed alongside.</p>",
                _table(["qubits x depth", "classical s", *backends], rows)]
    growth = cost_growth(doc)
    if growth:
        rows = [[name, _num(g["per_qubit"]), g["at_depth"], _num(g["per_layer"]), g["at_qubits"]]
                for name, g in growth.items()]
        out += ["<p>Growth: the factor per extra qubit and per extra layer (least squares on log time).</p>",
                _table(["figure", "x per qubit", "at depth", "x per layer", "at qubits"], rows)]
    out.append(_figs([figures.cost(f"{step['id']}-cost", doc)]))
    return out


def _figs(images: list[str | None]) -> str:
    return "<div class='figs'>" + "".join(i for i in images if i) + "</div>"


# --------------------------------------------------------------------------- figures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    save_with(path, lambda handle: fig.savefig(handle, format="png", dpi=120, bbox_inches="tight"), "--out-dir")


class _Figures:
    """Draws each figure into a scratch folder and returns it as an <img> with a data URI."""

    def __init__(self, folder: Path):
        self.folder = folder

    def _embed(self, name: str, draw: Callable[[Path], None], full: bool = False) -> str | None:
        """``full``: a figure of two panels, given the page's whole width."""
        path = self.folder / f"{name}.png"
        draw(path)
        if not path.is_file():
            return None
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        cls = " class='full'" if full else ""
        return f"<figure{cls}><img alt='{_e(name)}' src='data:image/png;base64,{data}'></figure>"

    def convergence(self, name: str, arms: list[dict[str, Any]], ylabel: str, target: float | None,
                    title: str) -> str | None:
        from superpos_cli.experiments.plots import convergence_plot

        return self._embed(name, lambda p: convergence_plot(arms, p, ylabel, target=target, title=title))

    def sweep(self, name: str, cells: list[dict[str, Any]], axis: str, metric: str, ylabel: str) -> str | None:
        from superpos_cli.experiments.plots import sweep_plot

        return self._embed(name, lambda p: sweep_plot(cells, axis, p, metric, ylabel))

    def telemetry(self, name: str, doc: dict[str, Any]) -> str | None:
        """perturb_ratio over training, median over seeds per arm (None: no telemetry)."""
        series: dict[str, list[list[tuple[float, float]]]] = {}
        for trial in doc.get("trials", []):
            evals = (trial.get("result") or {}).get("evals", [])
            points = [(e["epoch"], e["perturb_ratio"]) for e in evals if e.get("perturb_ratio")]
            if points:
                series.setdefault(trial["arm"], []).append(points)
        if not series:
            return None

        def draw(path: Path) -> None:
            import numpy as np

            from superpos_cli.experiments.plots import on_common_grid

            plt = _pyplot()
            fig, ax = plt.subplots(figsize=(7, 4.2))
            for arm, runs in series.items():
                x, y = on_common_grid(runs)  # (G,), (seeds, G)
                ax.plot(x, np.median(y, axis=0), marker=".", label=arm)
            ax.set_yscale("log")
            ax.set_xlabel("epoch")
            ax.set_ylabel("||lr lambda Q|| / ||Adam step|| (median over seeds)")
            ax.set_title("perturbation size relative to Adam's step")
            ax.grid(alpha=0.3)
            ax.legend(frameon=False)
            _save(fig, path)
            plt.close(fig)

        return self._embed(name, draw)

    def cost(self, name: str, doc: dict[str, Any]) -> str | None:
        """Left: circuit seconds per call vs qubits per backend (one line per depth
        for fourier and torch); right: attention's ratio to classical vs qubits."""
        circuit, attention = doc.get("circuit", []), doc.get("attention", [])
        if not circuit and not attention:
            return None

        def draw(path: Path) -> None:
            plt = _pyplot()
            fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.4), constrained_layout=True)
            for (backend, depth) in dict.fromkeys((r["backend"], r["depth"]) for r in circuit):
                rows = sorted((r["n_qubits"], r["median"] / r["batch"]) for r in circuit
                              if r["backend"] == backend and r["depth"] == depth)
                left.plot(*zip(*rows), marker="o", label=f"{backend} depth {depth}")
            left.set_yscale("log")
            left.set_xlabel("qubits")
            left.set_ylabel("seconds per circuit")
            left.set_title("circuit evaluation")
            left.grid(alpha=0.3)
            left.legend(frameon=False, fontsize=7, ncol=2)
            for (backend, depth) in dict.fromkeys((r["backend"], r["depth"]) for r in attention
                                                  if r["backend"] != "classical"):
                rows = sorted((r["n_qubits"], r["ratio_vs_classical"]) for r in attention
                              if r["backend"] == backend and r["depth"] == depth)
                right.plot(*zip(*rows), marker="o", label=f"{backend} depth {depth}")
            right.set_yscale("log")
            right.set_xlabel("qubits")
            right.set_ylabel("x classical attention (fwd+bwd)")
            right.set_title("quantum attention")
            right.grid(alpha=0.3)
            right.legend(frameon=False, fontsize=7, ncol=2)
            _save(fig, path)
            plt.close(fig)

        return self._embed(name, draw, full=True)
