"""Evaluation metrics for relative (affine-invariant) disparity predictions.

Protocol, following the MiDaS evaluation (Ranftl et al., TPAMI 2020):

1. Align the prediction to the target per image in *disparity* space by least-squares
   scale and shift over the mask (the network only knows depth up to an affine map of
   inverse depth). A degenerate fit (constant prediction) falls back to the best
   constant, the mean target disparity, which is the true least-squares answer.
2. Clamp the aligned disparity from below before inverting it, since alignment can
   make far pixels zero or negative: to ``1 / depth_cap`` when a cap is given (NYU:
   10 m), else to ``1e-3 *`` the image's largest valid target disparity (predicted
   depth at most 1000x the nearest ground-truth depth).
3. Convert both to depth (``1 / disparity``) and evaluate only pixels that are in the
   mask, have target disparity > 0 and, with a cap, target depth <= ``depth_cap``.

Per image: ``absrel = mean |d_pred - d_gt| / d_gt``; ``delta1 = 100 * fraction`` of
pixels with ``max(d_pred/d_gt, d_gt/d_pred) > 1.25`` -- the *bad-pixel* percentage
MiDaS reports, so lower is better, unlike the usual "delta < 1.25 accuracy";
``rmse = sqrt(mean (d_pred - d_gt)^2)`` in the target's depth units; ``inverted =
100`` if the prediction is clearly anti-correlated with the target (Pearson r < -0.5:
the model predicts near as far; the alignment's negative scale turns it round, so
neither the SSI loss nor the other metrics can tell, but its raw output, which
predict and the demo show, is upside down; a model that learned nothing has r near
0 and is not counted). Each is averaged
over the images with three or more evaluated pixels (a scale and a shift fit two
exactly, whatever the prediction; the others are counted as left out); ``ssi`` is :class:`SSILoss` (batch
reduction) against the target min-max normalised per image, as training targets
are, so it is computed as the search's validation score is, whatever the data's
units (on raw ReDWeb values 1-255 it would be ~10^3 times larger; the search's own
score also counts images of two valid pixels, a 0 for every architecture alike). Both pool
the loss over the whole split, its pixels counting alike, so the figure is the same
whatever the batching. With nothing to
evaluate every value is NaN, not a 0.0 that reads as perfect; :class:`MetricAccumulator`
also exposes the image count.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from depthnas.ssi_loss import SSILoss, compute_scale_and_shift, pooled_loss, prepare_inputs

__all__ = ["align_prediction", "depth_metrics", "inverted", "MetricAccumulator", "METRIC_NAMES"]

METRIC_NAMES: tuple[str, ...] = ("ssi", "absrel", "delta1", "rmse", "inverted")
_PIXEL_METRICS: tuple[str, ...] = ("absrel", "delta1", "rmse", "inverted")  # per image
_DELTA_THRESHOLD = 1.25
_REL_DISPARITY_FLOOR = 1e-3
# A scale and a shift fit two pixels exactly: an image scored on two (sparse lidar
# points, a mask nearly empty, one pixel within the cap) adds a perfect 0 whatever the
# model predicts. Scored images have three or more, the same images in every metric.
MIN_SCORED_PIXELS = 3


def align_prediction(prediction: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """``s * prediction + t`` per image (least squares over the mask), returned in the
    prediction's shape. Invalid pixels are mapped too, which suits visualisation."""
    p, d, m = prepare_inputs(prediction, target, mask)
    scale, shift = compute_scale_and_shift(p, d, m)
    raw = prediction.reshape(p.shape).to(p.dtype)  # prepare_inputs zeroed invalid pixels
    return (scale[:, None, None] * raw + shift[:, None, None]).reshape(prediction.shape)


