"""Spec tests for the scale-and-shift-invariant losses (REFERENCE.md section 2)."""
from __future__ import annotations


import numpy as np
import pytest
import torch

from depthnas.ssi_loss import (
    LOSS_NAMES,
    SSILoss,
    SSITrimLoss,
    build_loss,
    compute_scale_and_shift,
    pooled_loss,
    robust_normalise,
)


def _rand(shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=dtype)


def _batch(b: int = 3, h: int = 16, w: int = 16, seed: int = 0, dtype: torch.dtype = torch.float32):
    """Prediction, target and a ragged mask (different valid counts per image)."""
    pred = _rand((b, h, w), seed, dtype)
    target = _rand((b, h, w), seed + 1, dtype)
    mask = _rand((b, h, w), seed + 2) > 0.3
    return pred, target, mask


def _finite_loss_and_grad(loss_fn, pred, target, mask) -> tuple[torch.Tensor, torch.Tensor]:
    pred = pred.clone().requires_grad_(True)
    loss = loss_fn(pred, target, mask)
    loss.backward()
    assert loss.dim() == 0
    assert torch.isfinite(loss), loss
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    return loss.detach(), pred.grad


# ---------------------------------------------------------------- alignment


def test_scale_and_shift_matches_numpy_lstsq():
    pred, target, mask = _batch(dtype=torch.float64)
    scale, shift = compute_scale_and_shift(pred, target, mask)
    for i in range(pred.shape[0]):
        m = mask[i].numpy()
        a = np.stack([pred[i].numpy()[m], np.ones(m.sum())], axis=1)
        (s, t), *_ = np.linalg.lstsq(a, target[i].numpy()[m], rcond=None)
        assert scale[i].item() == pytest.approx(s, abs=1e-12)
        assert shift[i].item() == pytest.approx(t, abs=1e-12)


def test_scale_and_shift_recovers_affine_map_in_float32_with_large_offset():
    # The uncentred closed form loses most float32 digits here (a00*a11 ~ a01^2).
    target = _rand((2, 64, 64), 3)
    pred = (target - 0.25) / 0.01 + 1000.0
    scale, shift = compute_scale_and_shift(pred, target, torch.ones_like(target, dtype=torch.bool))
    torch.testing.assert_close(scale, torch.full((2,), 0.01), rtol=1e-4, atol=0)
    torch.testing.assert_close(shift, torch.full((2,), 0.25 - 10.0), rtol=1e-4, atol=0)


@pytest.mark.parametrize("value", [0.0, 0.3, 1234.5678])
def test_degenerate_fit_falls_back_to_the_mean_without_nan(value: float):
    pred = torch.full((3, 128, 128), value, requires_grad=True)
    target = _rand((3, 128, 128), 4)
    mask = torch.ones(3, 128, 128, dtype=torch.bool)
    mask[1] = False
    mask[2] = False
    mask[2, 5, 7] = True  # a single valid pixel
    scale, shift = compute_scale_and_shift(pred, target, mask)
    # constant prediction: the best fit left is s = 0, t = mean target
    assert torch.equal(scale, torch.zeros(3))
    torch.testing.assert_close(shift, torch.stack([target[0].mean(), torch.tensor(0.0), target[2, 5, 7]]))
    (scale.sum() + shift.sum()).backward()
    assert torch.isfinite(pred.grad).all()


# ---------------------------------------------------------------- SSILoss


def _reference_ssi(pred: np.ndarray, target: np.ndarray, mask: np.ndarray, alpha: float, scales: int) -> float:
    """Batch-reduced SSI loss by explicit loops, straight from the REFERENCE formulas."""
    b, h, w = pred.shape
    data_num = data_den = 0.0
    residuals = np.zeros_like(pred)
    for i in range(b):
        valid = mask[i]
        a = np.stack([pred[i][valid], np.ones(valid.sum())], axis=1)
        (s, t), *_ = np.linalg.lstsq(a, target[i][valid], rcond=None)
        for y in range(h):
            for x in range(w):
                if valid[y, x]:
                    r = s * pred[i, y, x] + t - target[i, y, x]
                    residuals[i, y, x] = r
                    data_num += r * r
                    data_den += 2.0
    return data_num / data_den + alpha * _reference_gradient(residuals, mask, scales)


