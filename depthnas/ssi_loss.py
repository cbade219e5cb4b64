"""Scale-and-shift-invariant depth losses (Ranftl et al., "Towards Robust Monocular
Depth Estimation", TPAMI 2020), in disparity space over a validity mask.

Three deliberate departures from the public MiDaS code, each for correctness:

* An image whose alignment is degenerate (a constant prediction over its valid
  pixels) is aligned by the least-squares optimum that remains: scale 0, shift =
  mean target. It therefore pays the target's variance, and its gradient is zero
  and finite, never NaN. Dropping constant predictions (zero loss) would reward a
  network whose final ReLU dies into a constant map: we saw quick-preset trainings
  collapse that way. MiDaS scored them against an all-zero prediction instead.
  (An image with fewer than two valid pixels has nothing to align: it drops out.)
* The least-squares fit is computed on mean-centred values. It is the same solution
  as the closed form ``s = (a11*b0 - a01*b1)/det``, but the closed form subtracts two
  large nearly equal products and loses most float32 digits when disparities carry
  a large offset; centring also makes "det == 0" a clean test.
* ``ssitrim`` takes the median over valid pixels only and really drops the largest
  ``trim`` fraction of residuals per image (the public copy counted invalid pixels
  as zeros and sliced the ``(values, indices)`` tuple, trimming nothing).

Every loss runs in float32 (float64 stays float64) with autocast disabled, because
bf16 sums over ~10^5 pixels lose the small residuals the loss is made of.
"""
from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor, nn

from .choices import DEPTH_LOSSES as LOSS_NAMES  # its name here, in __all__

__all__ = [
    "prepare_inputs",
    "compute_scale_and_shift",
    "robust_normalise",
    "SSILoss",
    "SSITrimLoss",
    "build_loss",
    "enough_to_fit",
    "pooled_loss",
    "LOSS_NAMES",
]

# A fit is degenerate when the prediction is constant over the valid pixels, or its
# spread (RMS about the mean) is below this many float epsilons of its magnitude: such
# a spread is the mean's rounding error, and dividing by it would give an arbitrary,
# huge scale and gradient. It must stay small: a float32 map near 100 that varies by
# 1e-3 (~130 distinct values) is a real prediction, and 64 epsilons called it constant.
_DEGENERATE_ULPS = 4.0
# A scale and a shift need two points: an image with fewer valid pixels has nothing to
# align and drops out (the validation score counts the images it keeps: DepthTask.score).
MIN_FIT_PIXELS = 2


def enough_to_fit(mask: Tensor) -> Tensor:
    """Per image of a [B, ...] mask: whether it holds the valid pixels a scale and a
    shift need (MIN_FIT_PIXELS)."""
    return mask.flatten(1).sum(1) >= MIN_FIT_PIXELS


def _tensor(x: Tensor, name: str) -> Tensor:
    if not isinstance(x, Tensor):  # a numpy array would fail as "'str' has no attribute 'type'"
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def _full_precision(prediction: Tensor) -> torch.autocast:
    """Autocast off on the prediction's device: the losses run in float32 or float64."""
    return torch.autocast(_tensor(prediction, "prediction").device.type, enabled=False)


def _as_bhw(x: Tensor, name: str) -> Tensor:
    _tensor(x, name)
    if x.dim() == 4 and x.shape[1] == 1:
        return x[:, 0]
    if x.dim() == 3:
        return x
    raise ValueError(f"{name} must be [B,1,H,W] or [B,H,W], got shape {tuple(x.shape)}")


