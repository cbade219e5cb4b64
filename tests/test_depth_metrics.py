"""Spec tests for the evaluation metrics (REFERENCE.md section 2, last item)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from depthnas.depth_metrics import METRIC_NAMES, MetricAccumulator, align_prediction, depth_metrics, inverted

# Prediction [a, a, b, b] and target [a-e, a+e, b+e, b-e]: the residual is orthogonal
# to both the prediction and the constant, so least squares gives s = 1, t = 0 and
# every metric is a closed form of these numbers.
_P = [1.0, 1.0, 4.0, 4.0]
_D = [0.7, 1.3, 4.3, 3.7]


def _image(pred_values: list[float], target_values: list[float], garbage: float = 0.0):
    """3x3 double image: the first four pixels carry values, the rest are masked out."""
    pred = torch.full((1, 1, 3, 3), garbage, dtype=torch.float64)
    target = torch.full((1, 1, 3, 3), garbage, dtype=torch.float64)
    mask = torch.zeros(1, 1, 3, 3, dtype=torch.bool)
    pred.view(-1)[:4] = torch.tensor(pred_values, dtype=torch.float64)
    target.view(-1)[:4] = torch.tensor(target_values, dtype=torch.float64)
    mask.view(-1)[:4] = True
    return pred, target, mask


def _expected(pred_disp: list[float], target_disp: list[float]) -> dict[str, float]:
    dp = [1.0 / v for v in pred_disp]
    dg = [1.0 / v for v in target_disp]
    n = len(dp)
    return {
        "absrel": sum(abs(p - g) / g for p, g in zip(dp, dg)) / n,
        "delta1": 100.0 * sum(max(p / g, g / p) > 1.25 for p, g in zip(dp, dg)) / n,
        "rmse": math.sqrt(sum((p - g) ** 2 for p, g in zip(dp, dg)) / n),
    }


def test_perfect_affine_prediction_scores_zero():
    g = torch.Generator().manual_seed(0)
    target = 0.1 + 0.9 * torch.rand(3, 1, 48, 48, generator=g)
    pred = 3.0 * target - 0.5  # negative raw values are fine: only the aligned map counts
    mask = torch.rand(3, 1, 48, 48, generator=g) > 0.2
    out = depth_metrics(pred, target, mask)
    assert set(out) == set(METRIC_NAMES)
    assert out["absrel"] < 1e-5 and out["delta1"] == 0.0 and out["rmse"] < 1e-4 and out["ssi"] < 1e-6


def test_ssi_is_the_training_score_whatever_the_targets_units():
    """`ssi` scores against the per-image min-max target, as training and the search do:
    raw ReDWeb values (0-254) or disparity in 1/m must not change it."""
    from depthnas.datasets.transforms import normalize_target
    from depthnas.ssi_loss import SSILoss
    g = torch.Generator().manual_seed(1)
    target = 0.2 + torch.rand(2, 1, 32, 32, generator=g)
    pred = target + 0.2 * torch.rand(2, 1, 32, 32, generator=g)
    mask = torch.rand(2, 1, 32, 32, generator=g) > 0.1
    base = depth_metrics(pred, target, mask)["ssi"]
    assert depth_metrics(pred, 254.0 * target + 3.0, mask)["ssi"] == pytest.approx(base, rel=1e-5)
    normalised = torch.stack([torch.from_numpy(normalize_target(t[0].numpy(), m[0].numpy()))[None]
                              for t, m in zip(target, mask)])
    assert base == pytest.approx(float(SSILoss()(pred, normalised, mask)), rel=1e-5)


def test_known_perturbation_matches_hand_values():
    pred, target, mask = _image(_P, _D, garbage=123.0)
    out = depth_metrics(pred, target, mask)
    assert out["absrel"] == pytest.approx(0.1875)  # mean |d/p - 1| = (.3+.3+.075+.075)/4
    assert out["delta1"] == pytest.approx(50.0)  # 1/0.7 and 1.3 exceed 1.25
    exp = _expected(_P, _D)
    assert out["absrel"] == pytest.approx(exp["absrel"]) and out["delta1"] == pytest.approx(exp["delta1"])
    assert out["rmse"] == pytest.approx(exp["rmse"], rel=1e-9)
    assert out["rmse"] == pytest.approx(0.2437432, abs=1e-6)


def test_metrics_are_invariant_to_prediction_scale_and_shift():
    pred, target, mask = _image(_P, _D)
    base = depth_metrics(pred, target, mask)
    moved = depth_metrics(0.2 * pred + 9.0, target, mask)
    for name in METRIC_NAMES:
        assert moved[name] == pytest.approx(base[name], rel=1e-9, abs=1e-12)


def test_depth_cap_excludes_far_targets_and_clamps_prediction():
    # a = 0.08, e = 0.03, b = 1, e = 0.03: target depths 20 m (excluded by the 10 m cap),
    # 9.09 m (kept; its prediction 0.08 is clamped to 0.1, i.e. 10 m), ~1 m, ~1 m.
    p = [0.08, 0.08, 1.0, 1.0]
    d = [0.05, 0.11, 1.03, 0.97]
    pred, target, mask = _image(p, d)
    out = depth_metrics(pred, target, mask, depth_cap=10.0)
    exp = _expected([0.1, 1.0, 1.0], d[1:])
    for name in ("absrel", "delta1", "rmse"):
        assert out[name] == pytest.approx(exp[name], rel=1e-9), name
    uncapped = depth_metrics(pred, target, mask)
    exp_uncapped = _expected(p, d)
    for name in ("absrel", "delta1", "rmse"):
        assert uncapped[name] == pytest.approx(exp_uncapped[name], rel=1e-9), name


def test_masked_and_zero_target_pixels_are_ignored():
    pred, target, mask = _image(_P, _D)
    base = depth_metrics(pred, target, mask)
    noisy_pred, noisy_target = pred.clone(), target.clone()
    noisy_pred.view(-1)[4:] = torch.tensor([1e3, -7.0, 0.0, 5.0, 2.0], dtype=torch.float64)
    noisy_target.view(-1)[4:] = torch.tensor([float("nan"), float("inf"), 0.0, 1e-9, 2.0], dtype=torch.float64)
    assert depth_metrics(noisy_pred, noisy_target, mask) == pytest.approx(base)
    # A pixel inside the mask with target disparity 0 (infinitely far, e.g. sky) is not scored.
    with_sky = mask.clone()
    with_sky.view(-1)[6] = True
    sky_target = target.clone()
    sky_target.view(-1)[6] = 0.0
    out = depth_metrics(pred, sky_target, with_sky)
    # Alignment still sees the sky pixel (it is in the mask), so compare against the fit.
    aligned = align_prediction(pred, sky_target, with_sky).view(-1)[:4].tolist()
    exp = _expected(aligned, _D)
    for name in ("absrel", "delta1", "rmse"):
        assert out[name] == pytest.approx(exp[name], rel=1e-9), name


def test_metrics_average_over_images_with_valid_pixels():
    pred, target, mask = _image(_P, _D)
    perfect_pred, perfect_target, perfect_mask = _image([1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0])
    empty_mask = torch.zeros_like(mask)
    out = depth_metrics(
        torch.cat([pred, perfect_pred, pred]),
        torch.cat([target, perfect_target, target]),
        torch.cat([mask, perfect_mask, empty_mask]),
    )
    assert out["absrel"] == pytest.approx(0.1875 / 2)
    assert out["delta1"] == pytest.approx(25.0)


def test_an_empty_mask_scores_nan_not_a_perfect_zero():
    """With no pixel to score, 0.0 read as a perfect model to a library caller."""
    pred = torch.rand(2, 1, 8, 8)
    target = torch.rand(2, 1, 8, 8) + 0.1
    out = depth_metrics(pred, target, torch.zeros(2, 1, 8, 8, dtype=torch.bool))
    assert set(out) == {"ssi", "absrel", "delta1", "rmse", "inverted"}
    assert all(math.isnan(v) for v in out.values())
    beyond = depth_metrics(pred, target, torch.ones(2, 1, 8, 8, dtype=torch.bool), depth_cap=0.5)
    assert all(math.isnan(v) for v in beyond.values())  # every pixel beyond 0.5 m (disparity < 2)
    acc = MetricAccumulator()
    acc.update(pred, target, torch.zeros(2, 1, 8, 8, dtype=torch.bool))
    assert acc.count == 0 and all(math.isnan(v) for v in acc.compute().values())


def test_a_prediction_with_near_and_far_swapped_scores_alike_but_is_counted_inverted():
    """The SSI fit takes a scale of either sign: a model predicting near as far has the
    loss and metrics of one the right way round. Only the fit's sign tells them apart,
    and predict shows the raw output."""
    from depthnas.depth_metrics import inverted
    gen = torch.Generator().manual_seed(0)  # the test's own draws, whatever ran before
    target = 0.1 + torch.rand(4, 1, 16, 16, generator=gen)
    mask = torch.ones(4, 1, 16, 16, dtype=torch.bool)
    right, swapped = 2.0 * target + 1.0, -3.0 * target + 5.0
    a, b = depth_metrics(right, target, mask), depth_metrics(swapped, target, mask)
    assert a["ssi"] == pytest.approx(b["ssi"], abs=1e-6) and a["absrel"] == pytest.approx(b["absrel"], abs=1e-5)
    assert a["inverted"] == 0.0 and b["inverted"] == 100.0
    half = torch.cat([right[:2], swapped[2:]])
    assert depth_metrics(half, target, mask)["inverted"] == 50.0
    assert inverted(half, target, mask) == (2, 4)
    # a constant image has no sign: fitted with scale 0, never inverted
    assert inverted(torch.ones_like(target), target, mask) == (0, 4)
    # nor has a model that learned nothing: noise fits with a sign that is a coin toss
    # (it was counted whenever the toss came out negative)
    noise, far = torch.rand(2, 64, 1, 16, 16, generator=gen)
    assert inverted(noise, 0.1 + far, torch.ones(64, 1, 16, 16, dtype=torch.bool)) == (0, 64)
    # a constant target whose variance is float rounding: no sign either, whatever the constant
    for level in (0.3, 0.7):
        flat = torch.full_like(target, level)
        assert inverted(right, flat, mask) == (0, 4)
        # (and a map of one depth is no image to score: any prediction fits it)
        assert math.isnan(depth_metrics(right, flat, mask)["inverted"])


def test_constant_prediction_is_finite_and_aligned_to_mean_target():
    target = torch.tensor([[[0.2, 0.4], [0.6, 0.8]]])
    mask = torch.ones(1, 2, 2, dtype=torch.bool)
    pred = torch.full((1, 2, 2), 5.0)
    torch.testing.assert_close(align_prediction(pred, target, mask), torch.full((1, 2, 2), 0.5))
    out = depth_metrics(pred, target, mask)
    assert all(math.isfinite(v) for v in out.values())
    exp = _expected([0.5] * 4, [0.2, 0.4, 0.6, 0.8])
    assert out["absrel"] == pytest.approx(exp["absrel"], rel=1e-5)


def test_negative_aligned_disparity_is_clamped_not_nan():
    """A far pixel's aligned disparity can go below 0 (here the first, fitted at -0.063):
    uncapped, it is clamped to a thousandth of the image's largest target disparity,
    so its depth is large and finite, not infinite or negative."""
    p, d = [0.0, 1.0, 2.0, 3.0], [0.01, 0.02, 1.0, 1.5]
    s, t = np.polyfit(p, d, 1)
    aligned = [s * x + t for x in p]
    assert aligned[0] < 0  # the case under test
    out = depth_metrics(*_image(p, d))
    exp = _expected([max(a, 1e-3 * max(d)) for a in aligned], d)
    for name in ("absrel", "delta1", "rmse"):
        assert math.isfinite(out[name]) and out[name] == pytest.approx(exp[name], rel=1e-6), name
    for cap in (60.0, 200.0):  # at 10 m only two pixels are within the cap: none scored
        assert all(math.isfinite(v) for v in depth_metrics(*_image(p, d), depth_cap=cap).values())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_ground_truth_exactly_at_the_depth_cap_is_evaluated(dtype):
    """Depth <= cap counts: NYUv2 stores 10000 mm, exactly the 10 m cap."""
    p, d = [0.13, 0.13, 1.0, 1.0], [0.1, 0.16, 1.03, 0.97]  # s = 1, t = 0 (see _P, _D)
    pred, target, mask = (x.to(dtype) if x.is_floating_point() else x for x in _image(p, d))
    capped = depth_metrics(pred, target, mask, depth_cap=10.0)
    exp = _expected(p, d)  # all four pixels, the first at 1 / 0.1 = 10 m
    for name in ("absrel", "rmse"):
        assert capped[name] == pytest.approx(exp[name], rel=1e-4), name


def test_align_prediction_matches_lstsq_and_keeps_shape():
    g = torch.Generator().manual_seed(1)
    pred = torch.rand(2, 1, 8, 8, generator=g, dtype=torch.float64)
    target = torch.rand(2, 1, 8, 8, generator=g, dtype=torch.float64)
    mask = torch.rand(2, 1, 8, 8, generator=g) > 0.4
    aligned = align_prediction(pred, target, mask)
    assert aligned.shape == pred.shape
    for i in range(2):
        m = mask[i, 0].numpy()
        a = np.stack([pred[i, 0].numpy()[m], np.ones(m.sum())], axis=1)
        (s, t), *_ = np.linalg.lstsq(a, target[i, 0].numpy()[m], rcond=None)
        np.testing.assert_allclose(aligned[i, 0].numpy(), s * pred[i, 0].numpy() + t, atol=1e-12)


def test_accumulator_matches_one_big_batch():
    g = torch.Generator().manual_seed(2)
    target = 0.05 + torch.rand(5, 1, 16, 16, generator=g)
    pred = target + 0.2 * torch.rand(5, 1, 16, 16, generator=g)
    mask = torch.rand(5, 1, 16, 16, generator=g) > 0.3
    mask[3] = False  # one empty image must not count in any mean
    acc = MetricAccumulator(depth_cap=15.0)
    acc.update(pred[:2], target[:2], mask[:2])
    acc.update(pred[2:], target[2:], mask[2:])
    assert acc.count == 4
    whole = depth_metrics(pred, target, mask, depth_cap=15.0)
    got = acc.compute()
    for name in ("absrel", "delta1", "rmse"):
        assert got[name] == pytest.approx(whole[name], rel=1e-5), name
    # the SSI too, pooled over the run: batch losses weighted by their images moved
    # with the batching where masks differ in size, as they do here
    assert got["ssi"] == pytest.approx(whole["ssi"], rel=1e-6)
    ssi_a = depth_metrics(pred[:2], target[:2], mask[:2], depth_cap=15.0)["ssi"]
    ssi_b = depth_metrics(pred[2:], target[2:], mask[2:], depth_cap=15.0)["ssi"]
    assert got["ssi"] != pytest.approx((2 * ssi_a + 2 * ssi_b) / 4, rel=1e-3)
    acc.reset()
    assert acc.count == 0 and math.isnan(acc.compute()["absrel"])


def test_an_image_whose_depth_within_the_cap_is_one_value_is_left_out():
    """A 4 m patch in a map of 12 to 20 m, capped at 10 m: min-max normalised, its target
    is one value, which any prediction (random, right, upside down) fits with an SSI
    of 0; the readers refuse a constant map for that reason, and the cap made one."""
    g = torch.Generator().manual_seed(0)
    depth = 12 + 8 * torch.rand(1, 1, 16, 16, generator=g)
    depth[..., 4:8, 4:8] = 4.0
    varied = 2 + 6 * torch.rand(1, 1, 16, 16, generator=g)  # a second image, within the cap
    target, mask = 1 / torch.cat([depth, varied]), torch.ones(2, 1, 16, 16, dtype=torch.bool)
    acc = MetricAccumulator(depth_cap=10.0)
    acc.update(torch.rand(2, 1, 16, 16, generator=g), target, mask)
    assert (acc.count, acc.left_out) == (1, 1)
    alone = depth_metrics(torch.rand(1, 1, 16, 16, generator=g), target[:1], mask[:1], depth_cap=10.0)
    assert math.isnan(alone["ssi"]) and math.isnan(alone["absrel"])


def test_the_aligned_metrics_keep_their_digits_for_a_prediction_with_a_large_offset():
    """s * p + t in float32 lost most digits of 1e4 + d: a perfect prediction scored
    an AbsRel of 0.006 instead of ~0."""
    g = torch.Generator().manual_seed(0)
    d = 0.1 + torch.rand(1, 1, 32, 32, generator=g)
    mask = torch.ones_like(d, dtype=torch.bool)
    near_perfect = depth_metrics(1e4 + d / d.max(), d, mask)
    assert near_perfect["absrel"] < 1e-3 and near_perfect["delta1"] == 0.0
    # and a NaN prediction's pixels are bad ones, not good ones
    assert depth_metrics(torch.full_like(d, float("nan")), d, mask)["delta1"] != 0.0


def test_under_a_depth_cap_every_metric_covers_the_same_pixels_and_images():
    """The SSI took every valid pixel while the others dropped those beyond the cap: a
    report 'on 7 samples' held an SSI over 10. An image with nothing within the cap is
    left out of all of them, and counted."""
    from depthnas.ssi_loss import SSILoss
    from depthnas.depth_metrics import _min_max
    g = torch.Generator().manual_seed(4)
    target = 0.02 + torch.rand(3, 1, 16, 16, generator=g)  # depths from 1 to 50 m
    pred = target + 0.3 * torch.rand(3, 1, 16, 16, generator=g)
    target[2] = 0.05  # all of it 20 m away
    mask = torch.ones_like(target, dtype=torch.bool)
    acc = MetricAccumulator(depth_cap=10.0)
    acc.update(pred, target, mask)
    within = mask & (target >= 0.1)
    norm, m = _min_max(target[:2], within[:2])
    expected = float(SSILoss()(pred[:2].reshape(norm.shape), norm, m))
    assert acc.count == 2 and acc.left_out == 1
    assert acc.compute()["ssi"] == pytest.approx(expected, rel=1e-6)
    uncapped = MetricAccumulator()
    uncapped.update(pred, target, mask)
    assert uncapped.count == 3 - 1 and uncapped.left_out == 1  # the image all at 20 m: one depth
    target[2, ..., 0] = 0.04  # 25 m at its left edge: an image to score
    uncapped.reset()
    uncapped.update(pred, target, mask)
    assert uncapped.count == 3 and uncapped.left_out == 0


def test_a_depth_cap_of_zero_is_refused_by_name():  # D1
    pred, target, mask = _image([1.0, 1.0, 4.0, 4.0], [0.7, 1.3, 4.3, 3.7])
    with pytest.raises(ValueError, match="depth_cap must be > 0, got 0"):
        depth_metrics(pred, target, mask, depth_cap=0.0)


def test_a_ratio_of_exactly_1_25_is_not_a_bad_pixel():  # D6
    """REFERENCE: delta1 counts max(p/t, t/p) > 1.25. A constant prediction aligns to
    the mean target 1.25: the pixel at disparity 1.0 has ratio exactly 1.25, the one at
    1.5 has 1.2, so neither is bad."""
    pred, target, mask = _image([0.5, 0.5, 0.5, 0.5], [1.0, 1.5, 1.0, 1.5])
    assert depth_metrics(pred, target, mask)["delta1"] == 0.0


def test_inverted_counts_only_images_with_three_valid_pixels():  # D13
    """Two pixels correlate +-1 whatever the model: a coin toss counted as a swap."""
    g = torch.Generator().manual_seed(0)
    target = 0.1 + torch.rand(3, 1, 8, 8, generator=g)
    mask = torch.ones(3, 1, 8, 8, dtype=torch.bool)
    mask[1:] = False
    mask[1, 0, 0, 0] = True  # one valid pixel: nothing to fit
    mask[2, 0, 0, :2] = True  # two: r = -1 for any prediction that orders them otherwise
    assert inverted(-target, target, mask) == (1, 1)
    mask[2, 0, 0, 2] = True
    assert inverted(-target, target, mask) == (2, 2)


def test_under_a_depth_cap_the_ssi_keeps_pixels_exactly_at_the_cap():  # D15
    """Depth <= cap counts for every metric, the SSI too: with every pixel within the
    10 m cap (some exactly at it), the capped SSI is the uncapped one."""
    g = torch.Generator().manual_seed(5)
    target = 0.1 + torch.rand(2, 1, 8, 8, generator=g, dtype=torch.float64)
    target[:, :, :3] = 0.1  # exactly 10 m
    pred = target + 0.2 * torch.rand(2, 1, 8, 8, generator=g, dtype=torch.float64)
    mask = torch.ones_like(target, dtype=torch.bool)
    capped = depth_metrics(pred, target, mask, depth_cap=10.0)
    assert capped["ssi"] == pytest.approx(depth_metrics(pred, target, mask)["ssi"], rel=1e-12)


def test_an_image_left_out_by_the_depth_cap_adds_nothing_to_inverted():  # D21
    """All of image 1 lies beyond the cap: it is left out of every metric, its
    near-far swapped prediction too."""
    g = torch.Generator().manual_seed(6)
    target = 0.2 + torch.rand(2, 1, 8, 8, generator=g)
    target[1] = 0.01 + 0.05 * torch.rand(1, 8, 8, generator=g)  # 15 to 100 m
    pred = target.clone()
    pred[1] = -target[1]  # swapped, but not evaluated
    mask = torch.ones_like(target, dtype=torch.bool)
    acc = MetricAccumulator(depth_cap=10.0)
    acc.update(pred, target, mask)
    assert acc.count == 1 and acc.left_out == 1
    assert acc.compute()["inverted"] == 0.0


def test_an_image_with_one_valid_pixel_counts_in_no_metric():
    """One pixel is fitted exactly by any scale and shift: counted, it added a perfect 0
    and halved absrel and delta1 next to one real image, and weighed in the SSI mean.
    The search's score drops such an image (MIN_FIT_PIXELS = 2)."""
    pred, target, mask = _image(_P, _D)
    one = mask.clone()
    one.view(-1)[1:] = False
    alone, with_one = MetricAccumulator(), MetricAccumulator()
    alone.update(pred, target, mask)
    with_one.update(pred, target, mask)
    with_one.update(pred, target, one)  # its own batch: the SSI is weighted per batch
    assert with_one.count == 1 and with_one.left_out == 1
    for name, value in alone.compute().items():
        assert with_one.compute()[name] == pytest.approx(value), name