def _reference_gradient(residuals: np.ndarray, mask: np.ndarray, scales: int) -> float:
    """Batch-reduced multi-scale gradient matching of masked residuals, by loops."""
    grad_total = 0.0
    for k in range(scales):
        step = 2**k
        num = den = 0.0
        for i in range(residuals.shape[0]):
            r = residuals[i, ::step, ::step]
            m = mask[i, ::step, ::step]
            den += m.sum()
            for y in range(r.shape[0]):
                for x in range(r.shape[1]):
                    if x + 1 < r.shape[1] and m[y, x] and m[y, x + 1]:
                        num += abs(r[y, x + 1] - r[y, x])
                    if y + 1 < r.shape[0] and m[y, x] and m[y + 1, x]:
                        num += abs(r[y + 1, x] - r[y, x])
        grad_total += num / den
    return grad_total


def _reference_ssitrim(pred: np.ndarray, target: np.ndarray, mask: np.ndarray, trim: float,
                       alpha: float, scales: int) -> float:
    """MiDaS v3's robust loss from the REFERENCE: each map shifted by the median of its
    valid pixels and scaled by their mean absolute deviation; per image, the largest
    `trim` fraction of |residual| dropped; the kept sum over 2 * all valid pixels."""
    def normalise(v: np.ndarray) -> np.ndarray:
        median = np.sort(v)[(len(v) - 1) // 2]  # the lower median, as torch.median
        return (v - median) / max(np.abs(v - median).mean(), 1e-6)
    residuals = np.zeros_like(pred)
    kept = 0.0
    for i in range(pred.shape[0]):
        valid = mask[i]
        r = normalise(pred[i][valid]) - normalise(target[i][valid])
        residuals[i][valid] = r
        keep = int(np.floor(len(r) * (1.0 - trim) + 1e-9))
        kept += np.sort(np.abs(r))[:keep].sum()
    return kept / (2.0 * mask.sum()) + alpha * _reference_gradient(residuals, mask, scales)


def test_ssi_matches_hand_computation_float64():
    pred = np.array(
        [
            [[0.1, 0.5, 0.9, 0.3], [0.7, 0.2, 0.4, 0.8], [0.6, 0.0, 0.35, 0.55], [0.25, 0.45, 0.65, 0.85]],
            [[1.0, 2.0, 3.0, 4.0], [2.0, 5.0, 1.0, 3.0], [4.0, 4.5, 0.5, 2.5], [3.5, 1.5, 2.2, 0.7]],
        ]
    )
    target = np.array(
        [
            [[0.3, 0.1, 0.8, 0.2], [0.9, 0.4, 0.5, 0.6], [0.7, 0.15, 0.3, 0.75], [0.2, 0.5, 0.95, 0.4]],
            [[0.2, 0.4, 0.5, 0.9], [0.3, 0.8, 0.1, 0.6], [0.7, 1.0, 0.0, 0.4], [0.5, 0.35, 0.45, 0.05]],
        ]
    )
    mask = np.ones_like(pred, dtype=bool)
    mask[0, 0, 1] = mask[0, 2, 2] = mask[0, 3, 3] = False
    mask[1, 1, 0] = mask[1, 1, 1] = False
    expected = _reference_ssi(pred, target, mask, alpha=0.5, scales=4)
    got = SSILoss()(torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(mask))
    assert got.dtype == torch.float64
    assert got.item() == pytest.approx(expected, abs=1e-10, rel=0)
    # alpha = 0 isolates the data term, so a wrong gradient term cannot hide a wrong data term.
    data_only = SSILoss(alpha=0.0)(torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(mask))
    assert data_only.item() == pytest.approx(_reference_ssi(pred, target, mask, 0.0, 4), abs=1e-10, rel=0)
    assert expected > data_only.item() + 1e-3


@pytest.mark.parametrize("reduction", ["batch", "image"])
@pytest.mark.parametrize("a, b", [(0.01, 0.0), (3.0, -2.0), (250.0, 40.0), (-1.5, 0.3)])
def test_ssi_invariant_to_scale_and_shift(reduction: str, a: float, b: float):
    pred, target, mask = _batch(seed=10)
    loss = SSILoss(reduction=reduction)
    base = loss(pred, target, mask)
    assert base > 0.01
    torch.testing.assert_close(loss(a * pred + b, target, mask), base, rtol=1e-4, atol=1e-6)


def test_ssi_zero_for_affine_prediction():
    target = _rand((4, 64, 64), 11)
    mask = _rand((4, 64, 64), 12) > 0.2
    pred = 7.0 * target - 3.0
    pred[~mask] = 1e3  # garbage where invalid must not matter
    assert SSILoss()(pred, target, mask).item() < 1e-6
    assert SSILoss(reduction="image")(pred, target, mask).item() < 1e-6


def test_ssi_accepts_channel_dim_and_float_mask():
    pred, target, mask = _batch(seed=13)
    loss = SSILoss()
    ref = loss(pred, target, mask)
    torch.testing.assert_close(loss(pred[:, None], target[:, None], mask[:, None].float()), ref)


def test_ssi_ignores_nan_in_invalid_target_pixels():
    pred, target, mask = _batch(seed=14)
    poisoned = target.clone()
    poisoned[~mask] = float("nan")
    _finite_loss_and_grad(SSILoss(), pred, poisoned, mask)
    torch.testing.assert_close(SSILoss()(pred, poisoned, mask), SSILoss()(pred, target, mask))


@pytest.mark.parametrize("loss_fn", [SSILoss(), SSILoss(reduction="image"), SSITrimLoss()])
def test_degenerate_inputs_give_finite_loss_and_grad(loss_fn):
    target = _rand((3, 32, 32), 15)
    constant = torch.full((3, 32, 32), 0.7)
    full = torch.ones(3, 32, 32, dtype=torch.bool)
    _finite_loss_and_grad(loss_fn, constant, target, full)
    empty_loss, grad = _finite_loss_and_grad(loss_fn, _rand((3, 32, 32), 16), target, torch.zeros_like(full))
    assert empty_loss.item() == 0.0 and torch.count_nonzero(grad) == 0
    single = torch.zeros_like(full)
    single[:, 3, 4] = True
    _finite_loss_and_grad(loss_fn, _rand((3, 32, 32), 17), target, single)


@pytest.mark.parametrize("reduction", ["batch", "image"])
def test_constant_prediction_pays_the_target_variance(reduction: str):
    """A collapsed (constant) output must never score better than trying: it pays
    var(target) / 2, so a network cannot lower the loss by letting its ReLU die."""
    _, target, _ = _batch(b=1, seed=18)
    mask = torch.ones(1, 16, 16, dtype=torch.bool)
    constant = torch.full((1, 16, 16), 0.42, requires_grad=True)
    loss = SSILoss(alpha=0.0, reduction=reduction)(constant, target, mask)
    torch.testing.assert_close(loss, target.var(unbiased=False) / 2)
    loss.backward()
    assert torch.isfinite(constant.grad).all()
    assert float(SSILoss(reduction=reduction)(constant.detach(), target, mask)) > float(
        SSILoss(reduction=reduction)(3 * target + 1, target, mask))


@pytest.mark.parametrize("reduction", ["batch", "image"])
def test_image_with_a_single_valid_pixel_contributes_nothing(reduction: str):
    pred, target, _ = _batch(b=2, seed=18)
    mask = torch.ones(2, 16, 16, dtype=torch.bool)
    loss = SSILoss(reduction=reduction)
    good_only = loss(pred[:1], target[:1], mask[:1])
    single = mask.clone()
    single[1] = False
    single[1, 2, 2] = True
    torch.testing.assert_close(loss(pred, target, single), good_only)


def test_image_and_batch_reduction_differ_only_for_unequal_valid_counts():
    pred, target, _ = _batch(b=2, h=32, w=32, seed=19)
    batch_loss, image_loss = SSILoss(reduction="batch"), SSILoss(reduction="image")
    # Equal counts at every scale: pooling and per-image averaging coincide.
    same = _rand((1, 32, 32), 20).expand(2, 32, 32) > 0.3
    torch.testing.assert_close(batch_loss(pred, target, same), image_loss(pred, target, same))
    ragged = same.clone()
    ragged[1, :24] = False  # image 1 keeps a quarter of its pixels
    assert abs(batch_loss(pred, target, ragged) - image_loss(pred, target, ragged)) > 1e-3
    # Image reduction = plain mean of the single-image losses.
    singles = [image_loss(pred[i : i + 1], target[i : i + 1], ragged[i : i + 1]) for i in range(2)]
    torch.testing.assert_close(image_loss(pred, target, ragged), (singles[0] + singles[1]) / 2)


def test_image_reduction_skips_empty_images():
    pred, target, mask = _batch(b=2, seed=21)
    loss = SSILoss(reduction="image")
    with_empty = mask.clone()
    with_empty[1] = False
    torch.testing.assert_close(loss(pred, target, with_empty), loss(pred[:1], target[:1], mask[:1]))


def test_gradient_term_uses_alpha_and_scales():
    pred, target, mask = _batch(seed=22)
    data = SSILoss(alpha=0.0)(pred, target, mask)
    one = SSILoss(alpha=1.0, scales=1)(pred, target, mask)
    four = SSILoss(alpha=1.0, scales=4)(pred, target, mask)
    half = SSILoss(alpha=0.5, scales=4)(pred, target, mask)
    assert one > data and four > one
    torch.testing.assert_close(half - data, (four - data) / 2)


def test_loss_under_bf16_autocast_is_float32_and_close():
    pred, target, mask = _batch(b=2, h=64, w=64, seed=23)
    pred16 = pred.bfloat16().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for loss_fn in (SSILoss(), SSITrimLoss()):
            got = loss_fn(pred16, target, mask)
            assert got.dtype == torch.float32
            torch.testing.assert_close(got, loss_fn(pred16.detach().float(), target, mask))
            got.backward()
    assert pred16.grad is not None and torch.isfinite(pred16.grad.float()).all()


# ---------------------------------------------------------------- SSITrimLoss


@pytest.mark.parametrize("a, b", [(0.05, 0.0), (4.0, -3.0), (900.0, 17.0)])
def test_ssitrim_invariant_to_scale_and_shift(a: float, b: float):
    pred, target, mask = _batch(seed=30)
    loss = SSITrimLoss()
    base = loss(pred, target, mask)
    assert base > 0.01
    torch.testing.assert_close(loss(a * pred + b, target, mask), base, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(loss(pred, a * target + b, mask), base, rtol=1e-4, atol=1e-6)


# Ten valid values whose lower median is 0 and mean |x| is 1, so robust normalisation
# leaves them unchanged; permuting them keeps both statistics, so residuals are exact.
_TRIM_TARGET = [-3.0, -1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 3.0]
# Swap -3 <-> 3 (residuals 6, 6) and the first -1 <-> first 1 (residuals 2, 2).
_TRIM_PRED = [3.0, 1.0, -1.0, 0.0, 0.0, 0.0, 0.0, -1.0, 1.0, -3.0]


def _trim_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    pred = torch.zeros(1, 4, 4)
    target = torch.zeros(1, 4, 4)
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask.view(-1)[:10] = True
    pred.view(-1)[:10] = torch.tensor(_TRIM_PRED)
    target.view(-1)[:10] = torch.tensor(_TRIM_TARGET)
    pred.view(-1)[10:] = 50.0  # invalid pixels, must be ignored
    return pred, target, mask


@pytest.mark.parametrize(
    "trim, expected",
    [
        (0.0, (6 + 6 + 2 + 2) / 20),  # nothing dropped
        (0.1, (6 + 2 + 2) / 20),  # keep floor(9.0) = 9: one 6 dropped
        (0.2, (2 + 2) / 20),  # keep 8: both 6s dropped
        (0.4, 0.0),  # keep 6: only zero residuals left
    ],
)
def test_ssitrim_drops_exactly_the_largest_fraction(trim: float, expected: float):
    pred, target, mask = _trim_case()
    got = SSITrimLoss(trim=trim, alpha=0.0)(pred, target, mask)
    assert got.item() == pytest.approx(expected, abs=1e-6)


def test_ssitrim_drops_the_largest_20_percent_unless_told_otherwise():
    """REFERENCE section 2: the trimmed MAE drops the largest 20% of residuals. The
    config name `ssitrim` builds the loss with its defaults, so they are the recipe."""
    default = build_loss("ssitrim")
    assert default.trim == 0.2 and default.alpha == 0.5
    pred, target, mask = _trim_case()
    assert build_loss("ssitrim", alpha=0.0)(pred, target, mask).item() == pytest.approx(4 / 20)


def test_ssitrim_ignores_huge_outliers_within_the_trim():
    # Values -50 and 50 swap places: two residuals of 100 (20% of 10 valid pixels),
    # every other residual is exactly 0, and both maps keep median 0 and mean |x| = 10.
    pred, target, mask = _trim_case()
    values = torch.tensor([-50.0, 0, 0, 0, 0, 0, 0, 0, 0, 50.0])
    target.view(-1)[:10] = values
    pred.view(-1)[:10] = values.flip(0)
    assert SSITrimLoss(trim=0.0, alpha=0.0)(pred, target, mask).item() == pytest.approx(1.0)
    assert SSITrimLoss(trim=0.2, alpha=0.0)(pred, target, mask).item() == pytest.approx(0.0, abs=1e-7)
    # Scaled and shifted, the outliers are still the ones dropped.
    shifted = SSITrimLoss(trim=0.2, alpha=0.0)(3.0 * pred + 1.0, target, mask)
    assert shifted.item() == pytest.approx(0.0, abs=1e-6)


def test_robust_normalise_uses_valid_pixels_only():
    # Two thirds of the pixels are invalid zeros: counting them would make the median 0.
    x = torch.zeros(2, 6, 6)
    mask = torch.zeros(2, 6, 6, dtype=torch.bool)
    values = torch.linspace(5.0, 9.0, 12)
    x.view(2, -1)[:, :12] = values
    mask.view(2, -1)[:, :12] = True
    mask[1, 0, 0] = False  # 11 valid values in image 1
    out = robust_normalise(x, mask)
    for i in range(2):
        valid = x[i][mask[i]]
        med = valid.median()  # lower median, as torch.median
        expected = (valid - med) / (valid - med).abs().mean()
        torch.testing.assert_close(out[i][mask[i]], expected)
        assert torch.all(out[i][~mask[i]] == 0)


def test_ssitrim_median_ignores_invalid_pixels():
    # Valid pixels: prediction = 2 * target + 3, exactly equivalent after normalisation.
    # Most pixels are invalid; a median counting them as zeros breaks the equivalence.
    target = 1.0 + _rand((2, 16, 16), 31)
    mask = torch.zeros(2, 16, 16, dtype=torch.bool)
    mask[:, :5] = True
    pred = 2.0 * target + 3.0
    assert SSITrimLoss()(pred, target, mask).item() < 1e-5


@pytest.mark.parametrize(("alpha", "scales"), [(0.5, 4), (1.0, 1), (0.0, 4)])
def test_ssitrim_matches_the_reference_per_image_trim_and_gradient_term(alpha, scales):
    """Two images of different valid counts and content: trimming pooled over the batch
    keeps another set of pixels (0.4031 here, against 0.3994 per image)."""
    rng = np.random.default_rng(33)
    pred, target = rng.uniform(0.1, 1.0, (2, 2, 12, 16))
    target[0] += 10.0 * rng.uniform(0.0, 1.0, (12, 16))
    mask = rng.uniform(size=(2, 12, 16)) > 0.2
    mask[1, :4] = False
    got = SSITrimLoss(trim=0.2, alpha=alpha, scales=scales)(
        torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(mask))
    assert got.item() == pytest.approx(_reference_ssitrim(pred, target, mask, 0.2, alpha, scales),
                                       rel=1e-9)


# ---------------------------------------------------------------- build_loss


def test_build_loss_names():
    assert isinstance(build_loss("ssi"), SSILoss) and build_loss("ssi").reduction == "batch"
    assert build_loss("ssi-image").reduction == "image"
    trim = build_loss("ssitrim", trim=0.3, alpha=0.0)
    assert isinstance(trim, SSITrimLoss) and trim.trim == 0.3 and trim.alpha == 0.0
    assert build_loss("ssi", alpha=0.0, scales=2).scales == 2


def test_build_loss_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as info:
        build_loss("l1-silog")
    message = str(info.value)
    assert "l1-silog" in message
    for name in LOSS_NAMES:
        assert name in message


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: SSILoss(reduction="mean"), r"reduction must be 'batch' or 'image', got 'mean'"),
        (lambda: SSILoss(alpha=-1.0), "alpha must be >= 0, got -1.0"),
        (lambda: SSILoss(scales=0), "scales must be >= 1, got 0"),
        (lambda: SSITrimLoss(trim=1.0), r"trim must be in \[0, 1\), got 1.0"),
        # NaN was taken, then read as 0 (no gradient term); the rest failed unnamed
        (lambda: SSILoss(alpha=float("nan")), "alpha must be a finite number, got nan"),
        (lambda: SSILoss(alpha=float("inf")), "alpha must be a finite number, got inf"),
        (lambda: SSILoss(alpha="0.5"), "alpha must be a finite number, got '0.5'"),
        (lambda: SSILoss(scales=2.5), "scales must be a finite whole number, got 2.5"),
        (lambda: SSITrimLoss(trim=None), "trim must be a finite number, got None"),
    ],
)
def test_invalid_arguments_raise(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match=r"target \(2, 8, 9\)"):
        SSILoss()(torch.rand(2, 8, 8), torch.rand(2, 8, 9), torch.ones(2, 8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\[B,1,H,W\] or \[B,H,W\], got shape \(2, 3, 8, 8\)"):
        SSILoss()(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8), torch.ones(2, 3, 8, 8, dtype=torch.bool))


def test_constant_prediction_score_is_any_constants_score():
    """`depthnas train` compares a model with this level: every constant prediction
    scores it (scale and shift invariance), and it is not zero."""
    from depthnas.scoring import constant_score
    from depthnas.task import DepthTask
    from toys import BlobDepth
    data, task = BlobDepth(n=6, size=32), DepthTask("ssi")
    base = constant_score(task, data, batch_size=4)
    batch = torch.utils.data.default_collate([data[i] for i in range(6)])
    for c in (0.0, 1.0, 7.5):
        s, n = task.score(torch.full_like(batch["target"], c), batch)
        assert float(pooled_loss(s, n)) == pytest.approx(base, rel=1e-6)
    assert base > 0.01


@pytest.mark.parametrize("loss", ["ssi", "ssi-image", "ssitrim"])
def test_the_validation_score_is_the_loss_of_the_whole_split_whatever_its_batching(loss):
    """Batch losses weighted by their image counts moved with the batch size where
    masks differ in size (ReDWeb's sky, NYUv2's holes): 0.174 at batch 1, 0.188 at 6
    for one model. Pooled, each batching gives the loss of the split as one batch."""
    from depthnas.scoring import evaluate_fixed
    from depthnas.task import DepthTask
    from toys import BlobDepth

    class Holes(torch.utils.data.Dataset):  # image i: its top 4*i rows unmeasured
        def __init__(self):
            self.data = BlobDepth(n=6, size=32)

        def __len__(self):
            return 6

        def __getitem__(self, i):
            item = dict(self.data[i])
            item["mask"] = item["mask"].clone()
            item["mask"][..., : 4 * i, :] = False
            return item

    class Fixed(torch.nn.Module):  # a prediction that is neither right nor constant
        def forward(self, x):
            return x.mean(1, keepdim=True) ** 2
    task = DepthTask(loss)
    whole = torch.utils.data.default_collate([Holes()[i] for i in range(6)])
    expected = float(task.loss(Fixed()(whole["image"]), whole))
    for batch_size in (1, 2, 4, 6):
        got = evaluate_fixed(Fixed(), task, Holes(), batch_size=batch_size)
        assert got == pytest.approx(expected, rel=1e-6), batch_size
    s, n = task.score(Fixed()(whole["image"]), whole)
    assert float(pooled_loss(s, n)) == pytest.approx(expected, rel=1e-6)


def test_a_small_spread_on_a_large_offset_is_a_prediction_not_a_constant():
    """Invariance to scale and shift must hold in float32 as long as the prediction
    really varies: p * 1e-3 + 100 has ~130 distinct float32 values per image."""
    gen = torch.Generator().manual_seed(0)
    p = torch.rand(2, 1, 32, 32, generator=gen)
    d = p + 0.01 * torch.rand(2, 1, 32, 32, generator=gen)  # a good prediction of d
    m = torch.ones_like(d, dtype=torch.bool)
    squeezed = p * 1e-3 + 100.0
    exact = float(SSILoss()(squeezed.double(), d.double(), m))  # the same float32 values
    # was 1.26 (the fit called it constant), then 0.0170 (s * p + t cancelled digits)
    assert float(SSILoss()(squeezed, d, m)) == pytest.approx(exact, rel=0.01)
    assert float(SSILoss()(torch.full_like(p, 100.0), d, m)) > 10 * exact  # constant: pays the variance


def test_a_degenerate_fit_keeps_the_mean_target_shift_even_beside_an_infinite_pixel():
    pred = torch.full((1, 8, 8), 0.5)
    pred[0, 0, 0] = float("inf")
    target = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(0))
    scale, shift = compute_scale_and_shift(pred, target, torch.ones_like(target, dtype=torch.bool))
    assert float(scale) == 0.0 and float(shift) == pytest.approx(float(target.mean()))