@torch.no_grad()
def _per_image(
    prediction: Tensor, target: Tensor, mask: Tensor, depth_cap: float | None
) -> tuple[dict[str, Tensor], Tensor]:
    """Per-image ``absrel/delta1/rmse/inverted`` ``[B]`` and the bool ``[B]`` of scored
    images: those with MIN_SCORED_PIXELS pixels to evaluate (valid, and within the cap
    where one is set), more than a scale and a shift fit exactly, whose depth there is
    not one value (the cap can leave a patch of a map: any prediction then scores the
    SSI's perfect 0). In float64: ``s * p + t`` in float32 lost most digits of a
    prediction with a large offset (1e4 + d gave 5 times the AbsRel of d)."""
    p, d, m = prepare_inputs(prediction.double(), target.double(), mask)
    scale, shift = compute_scale_and_shift(p, d, m)
    aligned = scale[:, None, None] * p + shift[:, None, None]
    evaluate = m & (d > 0)
    if depth_cap is not None:
        if depth_cap <= 0:
            raise ValueError(f"depth_cap must be > 0, got {depth_cap}")
        floor = torch.full_like(scale, 1.0 / depth_cap)
        evaluate &= d >= 1.0 / depth_cap
    else:
        floor = _REL_DISPARITY_FLOOR * torch.where(m, d, 0.0).amax((1, 2)).clamp(min=0.0)
    aligned = torch.maximum(aligned, floor[:, None, None])
    # Safe denominators: pixels not evaluated may hold 0 disparity (1/0 = inf).
    pred_depth = 1.0 / torch.where(evaluate, aligned, 1.0)
    gt_depth = 1.0 / torch.where(evaluate, d, 1.0)
    ev = evaluate.to(p.dtype)
    n = ev.sum((1, 2))
    n_safe = n.clamp(min=1.0)
    err = pred_depth - gt_depth
    ratio = torch.maximum(pred_depth / gt_depth, gt_depth / pred_depth)
    per = {
        "absrel": (ev * err.abs() / gt_depth).sum((1, 2)) / n_safe,
        # a NaN ratio (a prediction of NaN) compares false: a bad pixel, not a good one
        "delta1": 100.0 * (ev * ~(ratio <= _DELTA_THRESHOLD)).sum((1, 2)) / n_safe,
        "rmse": torch.sqrt((ev * err * err).sum((1, 2)) / n_safe),
        "inverted": 100.0 * _swapped(p, d, m).to(p.dtype),
    }
    lo, hi = _masked_range(d, evaluate)
    return per, (n >= MIN_SCORED_PIXELS) & (hi > lo)


def _masked_range(d: Tensor, m: Tensor) -> tuple[Tensor, Tensor]:
    """Per image ``[B]``: the smallest and largest of ``d`` over mask ``m``."""
    big = torch.finfo(d.dtype).max
    return torch.where(m, d, big).amin((1, 2)), torch.where(m, d, -big).amax((1, 2))


