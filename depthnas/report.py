"""A search's report.md: what the run found, what is wrong with it (the warnings it
also prints), its ranking and every architecture trained; figures by report_plots."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .degenerate import (candidate_order, inverted_note, learned_nothing, supernet_level,
                         unlearned_note)
from .io import atomic_write_text
from .report_plots import ranking_scatter, training_curves
from .terminal import figure, listed, took


def _roles(archs: list[dict[str, Any]]) -> str:
    """The roles the table holds (a plain SPOS run has no landmark)."""
    held = {a["role"] if not a["role"].startswith("top") else "top" for a in archs}
    said = [text for role, text in (
        ("landmark", "`landmark`, trained first to regularize the super-net"),
        ("top", "`top-N`, picked by the search after iteration N"),
        ("rank", "`rank`, a random sample that only measures the ranking")) if role in held]
    return "Roles: " + "; ".join(said) + "."


def _count(n: int | None) -> str:
    return "unknown" if n is None else f"{n:,}"


def _search_level(summary: dict[str, Any]) -> float | None:
    return supernet_level(summary.get("search_constant_loss"), summary.get("constant_prediction_loss"))


# Architectures the paper ranks against stand-alone training: 20 depth decoders,
# 200 CIFAR-10 cells (REFERENCE section 5).
_PAPER_RANK_SAMPLES = {"depth": 20, "classification": 200}


def _task_of(summary: dict[str, Any]) -> str:
    from depthnas.spaces import get_space
    return get_space(summary["space"]).task_kind


def warnings_of(summary: dict[str, Any]) -> list[str]:
    """What is wrong with a search's results: printed at its end, and listed in
    report.md for its reader."""
    ranking = summary.get("ranking")
    return _run_warnings(summary) + (_no_ranking(summary) if ranking is None else
                                     _ranking_warnings(summary, ranking))


def _run_warnings(summary: dict[str, Any]) -> list[str]:
    """Of the data, the stand-alone trainings and the search's picks."""
    archs = summary["architectures"]
    constant = summary.get("constant_prediction_loss")
    notes = []
    skipped = summary.get("skipped_samples") or []
    if skipped:
        notes.append(f"{len(skipped)} sample(s) with bad input were skipped (--skip-bad; listed in "
                     f"splits.json): {listed(skipped, sep='; ')}")
    dead = [a for a in archs if learned_nothing(a["val_loss"], constant)]
    if dead:
        notes.append(f"{len(dead)} of {len(archs)} architectures trained stand-alone scored no "
                     f"better than a constant prediction ({constant:.5f}): they learned nothing "
                     "(marked * in the report's table); more --standalone-epochs or a lower "
                     "--set standalone.lr=... help")
    best = next((a for a in archs if a.get("arch") == (summary.get("best") or {}).get("string")), {})
    note = inverted_note(best.get("inverted"), "validation images")
    if note and not learned_nothing(best["val_loss"], constant):  # that is said above
        notes.append(f"the best architecture found: {note}")
    if best.get("ignores_input"):
        notes.append("the best architecture found has a dead cell: its output is the same for "
                     "every image. Every candidate did, or scored worse than a constant; search "
                     "longer (--epochs, search.top_k)")
    level = _search_level(summary)
    if summary.get("unlearned_searches") and level is not None:
        notes.append(unlearned_note(summary["unlearned_searches"], level))
    if summary.get("flat_picks"):
        at = f"at a constant prediction's level, {level:.5f}, or " if level is not None else ""
        notes.append(f"{summary['flat_picks']} of the {summary['picks']} architectures the search "
                     f"picked ignored their input in the super-net ({at}cut off by a dead cell): "
                     "picked for want of live ones; train the super-net longer (--epochs) or "
                     "search more candidates")
    return notes


def _no_ranking(summary: dict[str, Any]) -> list[str]:
    asked = summary.get("rank_samples", 0)
    drawn = sum(a["role"] == "rank" for a in summary["architectures"])
    if asked >= 2 and drawn < 2:  # a small space: landmarks and picks took the rest
        return [f"no ranking measured: `search.rank_samples` asked for {asked} random "
                f"architectures trained stand-alone, and the space had {drawn} left that the "
                "landmarks and the searched picks had not taken; a ranking needs at least 2"]
    return [f"no ranking measured: it needs at least 2 random architectures trained "
            f"stand-alone, and `search.rank_samples` is {asked} "
            f"(the paper ranks {_PAPER_RANK_SAMPLES[_task_of(summary)]})"]