def test_the_default_loss_matches_gradients_at_four_scales_with_weight_one_half():
    """MiDaS' default: data term + 0.5 * gradient matching over 4 scales (2^0..2^3), each
    normalised by its own valid count. Checked against a plain numpy reading of the
    formula on 16x16 images, where scales 2 and 3 contribute (on 4x4 they do not)."""
    rng = np.random.default_rng(0)
    pred = rng.random((2, 16, 16))
    target = rng.random((2, 16, 16))
    mask = rng.random((2, 16, 16)) > 0.2
    loss = SSILoss()
    assert (loss.alpha, loss.scales) == (0.5, 4)

    def reference(scales: int) -> float:
        res, n = [], 0.0
        for p, d, m in zip(pred, target, mask):
            a = np.stack([p[m], np.ones(m.sum())], 1)
            s, t = np.linalg.lstsq(a, d[m], rcond=None)[0]
            res.append(np.where(m, s * p + t - d, 0.0))
            n += m.sum()
        r, mk = np.stack(res), mask.astype(float)
        data = (r ** 2).sum() / (2 * n)
        grad = 0.0
        for k in range(scales):
            rk, mm = r[:, ::2 ** k, ::2 ** k], mk[:, ::2 ** k, ::2 ** k]
            gx = np.abs(np.diff(rk, axis=2)) * mm[:, :, 1:] * mm[:, :, :-1]
            gy = np.abs(np.diff(rk, axis=1)) * mm[:, 1:, :] * mm[:, :-1, :]
            grad += (gx.sum() + gy.sum()) / mm.sum()
        return data + 0.5 * grad

    got = float(loss(torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(mask)))
    assert got == pytest.approx(reference(4), rel=1e-9)
    assert abs(reference(4) - reference(2)) > 1e-3  # the coarse scales matter here