def test_an_image_with_two_pixels_to_score_is_left_out_and_three_are_scored():
    """A scale and a shift fit two pixels exactly: such an image scored a perfect 0 in
    absrel, delta1 and rmse whatever the prediction, and halved them beside a real one;
    under a cap, one pixel within it and one beyond did too, while the SSI left it out.
    An image needs MIN_SCORED_PIXELS = 3, the same images in every metric."""
    from depthnas.depth_metrics import MIN_SCORED_PIXELS
    assert MIN_SCORED_PIXELS == 3
    pred, target, mask = _image(_P, _D)
    g = torch.Generator().manual_seed(1)
    sparse_pred = torch.rand(1, 1, 8, 8, generator=g)
    sparse_target = torch.zeros(1, 1, 8, 8)
    sparse_target[0, 0, 1, 1], sparse_target[0, 0, 5, 5], sparse_target[0, 0, 2, 6] = 0.5, 0.1, 0.3
    two = torch.zeros_like(sparse_target, dtype=torch.bool)
    two[0, 0, 1, 1] = two[0, 0, 5, 5] = True
    alone = MetricAccumulator()
    alone.update(pred, target, mask)
    for cap, sparse_mask in ((None, two), (5.0, two)):  # 3 m and 10 m: one within a 5 m cap
        acc = MetricAccumulator(depth_cap=cap)
        acc.update(pred, target, mask)
        acc.update(sparse_pred, sparse_target, sparse_mask)
        assert acc.count == 1 and acc.left_out == 1
        if cap is None:
            for name, value in alone.compute().items():
                assert acc.compute()[name] == pytest.approx(value), name
    three = two.clone()
    three[0, 0, 2, 6] = True
    acc = MetricAccumulator()
    acc.update(sparse_pred, sparse_target, three)
    assert acc.count == 1 and acc.left_out == 0
    assert acc.compute()["absrel"] > 0.01  # three pixels: a fit the prediction can miss
    assert math.isfinite(acc.compute()["ssi"])


def test_an_image_the_metrics_leave_out_adds_nothing_to_the_ssi_of_its_batch():
    """Two valid pixels, or a target of one depth, beside a scored image in one batch:
    every metric covers the same images, the SSI as well."""
    g = torch.Generator().manual_seed(2)
    pred = torch.rand(3, 1, 6, 6, generator=g, dtype=torch.float64)
    target = torch.rand(3, 1, 6, 6, generator=g, dtype=torch.float64) + 0.1
    mask = torch.ones(3, 1, 6, 6, dtype=torch.bool)
    mask[1] = False
    mask[1, 0, 0, :2] = True  # two pixels
    target[2] = 0.4  # one depth
    alone, beside = MetricAccumulator(), MetricAccumulator()
    alone.update(pred[:1], target[:1], mask[:1])
    beside.update(pred, target, mask)
    assert (beside.count, beside.left_out) == (1, 2)
    assert beside.compute()["ssi"] == pytest.approx(alone.compute()["ssi"])
