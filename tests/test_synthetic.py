"""The procedural RGB-D generator and its Dataset."""
from __future__ import annotations


import numpy as np
import pytest
from scipy.stats import spearmanr

from depthnas.datasets import render as R
from depthnas.datasets import IMAGENET_MEAN, IMAGENET_STD, SyntheticDepth, build_splits, render_scene


def _render(seed: int, index: int, h: int = 64, w: int = 64) -> tuple[np.ndarray, np.ndarray]:
    return render_scene(np.random.default_rng([seed, index]), h, w)


def test_render_is_deterministic_per_rng_state():
    rgb1, d1 = _render(3, 7)
    rgb2, d2 = _render(3, 7)
    np.testing.assert_array_equal(rgb1, rgb2)
    np.testing.assert_array_equal(d1, d2)


def test_different_seeds_and_indices_differ():
    rgb_a, d_a = _render(0, 0)
    rgb_b, d_b = _render(1, 0)
    rgb_c, d_c = _render(0, 1)
    assert not np.array_equal(d_a, d_b) and not np.array_equal(d_a, d_c)
    assert np.abs(rgb_a.astype(int) - rgb_b.astype(int)).mean() > 5


@pytest.mark.parametrize("size", [(32, 32), (64, 96), (96, 64), (128, 128)])
def test_shapes_dtypes_and_depth_validity(size):
    h, w = size
    for i in range(3):
        rgb, depth = _render(11, i, h, w)
        assert rgb.shape == (h, w, 3) and rgb.dtype == np.uint8
        assert depth.shape == (h, w) and depth.dtype == np.float32
        assert np.isfinite(depth).all() and (depth > 0).all()
        assert depth.max() < 200.0  # bounded scenes: a far wall always closes the view


def test_image_statistics_are_natural():
    rgbs = np.stack([_render(5, i)[0] for i in range(16)]).astype(np.float32)
    per_image_mean = rgbs.mean(axis=(1, 2, 3))
    per_image_std = rgbs.std(axis=(1, 2, 3))
    assert 40 < per_image_mean.mean() < 200
    assert (per_image_std > 8).all(), "every scene should have visible structure"
    assert (rgbs.reshape(-1, 3).std(axis=0) > 20).all()
    # Not saturated: few pixels clipped at black or white.
    assert ((rgbs == 0) | (rgbs == 255)).mean() < 0.05