@pytest.mark.parametrize("loss", [SSILoss(), SSITrimLoss()])
def test_an_array_instead_of_a_tensor_is_named(loss):
    """A numpy prediction failed as "'str' object has no attribute 'type'"."""
    t = torch.rand(1, 1, 8, 8)
    with pytest.raises(TypeError, match="prediction must be a torch.Tensor, got ndarray"):
        loss(t.numpy(), t, t > 0)
    with pytest.raises(TypeError, match="mask must be a torch.Tensor, got ndarray"):
        loss(t, t, (t > 0).numpy())


def test_a_mask_of_another_shape_is_refused_not_broadcast():  # S1
    pred, target, mask = _batch(b=3)
    with pytest.raises(ValueError, match=r"mask \(1, 16, 16\) must match"):
        SSILoss()(pred, target, mask[:1])  # one mask for three images would broadcast


def test_a_float64_target_keeps_the_loss_in_float64_whichever_side_carries_it():  # S2
    pred, target, mask = _batch(dtype=torch.float64)
    assert SSILoss()(pred.float(), target, mask).dtype == torch.float64
    assert SSILoss()(pred, target.float(), mask).dtype == torch.float64


def test_a_float_mask_counts_every_non_zero_value_as_valid():  # S3
    pred, target, mask = _batch()
    soft = mask.float() * 0.3  # e.g. a confidence map: non-zero = valid
    for loss in (SSILoss(), SSITrimLoss()):
        torch.testing.assert_close(loss(pred, target, soft), loss(pred, target, mask))