def prepare_inputs(prediction: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Bring inputs to ``[B,H,W]``, a float32/float64 compute dtype and a bool mask.

    Invalid pixels are set to zero so that NaN/inf placeholders in the ground truth
    cannot leak into masked sums (``0 * nan`` is still NaN). A float mask is
    binarised (non-zero = valid): the trimmed loss needs a set of valid pixels, and
    every loss here should agree on what "valid" means.
    """
    p = _as_bhw(prediction, "prediction")
    d = _as_bhw(target, "target")
    m = _as_bhw(mask, "mask")
    if p.shape != d.shape or p.shape != m.shape:
        raise ValueError(
            f"prediction {tuple(p.shape)}, target {tuple(d.shape)} and mask {tuple(m.shape)} must match"
        )
    dtype = torch.float64 if torch.float64 in (p.dtype, d.dtype) else torch.float32
    m = m if m.dtype == torch.bool else m != 0
    p = torch.where(m, p.to(dtype), 0.0)
    d = torch.where(m, d.to(dtype), 0.0)
    return p, d, m


def _fit(p: Tensor, d: Tensor, m: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-image least-squares ``(scale, mean_p, mean_d)`` for prepared inputs, ``m``
    float. The fit is ``scale * (p - mean_p) + mean_d``: the shift is
    ``mean_d - scale * mean_p``, but adding that form back to ``scale * p`` cancels two
    large terms when the prediction carries an offset, so the aligned map is formed
    from the centred prediction instead."""
    n = m.sum((1, 2))
    n_safe = torch.where(n > 0, n, 1.0)
    mean_p = (m * p).sum((1, 2)) / n_safe
    mean_d = (m * d).sum((1, 2)) / n_safe
    pc = m * (p - mean_p[:, None, None])
    dc = m * (d - mean_d[:, None, None])
    sxx = (pc * pc).sum((1, 2))  # == det / a11
    sxy = (pc * dc).sum((1, 2))
    with torch.no_grad():
        amp = (m * p).abs().amax((1, 2))
        tol = n * (_DEGENERATE_ULPS * torch.finfo(p.dtype).eps * amp) ** 2
        valid = m > 0
        varies = torch.where(valid, p, -math.inf).amax((1, 2)) > torch.where(valid, p, math.inf).amin((1, 2))
        ok = (n >= MIN_FIT_PIXELS) & varies & (sxx > tol)
    # The safe denominator keeps the unused branch finite, so torch.where's backward
    # never multiplies a zero gradient by inf (which would give NaN). A degenerate
    # image gets scale 0: the fit left is its mean target.
    scale = torch.where(ok, sxy / torch.where(ok, sxx, 1.0), 0.0)
    return scale, mean_p, mean_d


def compute_scale_and_shift(prediction: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Per-image ``(scale [B], shift [B])`` minimising ``sum M (s*p + t - d)^2``.

    Degenerate images (constant prediction, < 2 valid pixels) get ``scale = 0`` and
    ``shift = mean target`` (the least-squares optimum left), with finite gradients.
    """
    p, d, m = prepare_inputs(prediction, target, mask)
    scale, mean_p, mean_d = _fit(p, d, m.to(p.dtype))
    # scale 0 (a degenerate fit): the shift is the mean target, even where mean_p is
    # not finite (0 * inf would make it NaN)
    return scale, torch.where(scale == 0, mean_d, mean_d - scale * mean_p)


def robust_normalise(x: Tensor, mask: Tensor) -> Tensor:
    """``(x - median) / mean|x - median|`` per image, statistics over valid pixels only.

    The median is the lower median (as ``torch.median``), found by sorting with
    invalid pixels pushed to +inf so the valid ones come first; the scale is clamped
    at 1e-6 so a constant map normalises to zeros instead of dividing by zero.
    Returns ``[B,H,W]``; invalid pixels are 0.
    """
    x, _, m = prepare_inputs(x, x, mask)
    return _robust_normalise(x, m)


def _robust_normalise(x: Tensor, m: Tensor) -> Tensor:
    flat = x.flatten(1)
    valid = m.flatten(1)
    n = valid.sum(1)
    ordered = torch.where(valid, flat, math.inf).sort(dim=1).values
    mid = ((n - 1).clamp(min=0) // 2)[:, None]
    median = torch.where(n > 0, ordered.gather(1, mid)[:, 0], 0.0)
    centred = torch.where(m, x - median[:, None, None], 0.0)
    mad = centred.abs().sum((1, 2)) / n.clamp(min=1).to(x.dtype)
    scale = torch.where(n > 0, mad.clamp(min=1e-6), 1.0)
    return centred / scale[:, None, None]


def _pooled(num: Tensor, den: Tensor, reduction: str) -> tuple[Tensor, Tensor]:
    """A term's per-image numerators and denominators as the two sums it is the ratio
    of: batch, sum(num) and sum(den); image, the sum of num/den over the images with
    den > 0, and their count. Sums of several batches give the term over them all."""
    if reduction == "batch":
        return num.sum(), den.sum()
    has = den > 0
    per_image = num / torch.where(has, den, 1.0)
    return torch.where(has, per_image, 0.0).sum(), has.sum().to(num.dtype)


def _gradient_terms(residual: Tensor, m: Tensor, scales: int,
                    reduction: str) -> list[tuple[Tensor, Tensor]]:
    """Multi-scale L1 on finite differences of the masked residual ``R = M * (p - d)``,
    one pooled term per scale.

    A difference counts only when both neighbours are valid, so mask borders add no
    spurious edges; each scale is normalised by its own (subsampled) valid count.
    """
    terms = []
    for k in range(scales):
        step = 2**k
        r = residual[:, ::step, ::step]
        mk = m[:, ::step, ::step]
        gx = (r[:, :, 1:] - r[:, :, :-1]).abs() * (mk[:, :, 1:] * mk[:, :, :-1])
        gy = (r[:, 1:, :] - r[:, :-1, :]).abs() * (mk[:, 1:, :] * mk[:, :-1, :])
        terms.append(_pooled(gx.sum((1, 2)) + gy.sum((1, 2)), mk.sum((1, 2)), reduction))
    return terms


def _stacked(data: tuple[Tensor, Tensor], gradients: list[tuple[Tensor, Tensor]],
             alpha: float) -> tuple[Tensor, Tensor]:
    """(numerators, denominators), the data term first, the gradient terms weighted."""
    terms = [data] + [(alpha * n, d) for n, d in gradients]
    return torch.stack([n for n, _ in terms]), torch.stack([d for _, d in terms])


def _combined(data: tuple[Tensor, Tensor], gradients: list[tuple[Tensor, Tensor]],
              alpha: float) -> Tensor:
    """One batch's loss from its terms, added in MiDaS's order (data + alpha * the
    scales' sum): the training loss and its gradients stay bit for bit as they were."""
    loss = data[0] / data[1].clamp(min=1.0)
    if gradients:
        total = loss.new_zeros(())
        for n, d in gradients:
            total = total + n / d.clamp(min=1.0)
        loss = loss + alpha * total
    return loss


def pooled_loss(numerators: Tensor, denominators: Tensor) -> Tensor:
    """The loss of `terms` (summed over any number of batches). Denominators are pixel
    or image counts, so clamping at 1 only matters when the numerator is 0 too; the
    result then stays 0 and keeps its autograd graph."""
    return (numerators / denominators.clamp(min=1.0)).sum()


def _number(value: object, name: str, whole: bool = False) -> None:
    """A NaN alpha passed `alpha < 0` and then `alpha > 0` failed too, dropping the
    gradient term without a word; a string or 2.5 scales failed in forward, unnamed."""
    kind = numbers.Integral if whole else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite {'whole ' if whole else ''}number, got {value!r}")


def _check_common(alpha: float, scales: int) -> None:
    _number(alpha, "alpha")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    _number(scales, "scales", whole=True)
    if scales < 1:
        raise ValueError(f"scales must be >= 1, got {scales}")


class _TermLoss(nn.Module):
    """A loss made of a data term and ``alpha``-weighted gradient terms (`_parts`),
    each a ratio of sums: as one batch's loss (`forward`), or as the sums to pool over
    several (`terms`)."""

    alpha: float

    def forward(self, prediction: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        """Scalar loss of a prediction against target disparity over `mask` (valid
        pixels), each ``[B,1,H,W]`` or ``[B,H,W]``."""
        with _full_precision(prediction):
            return _combined(*self._parts(prediction, target, mask), self.alpha)

    def terms(self, prediction: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """The loss as sums to pool, (numerators, denominators) of its terms: the loss
        is `pooled_loss` of them, and of their sums over several batches the loss of
        all those batches at once (a validation split's score, whatever its batching)."""
        with _full_precision(prediction):
            return _stacked(*self._parts(prediction, target, mask), self.alpha)

    def _parts(self, prediction: Tensor, target: Tensor,
               mask: Tensor) -> tuple[tuple[Tensor, Tensor], list[tuple[Tensor, Tensor]]]:
        """The data term and the gradient terms, unweighted (in full precision)."""
        raise NotImplementedError


class SSILoss(_TermLoss):
    """ssi-MSE + ``alpha`` * multi-scale gradient matching (MiDaS eq. 4 and 11),
    invariant to the prediction's scale and shift.

    ``reduction="batch"`` pools numerators and denominators over the batch (images
    with more valid pixels weigh more); ``"image"`` averages per-image values over
    images that have valid pixels.
    """

    def __init__(self, alpha: float = 0.5, scales: int = 4, reduction: str = "batch") -> None:
        super().__init__()
        _check_common(alpha, scales)
        if reduction not in ("batch", "image"):
            raise ValueError(f"reduction must be 'batch' or 'image', got {reduction!r}")
        self.alpha = alpha
        self.scales = scales
        self.reduction = reduction

    def _parts(self, prediction: Tensor, target: Tensor,
               mask: Tensor) -> tuple[tuple[Tensor, Tensor], list[tuple[Tensor, Tensor]]]:
        p, d, m = prepare_inputs(prediction, target, mask)
        mf = m.to(p.dtype)
        scale, mean_p, mean_d = _fit(p, d, mf)
        mf = mf * enough_to_fit(m)[:, None, None].to(p.dtype)
        aligned = scale[:, None, None] * (p - mean_p[:, None, None]) + mean_d[:, None, None]
        residual = mf * (aligned - d)
        data = _pooled((residual * residual).sum((1, 2)), 2.0 * mf.sum((1, 2)), self.reduction)
        gradients = (_gradient_terms(residual, mf, self.scales, self.reduction)
                     if self.alpha > 0 else [])
        return data, gradients

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, scales={self.scales}, reduction={self.reduction!r}"


class SSITrimLoss(_TermLoss):
    """Robust ssi loss of MiDaS v3: trimmed MAE on robustly normalised maps, invariant
    to the prediction's shift and positive scale (a negative one turns near into far,
    which this loss, unlike ``ssi``, tells apart).

    Prediction and target are normalised separately (:func:`robust_normalise`), the
    largest ``trim`` fraction of each image's valid residuals is dropped (keeping
    ``floor(n * (1 - trim))``, as the original intended), and the kept sum is divided
    by ``2 * n`` pooled over the batch, so a dropped outlier still counts as a pixel.
    """

    def __init__(self, trim: float = 0.2, alpha: float = 0.5, scales: int = 4) -> None:
        super().__init__()
        _check_common(alpha, scales)
        _number(trim, "trim")
        if not 0.0 <= trim < 1.0:
            raise ValueError(f"trim must be in [0, 1), got {trim}")
        self.trim = trim
        self.alpha = alpha
        self.scales = scales

    def _parts(self, prediction: Tensor, target: Tensor,
               mask: Tensor) -> tuple[tuple[Tensor, Tensor], list[tuple[Tensor, Tensor]]]:
        p, d, m = prepare_inputs(prediction, target, mask)
        mf = m.to(p.dtype)
        residual = mf * (_robust_normalise(p, m) - _robust_normalise(d, m))
        valid = m.flatten(1)
        n = valid.sum(1)
        ordered = torch.where(valid, residual.flatten(1).abs(), math.inf).sort(dim=1).values
        # float64 and a tiny nudge so that e.g. 10 * 0.8 keeps 8, not 7.
        keep = torch.floor(n.double() * (1.0 - self.trim) + 1e-9).long()
        rank = torch.arange(ordered.shape[1], device=ordered.device)
        kept = torch.where(rank[None, :] < keep[:, None], ordered, 0.0).sum()
        gradients = _gradient_terms(residual, mf, self.scales, "batch") if self.alpha > 0 else []
        return (kept, 2.0 * mf.sum()), gradients

    def extra_repr(self) -> str:
        return f"trim={self.trim}, alpha={self.alpha}, scales={self.scales}"


def build_loss(name: str, **kw: float | int | str) -> nn.Module:
    """Loss by config name; keyword arguments go to the loss constructor."""
    if name == "ssi":
        return SSILoss(**kw)  # type: ignore[arg-type]
    if name == "ssi-image":
        return SSILoss(reduction="image", **kw)  # type: ignore[arg-type]
    if name == "ssitrim":
        return SSITrimLoss(**kw)  # type: ignore[arg-type]
    raise ValueError(f"unknown loss {name!r}; valid names: {', '.join(LOSS_NAMES)}")