def _ranking_warnings(summary: dict[str, Any], ranking: dict[str, Any]) -> list[str]:
    """Why the measured ranking may say little: diverged, undefined or small, or
    measured against models (or super-net paths) that learned nothing."""
    notes = []
    samples = [a for a in summary["architectures"] if a["role"] == "rank"]
    if ranking.get("non_finite"):
        diverged = [a["arch"] for a in samples if not math.isfinite(a["supernet_score"])]
        named = f": {listed(diverged, sep='; ')}" if diverged else ""
        notes.append(f"{ranking['non_finite']} ranking sample(s) scored non-finite in the "
                     f"super-net (diverged) and are left out of the ranking{named}")
    if not math.isfinite(ranking["kendall_tau"]):
        notes.append("the ranking is undefined: fewer than 2 samples are left, or every "
                     "super-net score (or every stand-alone loss) among them is tied, as "
                     "for paths that all predict a constant")
    elif ranking["n"] < 10:
        n = ranking["n"]
        # (tau-b: ties take values between the steps)
        notes.append(f"with n = {n}, Kendall tau moves in steps of about {4 / (n * (n - 1)):.2f}: "
                     "a rough figure")
    noise = [a for a in samples if learned_nothing(a["val_loss"], summary.get("constant_prediction_loss"))]
    if samples and 2 * len(noise) >= len(samples):
        notes.append(f"{len(noise)} of the {len(samples)} ranking samples learned nothing "
                     "stand-alone: the order the ranking is measured against is mostly "
                     "noise; more --standalone-epochs make it mean something")
    level = _search_level(summary)
    flat = [a for a in samples if learned_nothing(a["supernet_score"], level)]
    if samples and 2 * len(flat) >= len(samples):
        notes.append(f"{len(flat)} of the {len(samples)} ranking samples score no better than "
                     f"a constant prediction ({level:.5f}) in the final super-net: its order "
                     "of them, and the Kendall tau, are mostly noise; train the super-net "
                     "longer (--epochs)")
    return notes


def write_report(out: str | Path, summary: dict[str, Any]) -> Path:
    out = Path(out)
    archs, ranking = summary["architectures"], summary.get("ranking")
    score = summary.get("score_name", "loss")  # results.json of older runs lack it
    levels = (summary.get("constant_prediction_loss"), _search_level(summary))
    lines = _header(summary, score)
    notes = warnings_of(summary)
    if notes:
        lines += ["## Warnings", "", *(f"- {n}" for n in notes), ""]
    if ranking:
        lines += _ranking_table(ranking)
    lines += [f"![ranking]({ranking_scatter(out, archs, ranking, score, levels)})", ""]
    training, lam = training_curves(out, summary.get("lambda_schedule"))
    if training:
        lines += ["## Super-net training", "", f"![training]({training})", ""]
    if lam:
        lines += [f"![lambda]({lam})", ""]
    lines += _architecture_table(archs, score, *levels) + _footnotes(archs, levels[0])
    return atomic_write_text(out / "report.md", "\n".join(lines) + "\n")


def _header(summary: dict[str, Any], score: str) -> list[str]:
    """The run in a few lines: its best architecture, the search's own pick, and the
    level of a model that learned nothing."""
    archs, best = summary["architectures"], summary["best"]
    constant = summary.get("constant_prediction_loss")
    lines = [f"# depthnas search report: {summary['space']}", "",
             f"- landmark regularization: {'on' if summary['landmarks'] else 'off (plain SPOS)'}",
             f"- wall time: {took(summary['elapsed_s'])}",
             f"- best architecture: `{best['string']}` (stand-alone validation {score} "
             f"{best['val_loss']:.5f}, {_count(best['params'])} parameters, role {best['found_in']}): "
             f"the lowest stand-alone {score} among "
             f"{'the landmarks and ' if summary['landmarks'] else ''}the searched top-K"
             f"{' within the budget' if any(a.get('over_budget') for a in archs) else ''} (the "
             "random ranking samples are not candidates)"]
    picks = [a for a in archs if a["role"].startswith("top")]
    if picks and not best["found_in"].startswith("top"):
        pick = summary.get("best_searched")
        if pick is None:  # results.json of older runs lack it: chosen as the search chooses
            a = min(picks, key=candidate_order)
            pick = {"string": a["arch"], "val_loss": a["val_loss"], "role": a["role"]}
        lines.append(f"- best searched pick: `{pick['string']}` ({pick['role']}, stand-alone "
                     f"{score} {pick['val_loss']:.5f}): the search's own result (Algorithm 1's "
                     "output), the one to compare with a plain SPOS run's best")
    if constant is not None:
        lines.append(f"- a constant prediction's validation {score}: {constant:.5f} (a model "
                     "that learned nothing scores about this)")
    searched = summary.get("search_constant_loss")
    if searched is not None and constant is not None and abs(searched - constant) > 1e-9:
        # search.val_batches: the super-net is scored on part of the split, whose own
        # level its scores are marked against
        lines.append(f"- on the validation batches the search scores super-net paths on: "
                     f"{searched:.5f} (`search.val_batches`); super-net scores are judged by this")
    return lines + [""]


