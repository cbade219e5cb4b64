"""`report.md` with plots for a search run: ranking scatter, lambda, training curves."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .io import read_jsonl  # noqa: E402


def _records(out: Path, phase: str) -> list[dict[str, Any]]:
    """Step logs of `phase`; a run too short to log a step falls back to its
    per-epoch means (train_loss, train_reg, train_lambda)."""
    path = out / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = [r for r in read_jsonl(path) if r.get("phase") == phase]
    steps = [r for r in rows if "loss" in r]
    if steps:
        return steps
    return [{"step": r["step"], **{k[len("train_"):]: v for k, v in r.items() if k.startswith("train_")}}
            for r in rows if "train_loss" in r]


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
    fig.savefig(out / "ranking.png", dpi=110)
    plt.close(fig)
    return "ranking.png"


def _curves(out: Path) -> tuple[str | None, str | None]:
    rows = _records(out, "supernet")
    if not rows:
        return None, None
    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(steps, [r["loss"] for r in rows], label="super-net loss L_s")
    if any("reg" in r for r in rows):
        reg = [(r["step"], r["reg"]) for r in rows if "reg" in r]
        ax.plot(*zip(*reg), label="landmark hinge R", alpha=0.7)
    ax.set_xlabel("step")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "training.png", dpi=110)
    plt.close(fig)
    lam_png = None
    if any("lambda" in r for r in rows):
        fig, ax = plt.subplots(figsize=(5, 2.6))
        ax.plot(steps, [r.get("lambda", 0.0) for r in rows])
        ax.set_xlabel("step")
        ax.set_ylabel("lambda")
        fig.tight_layout()
        fig.savefig(out / "lambda.png", dpi=110)
        plt.close(fig)
        lam_png = "lambda.png"
    return "training.png", lam_png


def _count(n: int | None) -> str:
    return "unknown" if n is None else f"{n:,}"


def write_report(out: str | Path, summary: dict[str, Any]) -> Path:
    out = Path(out)
    archs = summary["architectures"]
    ranking = summary.get("ranking")
    best = summary["best"]
    score = summary.get("score_name", "loss")  # results.json of older runs lack it
    lines = [f"# depthnas search report: {summary['space']}", "",
             f"- landmark regularization: {'on' if summary['landmarks'] else 'off (plain SPOS)'}",
             f"- wall time: {summary['elapsed_s'] / 60:.1f} min",
             f"- best architecture: `{best['string']}` (stand-alone validation {score} "
             f"{best['val_loss']:.5f}, {_count(best['params'])} parameters, found in {best['found_in']})",
             ""]
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
    lines += ["## Architectures trained stand-alone", "",
              f"| architecture | role | stand-alone {score} | super-net {score} |", "|---|---|---|---|"]
    for a in sorted(archs, key=lambda r: r["val_loss"]):
        arch = a["arch"].replace("|", "\\|")  # NB201 strings: a bare | splits the table cell
        lines.append(f"| `{arch}` | {a['role']} | {a['val_loss']:.5f} | {a['supernet_score']:.5f} |")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