def test_a_constant_prediction_whose_mean_rounds_off_is_still_degenerate():  # S6
    """18.897 over 12345 pixels: float32's mean is off by more than the spread tolerance
    allows, but the map is constant: scale 0 and the mean target, not a tiny fit."""
    pred = torch.full((1, 1, 12345), 18.89696502685547)
    target = torch.rand(1, 1, 12345, generator=torch.Generator().manual_seed(0))
    scale, shift = compute_scale_and_shift(pred, target, torch.ones_like(target, dtype=torch.bool))
    assert scale.item() == 0.0 and shift.item() == pytest.approx(target.mean().item(), rel=1e-6)


def test_ssitrim_keeps_a_fraction_that_float_rounding_puts_just_below_a_whole_pixel():  # S21
    """10 * (1 - 0.8) is 1.9999999999999996 in floats: ten pixels at trim=0.8 keep two
    residuals (floor(n * (1 - trim)), as the docstring says), not one."""
    from depthnas.ssi_loss import robust_normalise
    g = torch.Generator().manual_seed(3)
    pred, target = torch.rand(2, 1, 1, 10, generator=g, dtype=torch.float64)
    mask = torch.ones(1, 1, 10, dtype=torch.bool)
    residual = (robust_normalise(pred, mask) - robust_normalise(target, mask)).abs().flatten()
    smallest = residual.sort().values
    assert smallest[1] > 0  # keeping one or two differs
    for trim, keep in ((0.8, 2), (0.9, 1)):
        got = SSITrimLoss(trim=trim, alpha=0.0)(pred, target, mask).item()
        assert got == pytest.approx(smallest[:keep].sum().item() / 20, rel=1e-9), trim