def _ranking_table(ranking: dict[str, Any]) -> list[str]:
    return ["## Ranking of the random sample (`search.rank_samples`; no landmark, no searched top-K)", "",
            "| n | Kendall tau | sparse Kendall tau (threshold) | Spearman rho | "
            "super-net's favourite: stand-alone percentile (lower is better; 100/n = the best) |",
            "|---|---|---|---|---|",
            f"| {ranking['n']} | {figure(ranking['kendall_tau'])} | "
            f"{figure(ranking['sparse_kendall_tau'])} ({figure(ranking['sparse_threshold'], '.2g')}) | "
            f"{figure(ranking['spearman_rho'])} | {figure(ranking['top_percentile'], '.0f', '%')} |", ""]


def _architecture_table(archs: list[dict[str, Any]], score: str, constant: float | None,
                        search_constant: float | None) -> list[str]:
    timed = any("latency_ms" in a for a in archs)  # under search.max_latency_ms (batch 1)
    lines = ["## Architectures trained stand-alone", "",
             _roles(archs), "",
             f"| architecture | role | stand-alone {score} | final super-net {score} |"
             + (" latency (ms) |" if timed else ""), "|---|---|---|---|" + ("---|" if timed else "")]
    for a in sorted(archs, key=lambda r: r["val_loss"]):
        arch = a["arch"].replace("|", "\\|")  # NB201 strings: a bare | splits the table cell
        dead = " *" if learned_nothing(a["val_loss"], constant) else ""
        flat = " *" if learned_nothing(a["supernet_score"], search_constant) else ""
        cut = " (over budget)" if a.get("over_budget") else ""
        if a.get("ignores_input"):  # by its architecture: a dead cell cuts the input off
            dead, flat, cut = " *", " *", cut + " (dead cell)"
        table = {"truth table": " (table)", "landmark store": " (stored)"}.get(a.get("source"), "")
        latency = f" {a['latency_ms']:.1f} |" if "latency_ms" in a else (" |" if timed else "")
        lines.append(f"| `{arch}`{cut} | {a['role']} | {a['val_loss']:.5f}{dead}{table} | "
                     f"{a['supernet_score']:.5f}{flat} |{latency}")
    return lines + ["", f"final super-net {score}: the path's score with the super-net's weights "
                        "after its last iteration; `top-N` were picked on iteration N's weights "
                        "(metrics.jsonl, `\"phase\": \"search\"`)"]


def _footnotes(archs: list[dict[str, Any]], constant: float | None) -> list[str]:
    """What the table's marks mean, for the marks it uses."""
    lines = []
    if constant is not None or any(a.get("ignores_input") for a in archs):
        lines += ["", "\\* no better than a constant prediction (within 1%, or worse), or a dead "
                      "cell (the output ignores the input): the model (or super-net path) "
                      "learned nothing, and its order among such scores is noise"]
    if any(a.get("over_budget") for a in archs):
        lines += ["", "(over budget): a landmark that breaks `search.max_params` / "
                      "`search.max_latency_ms`, drawn without the budget; never the best found"]
    if any(a.get("source") == "truth table" for a in archs):
        lines += ["", "(table): looked up in `search.truth_table`, not trained in this run"]
    if any(a.get("source") == "landmark store" for a in archs):
        lines += ["", "(stored): read from the landmark store (`--landmarks`), trained by an "
                      "earlier run under the same recipe"]
    return lines
