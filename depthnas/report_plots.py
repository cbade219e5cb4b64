"""The figures of a search's report.md: the ranking scatter, the super-net's training
curves and the landmark weight lambda over the steps."""
from __future__ import annotations

from pathlib import Path
from typing import Any

# Figures drawn without pyplot: no backend to choose for the whole process (a notebook
# that imports this keeps its own), no figure left open in a global registry.
from matplotlib.figure import Figure

from .io import atomic_write, read_jsonl
from .terminal import figure


def _save(fig: Figure, path: Path) -> None:
    """Whole or not at all, as every file a run writes."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))


def _log(out: Path) -> list[dict[str, Any]]:
    """The run's metrics.jsonl, read once for all its plots ([] without one)."""
    path = out / "metrics.jsonl"
    return read_jsonl(path) if path.is_file() else []


def _epoch_means(log: list[dict[str, Any]], phase: str) -> list[dict[str, Any]]:
    """Per-epoch means of `phase` (train_loss, train_reg, ...) under their step names."""
    return [{"step": r["step"], **{k[len("train_"):]: v for k, v in r.items() if k.startswith("train_")}}
            for r in log if r.get("phase") == phase and "train_loss" in r]


def _records(log: list[dict[str, Any]], phase: str) -> tuple[list[dict[str, Any]], bool]:
    """Step logs of `phase`, and False; a run too short to log a step falls back to
    its per-epoch means (train_loss, train_reg, train_lambda), and True."""
    steps = [r for r in log if r.get("phase") == phase and "loss" in r]
    return (steps, False) if steps else (_epoch_means(log, phase), True)


def ranking_scatter(out: Path, archs: list[dict[str, Any]], ranking: dict | None, score: str,
                    levels: tuple[float | None, float | None] = (None, None)) -> str:
    """ranking.png: each architecture's super-net score against its stand-alone loss,
    with a constant prediction's levels (stand-alone, super-net) as lines."""
    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    # by role, as the table lists them (a pick that joined the landmarks is a pick);
    # the ranked sample filled, as the Kendall tau is measured on it alone
    groups = (("landmark", "tab:orange", False, lambda a: a["role"] == "landmark"),
              ("random sample (ranked)", "tab:blue", True, lambda a: a["role"] == "rank"),
              ("searched top-K", "tab:green", False, lambda a: a["role"].startswith("top")))
    for label, colour, filled, member in groups:
        pts = [a for a in archs if member(a)]
        if pts:
            ax.scatter([a["val_loss"] for a in pts], [a["supernet_score"] for a in pts],
                       label=label, s=25, edgecolors=colour, facecolors=colour if filled else "none")
    standalone, supernet = levels
    if standalone is not None:
        ax.axvline(standalone, color="grey", lw=0.8, ls="--", label="constant prediction")
    if supernet is not None:
        ax.axhline(supernet, color="grey", lw=0.8, ls="--")
    ax.set_xlabel(f"stand-alone validation {score} (lower is better)")
    ax.set_ylabel(f"final super-net {score} (lower is better)")
    title = "super-net vs stand-alone"
    if ranking:
        title += f"\nKendall tau {figure(ranking['kendall_tau'])} on the {ranking['n']} random samples (filled)"
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, out / "ranking.png")
    return "ranking.png"


def _iteration_ends(log: list[dict[str, Any]]) -> list[int]:
    """The super-net steps at which a search iteration ended and the next began: the
    last step logged before each search record but the final one."""
    ends, last = [], None
    for r in log:
        if r.get("phase") == "supernet" and "step" in r:
            last = r["step"]
        elif r.get("phase") == "search" and last is not None and last not in ends:
            ends.append(last)
    return ends[:-1]


def training_curves(out: Path, schedule: dict[str, Any] | None = None) -> tuple[str | None, str | None]:
    """training.png, and lambda.png for a regularized run; None for what was not drawn."""
    log = _log(out)
    rows, per_epoch = _records(log, "supernet")
    if not rows:
        return None, None
    _training_plot(out / "training.png", log, rows, per_epoch)
    if not (schedule or any("lambda" in r for r in rows)):
        return "training.png", None
    _lambda_plot(out / "lambda.png", rows, per_epoch, schedule)
    return "training.png", "lambda.png"


def _training_plot(path: Path, log: list[dict[str, Any]], rows: list[dict[str, Any]],
                   per_epoch: bool) -> None:
    steps = [r["step"] for r in rows]
    style = {"marker": "o", "markersize": 3} if len(rows) < 20 else {}
    reg = [(r["step"], r["reg"]) for r in rows if "reg" in r]
    # L_s on a linear axis of its own (a loss within one decade gets no ticks on a log
    # one); the hinge below it on symlog, as it is 0 on steps whose pair is in order
    fig = Figure(figsize=(5, 4.4 if reg else 3.2))
    axes = fig.subplots(2 if reg else 1, 1, sharex=True, squeeze=False)
    axes[0][0].plot(steps, [r["loss"] for r in rows], lw=0.8, label="logged steps (one path each)"
                    if not per_epoch else None, **style)
    if not per_epoch:  # a step's loss is one random path's: the epoch means show the trend
        means = _epoch_means(log, "supernet")
        if means:
            axes[0][0].plot([r["step"] for r in means], [r["loss"] for r in means],
                            color="black", lw=1.4, label="epoch means")
    axes[0][0].set_ylabel("super-net loss L_s")
    if reg:
        axes[1][0].plot(*zip(*reg), color="tab:orange", **style)
        axes[1][0].set_yscale("symlog", linthresh=1e-3)
        axes[1][0].set_ylabel("landmark hinge R")
    ends = _iteration_ends(log)
    for row in axes:
        for i, step in enumerate(ends):
            row[0].axvline(step, color="grey", lw=0.8, ls="--",
                           label="a search iteration ends" if i == 0 else None)
    if ends or not per_epoch:
        axes[0][0].legend(fontsize=7)
    axes[0][0].set_title(f"super-net training, {len(ends) + 1} iteration(s)", fontsize=9)
    axes[-1][0].set_xlabel("step (epoch means)" if per_epoch else "step")
    fig.tight_layout()
    _save(fig, path)


def _lambda_plot(path: Path, rows: list[dict[str, Any]], per_epoch: bool,
                 schedule: dict[str, Any] | None) -> None:
    fig = Figure(figsize=(5, 2.6))
    ax = fig.subplots()
    if schedule:  # every step's weight, as the regularizer computes it
        ax.plot(schedule["steps"], schedule["lambda"], label="schedule")
        ax.set_title(f"{schedule['schedule']}, lambda_max {schedule['lambda_max']:g}", fontsize=9)
    logged = [(r["step"], r["lambda"]) for r in rows if "lambda" in r]
    if logged:
        ax.plot(*zip(*logged), "o", markersize=3, label="logged (epoch means)" if per_epoch
                else "logged")
    ax.set_xlabel("step")
    ax.set_ylabel("lambda")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
