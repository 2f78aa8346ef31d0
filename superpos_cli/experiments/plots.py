"""Plots a person would rather look at than read (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from superpos_cli.errors import BadInput
from superpos_cli.fileio import save_with


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# Arms often train to the same curve (Adam and SGD do under the paper's rule): each
# arm gets its own dash pattern and the later ones a thinner line, so an arm hidden
# under another still shows.
LINE_STYLES = ("-", "--", ":", "-.", (0, (5, 2, 1, 2)), (0, (1, 3)))


def _subplots(**kw):
    return _figure().subplots(figsize=(7, 4.2), **kw)


def _save(fig, path: Path) -> None:
    # Atomic (complete or absent); the format follows the name's suffix, as
    # savefig(path) would choose it, since a handle has no suffix to go by.
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    try:
        save_with(path, lambda handle: fig.savefig(handle, format=fmt, dpi=120, bbox_inches="tight"), "--plot")
    except ValueError as err:  # matplotlib: a format it does not know
        raise BadInput(f"--plot {path}: {err}") from None


def on_common_grid(curves: list[list[tuple[float, float]]]) -> tuple[np.ndarray, np.ndarray]:
    """Seeds' curves (epoch, value) on one epoch grid: x (G,), y (seeds, G).

    Runs evaluate densely until they reach the target and sparsely after
    (``evals_after_target``), so seeds' points differ; each curve is interpolated
    linearly onto the union of their epochs, within the span every curve covers.
    """
    start, end = max(c[0][0] for c in curves), min(c[-1][0] for c in curves)
    x = np.array(sorted({p[0] for c in curves for p in c if start <= p[0] <= end}))
    y = np.array([np.interp(x, [p[0] for p in c], [p[1] for p in c]) for c in curves], dtype=float)
    return x, y


def convergence_plot(arms: list[dict[str, Any]], path: Path, ylabel: str, target: float | None = None,
                     title: str = "") -> None:
    """One line per arm (median over seeds) with a band from the seeds' min to max.

    ``arms`` carry ``name`` and ``curves``: per seed a list of (epoch, value).
    """
    plt = _figure()
    fig, ax = _subplots()
    for k, arm in enumerate(arms):
        curves = [c for c in arm["curves"] if c]
        if not curves:
            continue
        x, y = on_common_grid(curves)  # (G,), (seeds, G)
        line, = ax.plot(x, np.median(y, axis=0), label=arm["name"], ls=LINE_STYLES[k % len(LINE_STYLES)],
                        lw=max(2.2 - 0.3 * k, 1.0))
        ax.fill_between(x, y.min(axis=0), y.max(axis=0), color=line.get_color(), alpha=0.12, lw=0)
    if target is not None:
        ax.axhline(target, color="grey", ls="--", lw=1, label=f"target {target:.0%}")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    _save(fig, path)
    plt.close(fig)


def sweep_plot(cells: list[dict[str, Any]], axis: str, path: Path, metric: str, ylabel: str) -> None:
    """``metric`` (median with its CI band) against the swept ``axis``.

    ``cells`` carry ``axes`` (dict), ``metric`` values under ``metric``: {median|mean, ci}.
    Cells that differ in other axes become separate lines.
    """
    plt = _figure()
    fig, ax = _subplots()
    groups: dict[str, list[dict[str, Any]]] = {}
    for cell in cells:
        others = ", ".join(f"{k}={v}" for k, v in cell["axes"].items() if k != axis)
        groups.setdefault(others, []).append(cell)
    # Numbers in their order; names (perturbations, noise channels) as the grid lists
    # them, which puts the control's value where the user's flag put it.
    numeric = all(_sort_key(c["axes"][axis])[0] == 0 for c in cells)
    for k, (label, members) in enumerate(groups.items()):
        if numeric:
            members.sort(key=lambda c: _sort_key(c["axes"][axis]))
        xs = [str(c["axes"][axis]) for c in members]
        center = [c[metric].get("median", c[metric].get("mean")) for c in members]
        low = [c[metric]["ci"][0] for c in members]
        high = [c[metric]["ci"][1] for c in members]
        y = np.array([np.nan if v is None else v for v in center], dtype=float)
        lo = np.array([np.nan if v is None else v for v in low], dtype=float)
        hi = np.array([np.nan if v is None else v for v in high], dtype=float)
        line, = ax.plot(xs, y, marker="o", label=label or None, ls=LINE_STYLES[k % len(LINE_STYLES)])
        ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.15, lw=0)
    ax.set_xlabel(axis)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(groups) > 1:  # one line needs no legend: the y label names it
        ax.legend(frameon=False)
    _save(fig, path)
    plt.close(fig)


def _sort_key(value: Any) -> tuple:
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))
