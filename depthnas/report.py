"""`report.md` with plots for a search run: ranking scatter, lambda, training curves."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .evaluation import at_constant_level, learned_nothing  # noqa: E402
from .io import atomic_write, atomic_write_text, read_jsonl  # noqa: E402


def _save(fig, path: Path) -> None:
    """Whole or not at all, as every file a run writes."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def _records(out: Path, phase: str) -> tuple[list[dict[str, Any]], bool]:
    """Step logs of `phase`, and False; a run too short to log a step falls back to
    its per-epoch means (train_loss, train_reg, train_lambda), and True."""
    path = out / "metrics.jsonl"
    if not path.is_file():
        return [], False
    rows = [r for r in read_jsonl(path) if r.get("phase") == phase]
    steps = [r for r in rows if "loss" in r]
    if steps:
        return steps, False
    return [{"step": r["step"], **{k[len("train_"):]: v for k, v in r.items() if k.startswith("train_")}}
            for r in rows if "train_loss" in r], True


def _scatter(out: Path, archs: list[dict[str, Any]], ranking: dict | None, score: str) -> str:
    fig, ax = plt.subplots(figsize=(5, 4))
    groups = (("landmark", "tab:orange", lambda a: a["landmark"]),
              ("random sample (ranked)", "tab:blue", lambda a: a["role"] == "rank"),
              ("searched top-K", "tab:green", lambda a: not a["landmark"] and a["role"] != "rank"))
    for label, colour, member in groups:
        pts = [a for a in archs if member(a)]
        if pts:
            ax.scatter([a["val_loss"] for a in pts], [a["supernet_score"] for a in pts],
                       c=colour, label=label, s=25)
    ax.set_xlabel(f"stand-alone validation {score}")
    ax.set_ylabel(f"super-net validation {score}")
    title = "super-net vs stand-alone"
    if ranking:
        title += f"\nKendall tau {ranking['kendall_tau']:+.3f} on {ranking['n']} random archs"
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, out / "ranking.png")
    return "ranking.png"


def _curves(out: Path) -> tuple[str | None, str | None]:
    rows, per_epoch = _records(out, "supernet")
    if not rows:
        return None, None
    steps = [r["step"] for r in rows]
    style = {"marker": "o", "markersize": 3} if len(rows) < 20 else {}
    xlabel = "step (epoch means)" if per_epoch else "step"
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(steps, [r["loss"] for r in rows], label="super-net loss L_s", **style)
    if any("reg" in r for r in rows):
        reg = [(r["step"], r["reg"]) for r in rows if "reg" in r]
        ax.plot(*zip(*reg), label="landmark hinge R", alpha=0.7, **style)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("loss")
    # symlog: the hinge is 0 on steps whose pair is in order, which a log scale drops
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, out / "training.png")
    lam_png = None
    if any("lambda" in r for r in rows):
        fig, ax = plt.subplots(figsize=(5, 2.6))
        ax.plot(steps, [r.get("lambda", 0.0) for r in rows], **style)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("lambda")
        fig.tight_layout()
        _save(fig, out / "lambda.png")
        lam_png = "lambda.png"
    return "training.png", lam_png


def _count(n: int | None) -> str:
    return "unknown" if n is None else f"{n:,}"


def warnings_of(summary: dict[str, Any]) -> list[str]:
    """What is wrong with a search's results: printed at its end, and listed in
    report.md for its reader."""
    archs, ranking = summary["architectures"], summary.get("ranking")
    constant = summary.get("constant_prediction_loss")
    notes = []
    dead = [a for a in archs if learned_nothing(a["val_loss"], constant)]
    if dead:
        notes.append(f"{len(dead)} of {len(archs)} architectures trained stand-alone scored no "
                     f"better than a constant prediction ({constant:.5f}): they learned nothing "
                     "(marked * in the report's table); more --standalone-epochs or a lower "
                     "--set standalone.lr=... help")
    best = next((a for a in archs if a.get("arch") == (summary.get("best") or {}).get("string")), {})
    if best.get("ignores_input"):
        notes.append("the best architecture found has a dead cell: its output is the same for "
                     "every image. Every candidate did, or scored worse than a constant; search "
                     "longer (--epochs, search.top_k)")
    level = summary.get("search_constant_loss")
    level = constant if level is None else level  # the level of the batches it scored on
    if summary.get("flat_picks") and level is not None:
        notes.append(f"{summary['flat_picks']} of the {summary['picks']} architectures the search "
                     "picked ignored their input in the super-net (at a constant prediction's "
                     f"level, {level:.5f}, or cut off by a dead cell): picked for want of live "
                     "ones; train the super-net longer (--epochs) or search more candidates")
    if ranking is None:
        notes.append(f"no ranking measured: it needs at least 2 random architectures trained "
                     f"stand-alone, and `search.rank_samples` is {summary.get('rank_samples', 0)} "
                     "(the paper ranks 20)")
    else:
        if ranking.get("non_finite"):
            notes.append(f"{ranking['non_finite']} ranking sample(s) scored non-finite in the "
                         "super-net (diverged) and are left out of the ranking")
        if not math.isfinite(ranking["kendall_tau"]):
            notes.append("the ranking is undefined: fewer than 2 samples are left, or every "
                         "super-net score (or every stand-alone loss) among them is tied, as "
                         "for paths that all predict a constant")
        elif ranking["n"] < 10:
            n = ranking["n"]
            notes.append(f"with n = {n}, Kendall tau moves in steps of {4 / (n * (n - 1)):.2f}: "
                         "a rough figure")
    return notes