def test_every_configurable_depth_loss_builds_and_has_a_score_name():
    """config_checks accepts the names in choices; each must build and be named in the
    report (a name added to one list but not the other failed only as training began)."""
    from depthnas.choices import DEPTH_LOSSES
    from depthnas.task import DepthTask
    assert set(DEPTH_LOSSES) == set(LOSS_NAMES)
    for name in DEPTH_LOSSES:
        assert isinstance(build_loss(name), torch.nn.Module)
        assert DepthTask(name).score_name


@pytest.mark.parametrize("loss", [SSILoss(), SSILoss(alpha=0.0), SSILoss(reduction="image"),
                                  SSITrimLoss(), SSITrimLoss(alpha=0.0)], ids=repr)
def test_every_depth_loss_s_gradient_is_its_finite_difference(loss):
    """What trains the network is the gradient, and a detached term (the trimmed data
    term, the alignment's scale, the median) leaves every loss value as it was."""
    pred, target, mask = _batch(b=2, h=8, w=8, seed=40, dtype=torch.float64)
    pred.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: loss(p, target, mask), (pred,), eps=1e-6, atol=1e-7)


def test_an_image_of_exactly_two_valid_pixels_is_fitted_and_counted():
    """Two pixels are what a scale and a shift need: such an image is in the loss (at 0,
    fitted exactly) and its pixels in the denominator, as the validation score counts."""
    pred, target, mask = _batch(b=2, seed=41, dtype=torch.float64)
    mask[1] = False
    mask[1, 2, 3] = mask[1, 5, 7] = True
    _, den = SSILoss(alpha=0.0).terms(pred, target, mask)
    assert den.tolist() == [2.0 * (mask[0].sum().item() + 2)]  # the split's pixels, twice (pooled)
    scale, shift = compute_scale_and_shift(pred, target, mask)
    fitted = scale[1] * pred[1][mask[1]] + shift[1]
    torch.testing.assert_close(fitted, target[1][mask[1]])