def test_depth_correlates_with_image_row():
    """Perspective cue: the ground plane recedes towards the top of the image.

    Indoors the ceiling brings the top rows close again (as in real rooms), so the cue is
    checked where the ground dominates -- the lower half -- and on average over scenes.
    """
    h = w = 64
    profiles = np.stack([np.median(_render(2, i, h, w)[1], axis=1) for i in range(24)])
    mean_profile = profiles.mean(axis=0)
    assert spearmanr(np.arange(h // 2), mean_profile[h // 2:]).statistic < -0.95
    lower_half_trend = [spearmanr(np.arange(h // 2), p[h // 2:]).statistic for p in profiles]
    assert np.mean(np.array(lower_half_trend) < -0.5) >= 0.8
    assert mean_profile[: h // 2].mean() > 1.5 * mean_profile[h // 2:].mean()


def test_image_detail_fades_with_distance():
    """Texture gradient / aerial perspective: far regions show less contrast per pixel."""
    near_energy, far_energy = [], []
    for i in range(16):
        rgb, depth = _render(9, i, 96, 96)
        grey = rgb.astype(np.float32).mean(axis=2)
        grad = np.abs(np.diff(grey, axis=1))[:-1, :] + np.abs(np.diff(grey, axis=0))[:, :-1]
        d = depth[:-1, :-1]
        q1, q3 = np.quantile(d, [0.25, 0.75])
        near_energy.append(grad[d <= q1].mean())
        far_energy.append(grad[d >= q3].mean())
    # Far pixels are darker/hazier and their patterns fade out with the footprint.
    assert np.mean(near_energy) > np.mean(far_energy)


def test_dataset_items_follow_the_contract():
    ds = SyntheticDepth(4, (64, 96), seed=0, augment=True)
    assert len(ds) == 4
    for i in range(len(ds)):
        item = ds[i]
        assert item["image"].shape == (3, 64, 96) and item["image"].dtype.is_floating_point
        assert item["target"].shape == (1, 64, 96) and str(item["target"].dtype) == "torch.float32"
        assert item["mask"].shape == (1, 64, 96) and str(item["mask"].dtype) == "torch.bool"
        assert bool(item["mask"].all())  # synthetic depth is valid everywhere
        t = item["target"]
        assert float(t.min()) == 0.0 and float(t.max()) == pytest.approx(1.0)


def test_dataset_renders_from_seed_and_index_and_caches():
    ds = SyntheticDepth(3, (64, 64), seed=4)
    rgb, depth = ds.rendered(2)
    ref_rgb, ref_depth = render_scene(np.random.default_rng([4, 2]), 64, 64)
    np.testing.assert_array_equal(rgb, ref_rgb)
    np.testing.assert_array_equal(depth, ref_depth)
    assert ds.rendered(2)[0] is rgb  # cached, not re-rendered
    with pytest.raises(IndexError):
        ds.raw(3)
    # raw: the form every reader gives, (rgb, disparity, valid)
    rgb, disparity, valid = ds.raw(2)
    assert valid.all() and np.allclose(disparity, 1.0 / ref_depth)


def test_eval_items_are_normalised_images_and_disparity_targets():
    ds = SyntheticDepth(2, (64, 64), seed=1, augment=False)
    item = ds[0]
    rgb, depth = ds.rendered(0)
    mean = np.array(IMAGENET_MEAN, np.float32)[:, None, None]
    std = np.array(IMAGENET_STD, np.float32)[:, None, None]
    back = (item["image"].numpy() * std + mean) * 255.0
    np.testing.assert_allclose(back, rgb.transpose(2, 0, 1), atol=0.01)
    disp = 1.0 / depth
    expected = (disp - disp.min()) / (disp.max() - disp.min())
    np.testing.assert_allclose(item["target"][0].numpy(), expected, atol=1e-5)
    assert item is not ds[0] and bool((ds[0]["image"] == item["image"]).all())  # eval is deterministic


def test_synthetic_splits_disjoint_deterministic_and_stable_val():
    a = build_splits("synthetic", (32, 32), seed=0, synthetic_samples=40)
    b = build_splits("synthetic", (32, 32), seed=0, synthetic_samples=40)
    c = build_splits("synthetic", (32, 32), seed=1, synthetic_samples=40)
    ma, mb, mc = a.manifest(), b.manifest(), c.manifest()
    assert ma == mb and ma["seed"] == 0
    assert (len(a.train), len(a.reg), len(a.val)) == (28, 6, 6)
    ids = [set(ma[k]) for k in ("train", "reg", "val")]
    assert sum(map(len, ids)) == 40 and not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert set(ma["val"]).isdisjoint(mc["val"])
    np.testing.assert_array_equal(a.val.raw(0)[1], b.val.raw(0)[1])
    assert not np.array_equal(a.val.raw(0)[1], c.val.raw(0)[1])
    # A bigger training set keeps the same validation scenes (comparable runs).
    bigger = build_splits("synthetic", (32, 32), seed=0, synthetic_samples=80, val_fraction=0.075)
    assert bigger.manifest()["val"] == ma["val"]


def test_validation_scenes_are_other_scenes_than_training_ones():
    """The splits' ids differ by construction; the pixels must too: each split renders
    from its own offset (validation from VAL_INDEX_OFFSET, reg after train)."""
    from depthnas.datasets.synthetic import VAL_INDEX_OFFSET
    s = build_splits("synthetic", (32, 32), seed=0, synthetic_samples=20)
    val, train, reg = (split.rendered(0)[1] for split in (s.val, s.train, s.reg))
    np.testing.assert_array_equal(val, _render(0, VAL_INDEX_OFFSET, 32, 32)[1])
    np.testing.assert_array_equal(reg, _render(0, len(s.train), 32, 32)[1])
    assert not np.array_equal(val, train) and not np.array_equal(reg, train)


def test_a_negative_index_counts_from_the_end():
    ds = SyntheticDepth(3, (32, 32), seed=2)
    np.testing.assert_array_equal(ds[-1]["target"].numpy(), ds[2]["target"].numpy())


def test_a_size_of_zero_is_refused():
    with pytest.raises(ValueError, match="image size must be positive"):
        render_scene(np.random.default_rng(0), 0, 64)


def test_the_zbuffer_keeps_the_nearest_surface_on_every_ray():
    """Objects are tested only inside their projected rectangle: that shortcut must
    agree with testing every surface on every ray."""
    h, w = 48, 64
    for seed in range(41):
        sc, cam, ypr = R._build_scene(np.random.default_rng([seed, 0]))
        if seed == 40:  # an object reaching behind the image plane, beside the camera
            sc.surfaces.append(R._Sphere(cam + np.array([0.8, 0.0, 0.6], np.float32), 0.8,
                                         sc.surfaces[-1].material))
            ypr = np.zeros(3, np.float32)
        f = float(0.5 * w / np.tan(np.radians(30.0)))
        rot = R._rotation(*ypr)
        xs = (np.arange(w, dtype=np.float32) + 0.5 - 0.5 * w) / f
        ys = (0.5 * h - np.arange(h, dtype=np.float32) - 0.5) / f
        dx, dy = np.meshgrid(xs, ys)
        D = np.einsum("ij,kj->ik", np.stack([dx, dy, np.ones_like(dx)], -1).reshape(-1, 3), rot)
        O = cam[None, :]
        t, sid = R._zbuffer(sc, O, D, rot, cam, f, h, w)
        every = np.stack([s.intersect(O, D) for s in sc.surfaces])
        np.testing.assert_array_equal(t, every.min(axis=0), err_msg=f"seed {seed}")
        np.testing.assert_array_equal(sid, every.argmin(axis=0), err_msg=f"seed {seed}")
    assert (sid == len(sc.surfaces) - 1).sum() > 100  # the close sphere is seen


def _render_fixed(monkeypatch, objects):
    grey = R._Material("plain", 1.0, np.full(3, 0.6, np.float32), np.full(3, 0.6, np.float32), grain=0.0)
    e = np.eye(3, dtype=np.float32)
    sc = R._Scene(surfaces=[R._Plane(np.zeros(3, np.float32), e[1], (0, 2), grey),
                            R._Plane(np.array([0, 0, 30], np.float32), -e[2], (0, 1), grey), *objects],
                  n_planes=2, fill_strength=0.0)
    sc.light = np.array([0.0, 1.0, 0.0], np.float32)  # from straight above
    scene = (sc, np.array([0.0, 1.5, 0.0], np.float32), np.array([0.0, -0.2, 0.0], np.float32))
    monkeypatch.setattr(R, "_build_scene", lambda rng: scene)
    rgb, depth = render_scene(np.random.default_rng(0), 64, 64)
    return rgb.astype(np.float32).mean(axis=2), depth


def test_an_object_shades_only_the_floor_beneath_it(monkeypatch):
    ball = R._Sphere(np.array([0.0, 1.0, 5.0], np.float32), 0.4,
                     R._Material("plain", 1.0, np.ones(3, np.float32), np.ones(3, np.float32), grain=0.0))
    empty, d0 = _render_fixed(monkeypatch, [])
    shaded, d1 = _render_fixed(monkeypatch, [ball])
    beside = d0 == d1  # pixels that do not see the ball itself
    darker, brighter = beside & (shaded < empty - 10), beside & (shaded > empty + 10)
    assert darker.sum() > 10 and darker.mean() < 0.1 and not brighter.any()