def write_report(out: str | Path, summary: dict[str, Any]) -> Path:
    out = Path(out)
    archs = summary["architectures"]
    ranking = summary.get("ranking")
    best = summary["best"]
    score = summary.get("score_name", "loss")  # results.json of older runs lack it
    constant = summary.get("constant_prediction_loss")
    lines = [f"# depthnas search report: {summary['space']}", "",
             f"- landmark regularization: {'on' if summary['landmarks'] else 'off (plain SPOS)'}",
             f"- wall time: {summary['elapsed_s'] / 60:.1f} min",
             f"- best architecture: `{best['string']}` (stand-alone validation {score} "
             f"{best['val_loss']:.5f}, {_count(best['params'])} parameters, found in {best['found_in']})"]
    if constant is not None:
        lines.append(f"- a constant prediction's validation {score}: {constant:.5f} (a model "
                     "that learned nothing scores about this)")
    lines.append("")
    notes = warnings_of(summary)
    if notes:
        lines += ["## Warnings", "", *(f"- {n}" for n in notes), ""]
    if ranking:
        lines += ["## Ranking of the random sample (`search.rank_samples`; no landmark, no searched top-K)", "",
                  "| n | Kendall tau | sparse Kendall tau (threshold) | Spearman rho | best predicted, percentile |",
                  "|---|---|---|---|---|",
                  f"| {ranking['n']} | {ranking['kendall_tau']:+.3f} | "
                  f"{ranking['sparse_kendall_tau']:+.3f} ({ranking['sparse_threshold']:.2g}) | "
                  f"{ranking['spearman_rho']:+.3f} | {ranking['top_percentile']:.0f}% |", ""]
    lines += [f"![ranking]({_scatter(out, archs, ranking, score)})", ""]
    training, lam = _curves(out)
    if training:
        lines += ["## Super-net training", "", f"![training]({training})", ""]
    if lam:
        lines += [f"![lambda]({lam})", ""]
    search_constant = summary.get("search_constant_loss")
    lines += ["## Architectures trained stand-alone", "",
              "Roles: `landmark`, trained first to regularize the super-net; `top-N`, picked by "
              "the search after iteration N; `rank`, a random sample that only measures the "
              "ranking.", "",
              f"| architecture | role | stand-alone {score} | super-net {score} |", "|---|---|---|---|"]
    for a in sorted(archs, key=lambda r: r["val_loss"]):
        arch = a["arch"].replace("|", "\\|")  # NB201 strings: a bare | splits the table cell
        dead = " *" if learned_nothing(a["val_loss"], constant) else ""
        flat = " *" if at_constant_level(a["supernet_score"], search_constant) else ""
        cut = ""
        if a.get("ignores_input"):  # by its architecture: a dead cell cuts the input off
            dead, flat, cut = " *", " *", " (dead cell)"
        table = " (table)" if a.get("source") == "truth table" else ""
        lines.append(f"| `{arch}`{cut} | {a['role']} | {a['val_loss']:.5f}{dead}{table} | "
                     f"{a['supernet_score']:.5f}{flat} |")
    if constant is not None or any(a.get("ignores_input") for a in archs):
        lines += ["", "\\* at a constant prediction's level, or a dead cell (the output ignores "
                      "the input): the model (or super-net path) learned nothing, and its order "
                      "among such scores is noise"]
    if any(a.get("source") == "truth table" for a in archs):
        lines += ["", "(table): looked up in `search.truth_table`, not trained in this run"]
    path = atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    return path