def test_the_trimmed_loss_holds_for_an_output_of_any_small_scale():
    """REFERENCE clamps the mean absolute deviation at 1e-6 only so that a constant map
    divides by no zero: a raw output at 1e-4 of its size is still normalised alike."""
    pred, target, mask = _batch(seed=42, dtype=torch.float64)
    torch.testing.assert_close(robust_normalise(pred * 1e-4, mask), robust_normalise(pred, mask))
    torch.testing.assert_close(SSITrimLoss()(pred * 1e-4, target, mask), SSITrimLoss()(pred, target, mask))


@pytest.mark.parametrize("loss", [SSILoss(), SSITrimLoss()], ids=repr)
def test_a_non_finite_output_at_an_invalid_pixel_is_ignored(loss):
    """The network's output under a mask hole (sky, no return) is not the loss's to
    read: a NaN or inf there must not reach the loss or its gradient."""
    pred, target, mask = _batch(seed=43)
    poisoned = pred.clone()
    poisoned[~mask] = float("nan")
    poisoned[~mask & (target > 0.5)] = float("inf")
    _finite_loss_and_grad(loss, poisoned, target, mask)
    torch.testing.assert_close(loss(poisoned, target, mask), loss(pred, target, mask))


def test_a_map_that_varies_by_rounding_alone_on_a_sparse_mask_is_degenerate():
    """A hundred valid pixels of ten thousand, each 100 plus or minus three float32
    steps: noise of the format (its tolerance grows with the pixel count, as the sum
    of squares does, and with the largest valid value), not a prediction to scale up
    to the target."""
    pred = torch.full((1, 100, 100), 100.0)
    mask = torch.zeros(1, 100, 100, dtype=torch.bool)
    mask[0, 0] = True
    step = (torch.nextafter(torch.tensor(100.0), torch.tensor(200.0)) - 100.0).item()
    pred[0, 0, 0::2] += 3 * step
    pred[0, 0, 1::2] -= 3 * step
    scale, shift = compute_scale_and_shift(pred, _rand((1, 100, 100), 44), mask)
    assert scale.item() == 0.0
    pred[0, 0, 0::2] += 100 * step  # a real, if small, signal is fitted
    assert compute_scale_and_shift(pred, _rand((1, 100, 100), 44), mask)[0].item() != 0.0