def _min_max(target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Per-image min-max of the target over valid pixels to [0, 1] (the training
    target, `datasets.transforms.normalize_target`); a constant image maps to 0.
    Returns ``[B,H,W]`` target and mask."""
    _, d, m = prepare_inputs(target, target, mask)
    lo, hi = (v[:, None, None] for v in _masked_range(d, m))
    span = hi - lo
    ok = m & (span > 0)
    return torch.where(ok, (d - lo) / torch.where(span > 0, span, 1.0), 0.0), m


@torch.no_grad()
def _ssi_terms(prediction: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    d, m = _min_max(target, mask)
    num, den = SSILoss().terms(prediction.reshape(d.shape), d, m)
    return num.double().cpu(), den.double().cpu()


def depth_metrics(
    prediction: Tensor, target: Tensor, mask: Tensor, depth_cap: float | None = None
) -> dict[str, float]:
    """:data:`METRIC_NAMES` for one batch of disparity maps (``[B,1,H,W]`` or
    ``[B,H,W]``), averaged over the images scored (NaN if none is)."""
    acc = MetricAccumulator(depth_cap)
    acc.update(prediction, target, mask)
    return acc.compute()


_SWAPPED_R = -0.5  # Pearson r below which a prediction has near and far swapped


def _swapped(p: Tensor, d: Tensor, m: Tensor) -> Tensor:
    """Per image ``[B]``: prediction and target clearly anti-correlated over the mask.
    Not the fit's sign alone: a model that learned nothing fits with a sign that is a
    coin toss, and a constant image (variance from rounding only) has no sign at all."""
    w = m.to(torch.float64)
    p, d = p.to(torch.float64), d.to(torch.float64)
    n = w.sum((1, 2)).clamp(min=1.0)
    cp = (p - ((w * p).sum((1, 2)) / n)[:, None, None]) * w
    cd = (d - ((w * d).sum((1, 2)) / n)[:, None, None]) * w
    vp, vd = (cp * cp).sum((1, 2)), (cd * cd).sum((1, 2))

    def varies(v: Tensor, x: Tensor) -> Tensor:  # more than float rounding around its mean
        scale = ((w * x.abs()).sum((1, 2)) / n).clamp(min=1e-12)
        return v / n > (1e-6 * scale) ** 2
    ok = varies(vp, p) & varies(vd, d)
    r = (cp * cd).sum((1, 2)) / torch.sqrt(torch.where(ok, vp * vd, 1.0))
    return ok & (r < _SWAPPED_R)


@torch.no_grad()
def inverted(prediction: Tensor, target: Tensor, mask: Tensor) -> tuple[int, int]:
    """(images whose prediction has near and far swapped, images with MIN_SCORED_PIXELS
    or more valid pixels) of one batch: with two, r is +-1 whatever the model, a coin
    toss counted as a swap half the time."""
    p, d, m = prepare_inputs(prediction, target, mask)
    fitted = m.flatten(1).sum(1) >= MIN_SCORED_PIXELS
    return int((fitted & _swapped(p, d, m)).sum()), int(fitted.sum())


class MetricAccumulator:
    """Dataset-level metrics from per-batch updates over a validation loop.

    Pixel metrics are averaged per image over the whole run (not per batch), so a
    small last batch does not skew them. ``ssi`` is a batch-reduced loss, pooled over
    the whole run (`SSILoss.terms`): the same whatever the batching.
    """

    def __init__(self, depth_cap: float | None = None) -> None:
        self.depth_cap = depth_cap
        self.reset()

    def reset(self) -> None:
        self._sums = dict.fromkeys(_PIXEL_METRICS, 0.0)
        self._images = 0
        self._left_out = 0
        self._ssi_terms: tuple[Tensor, Tensor] | None = None

    @property
    def count(self) -> int:
        """Images scored so far (MIN_SCORED_PIXELS evaluated pixels or more)."""
        return self._images

    @property
    def left_out(self) -> int:
        """Images with valid pixels, fewer than MIN_SCORED_PIXELS of them evaluated
        (the rest beyond the depth cap, or at disparity 0, infinitely far: too few for
        a fit that any prediction does not meet exactly), or all at one depth."""
        return self._left_out

    def update(self, prediction: Tensor, target: Tensor, mask: Tensor) -> None:
        per, valid = _per_image(prediction, target, mask, self.depth_cap)
        for name in _PIXEL_METRICS:
            self._sums[name] += float(torch.where(valid, per[name], 0.0).sum())
        self._images += int(valid.sum())
        self._left_out += int(((mask.reshape(mask.shape[0], -1) != 0).any(1) & ~valid).sum())
        # the SSI over the pixels within the cap of the images the others score
        mask = (mask != 0) & valid.reshape(-1, *[1] * (mask.dim() - 1))
        if self.depth_cap is not None:
            mask &= target.reshape(mask.shape) >= 1.0 / self.depth_cap
        if int(valid.sum()):
            num, den = _ssi_terms(prediction, target, mask)
            if self._ssi_terms is not None:
                num, den = num + self._ssi_terms[0], den + self._ssi_terms[1]
            self._ssi_terms = num, den

    def compute(self) -> dict[str, float]:
        """The means; NaN where no image had a pixel to score (0 would read as perfect)."""
        out = {"ssi": math.nan if self._ssi_terms is None else float(pooled_loss(*self._ssi_terms))}
        for name in _PIXEL_METRICS:
            out[name] = self._sums[name] / self._images if self._images else math.nan
        return out
