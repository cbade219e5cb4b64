"""Ranking agreement between super-net scores and stand-alone results (scipy only).

All inputs are losses or errors: lower is better on both sides.
"""
from __future__ import annotations

import math
import numbers
from typing import Sequence

import numpy as np
from scipy import stats


def _pair(truth: Sequence[float], predicted: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    t, p = np.asarray(truth, dtype=float), np.asarray(predicted, dtype=float)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"truth and prediction must be equal-length lists, got {t.shape} and {p.shape}")
    if len(t) < 2:
        raise ValueError("ranking metrics need at least two architectures")
    return t, p


def _no_order(*sides: np.ndarray) -> bool:
    """A side whose values are all equal has no order: every rank correlation with it
    is undefined (NaN), which scipy would add a ConstantInputWarning to."""
    return any(float(np.ptp(x)) == 0.0 for x in sides)


def kendall_tau(truth: Sequence[float], predicted: Sequence[float]) -> float:
    """Kendall tau-b (handles ties on either side); NaN where either side has no order."""
    t, p = _pair(truth, predicted)
    return math.nan if _no_order(t, p) else float(stats.kendalltau(t, p, variant="b").statistic)


def sparse_kendall_tau(truth: Sequence[float], predicted: Sequence[float], threshold: float) -> float:
    """S-KdT: ground-truth values in the same bin of width `threshold` count as
    ties (bin = floor(value / threshold)), so noise-level differences do not
    count as ranking errors."""
    if not (isinstance(threshold, numbers.Real) and math.isfinite(threshold) and threshold > 0):
        raise ValueError(f"sparse Kendall tau threshold must be a finite number > 0, got {threshold!r}")
    t, p = _pair(truth, predicted)
    # rounded before the floor: 0.3 / 0.1 is 2.9999999999999996, which put 0.3 in
    # 0.2's bin (and 93% and 94% accuracy in one bin at threshold 0.01)
    bins = np.floor(np.round(t / threshold, 9))
    return math.nan if _no_order(bins, p) else float(stats.kendalltau(bins, p, variant="b").statistic)


def spearman_rho(truth: Sequence[float], predicted: Sequence[float]) -> float:
    """Spearman's rank correlation; NaN where either side has no order (all equal)."""
    t, p = _pair(truth, predicted)
    return math.nan if _no_order(t, p) else float(stats.spearmanr(t, p).statistic)


def top_percentile(truth: Sequence[float], predicted: Sequence[float]) -> float:
    """Where the architecture with the best predicted score really ranks, as a
    percentage of the evaluated set (lower is better; 100/n = it is the best).
    Architectures tied for the best score are an even chance each: their mean rank
    counts, not whichever the input order put first."""
    t, p = _pair(truth, predicted)
    ranks = stats.rankdata(t, method="min")
    return 100.0 * float(ranks[p == p.min()].mean()) / len(t)


def default_threshold(truth: Sequence[float]) -> float:
    """1% of the ground-truth range, used when the caller gives no threshold."""
    t = np.asarray(truth, dtype=float)
    span = float(t.max() - t.min())
    return span / 100.0 if span > 0 else 1.0


def ranking_report(truth: Sequence[float], predicted: Sequence[float],
                   threshold: float | None = None) -> dict[str, float]:
    """Every metric over the pairs whose values are both finite: one NaN (a diverged
    path) would make every metric NaN. `non_finite` counts the pairs left out;
    callers name them."""
    t, p = _pair(truth, predicted)
    finite = np.isfinite(t) & np.isfinite(p)
    t, p = t[finite], p[finite]
    if len(t) < 2:  # nothing left to rank: say so in the numbers, do not fail a finished run
        nan = float("nan")
        out = {"n": len(t), "kendall_tau": nan, "sparse_kendall_tau": nan,
               "sparse_threshold": threshold if threshold is not None else nan,
               "spearman_rho": nan, "top_percentile": nan}
    else:
        threshold = threshold if threshold is not None else default_threshold(t)
        out = {"n": len(t), "kendall_tau": kendall_tau(t, p),
               "sparse_kendall_tau": sparse_kendall_tau(t, p, threshold),
               "sparse_threshold": threshold, "spearman_rho": spearman_rho(t, p),
               "top_percentile": top_percentile(t, p)}
    if not finite.all():
        out["non_finite"] = int((~finite).sum())
    return out
