"""MiDaS-style transforms: resize rule, crops, target/mask handling, randomness, inference input."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from depthnas.datasets import IMAGENET_MEAN, IMAGENET_STD, DepthTransform, prepare_image
from depthnas.datasets.settings import check_image_size
from depthnas.datasets.transforms import midas_resize_shape, normalize_target


def _sample(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    disp = rng.uniform(0.1, 2.0, (h, w)).astype(np.float32)
    valid = rng.random((h, w)) > 0.2
    return rgb, disp, valid


@pytest.mark.parametrize(
    ("shape", "target", "expected"),
    [
        ((480, 640), (256, 256), (256, 352)),  # 256 * 640/480 = 341.3 -> 352 (nearest multiple, >= 256)
        ((640, 480), (256, 256), (352, 256)),
        ((100, 100), (128, 128), (128, 128)),  # upscaling
        ((500, 741), (64, 96), (64, 96)),
        ((300, 1000), (128, 128), (128, 416)),
        ((256, 256), (256, 256), (256, 256)),  # identity
        ((48, 64), (32, 64), (64, 64)),  # MiDaS rounds 48 to the nearest multiple (64), not down
    ],
)
def test_midas_resize_shape(shape, target, expected):
    out = midas_resize_shape(*shape, target)
    assert out == expected
    assert out[0] >= target[0] and out[1] >= target[1] and out[0] % 32 == 0 and out[1] % 32 == 0


@pytest.mark.parametrize("bad", [(100, 128), (128, 0), (-32, 32), (32,), "big", (32.5, 32)])
def test_check_image_size_rejects_and_names_value(bad):
    with pytest.raises(ValueError, match="multiples of 32") as err:
        check_image_size(bad)
    assert repr(bad) in str(err.value) or str(bad) in str(err.value)


def test_check_image_size_accepts():
    assert check_image_size((64, 96)) == (64, 96)
    assert check_image_size([32, 32]) == (32, 32)


@pytest.mark.parametrize("augment", [True, False])
@pytest.mark.parametrize("shape", [(48, 70), (200, 100), (64, 96), (31, 33)])
def test_item_shapes_and_dtypes(augment, shape):
    t = DepthTransform((64, 96), augment=augment)
    item = t(*_sample(*shape))
    assert item["image"].shape == (3, 64, 96) and item["image"].dtype == torch.float32
    assert item["target"].shape == (1, 64, 96) and item["target"].dtype == torch.float32
    assert item["mask"].shape == (1, 64, 96) and item["mask"].dtype == torch.bool
    tgt = item["target"][item["mask"]]
    assert float(tgt.min()) == 0.0 and float(tgt.max()) == pytest.approx(1.0)
    assert float(item["target"][~item["mask"]].abs().sum()) == 0.0


def test_eval_centre_crop_is_exact_when_no_resize_needed():
    rgb, disp, valid = _sample(64, 160)
    item = DepthTransform((64, 96), augment=False)(rgb, disp, valid)
    crop = slice(32, 128)  # (160 - 96) / 2 = 32
    np.testing.assert_array_equal(item["mask"][0].numpy(), valid[:, crop])
    np.testing.assert_allclose(item["target"][0].numpy(), normalize_target(disp[:, crop], valid[:, crop]), atol=1e-6)
    mean = np.array(IMAGENET_MEAN, np.float32)[:, None, None] * 255
    std = np.array(IMAGENET_STD, np.float32)[:, None, None] * 255
    np.testing.assert_allclose(item["image"].numpy() * std + mean, rgb[:, crop].transpose(2, 0, 1), atol=1e-3)


def test_target_and_mask_use_nearest_neighbour():
    """Upscaling by 2: every output target value must be one of the input values, and the
    mask must be the input mask repeated -- no interpolated depths across edges."""
    rgb, disp, valid = _sample(32, 48, seed=3)
    item = DepthTransform((64, 96), augment=False)(rgb, disp, valid)
    expected_mask = np.repeat(np.repeat(valid, 2, axis=0), 2, axis=1)
    np.testing.assert_array_equal(item["mask"][0].numpy(), expected_mask)
    src = normalize_target(disp, valid)[valid]
    out = item["target"][0].numpy()[expected_mask]
    assert np.isin(np.round(out, 5), np.round(src, 5)).all()


def test_augmentation_keeps_image_target_and_mask_aligned():
    """A bright left half with near (large) disparity: after random crops and flips the
    bright pixels must still be the high-target ones and the invalid stripe must follow."""
    h, w = 64, 128
    rgb = np.full((h, w, 3), 30, np.uint8)
    rgb[:, : w // 2] = 220
    disp = np.where(np.arange(w)[None, :] < w // 2, 2.0, 1.0).repeat(h, axis=0).astype(np.float32)
    valid = np.ones((h, w), bool)
    valid[:, w // 2 - 4 : w // 2] = False  # invalid stripe just left of the edge
    rgb[:, w // 2 - 4 : w // 2] = 120
    t = DepthTransform((64, 96), augment=True)
    flips = set()
    for _ in range(20):
        item = t(rgb, disp, valid)
        bright = item["image"].mean(dim=0) > 1.0
        dark = item["image"].mean(dim=0) < -1.0
        tgt, mask = item["target"][0], item["mask"][0]
        assert bool((tgt[bright & mask] == 1).all()) and bool((tgt[dark & mask] == 0).all())
        assert not bool(mask[bright | dark].logical_not().any())  # invalid only on the grey stripe
        flips.add(bool(bright[:, 0].all()))
    assert flips == {True, False}, "horizontal flips should occur both ways"


def test_eval_has_no_randomness_and_colour_jitter_only_in_training():
    rgb, disp, valid = _sample(80, 120)
    ev = DepthTransform((64, 96), augment=False)
    a, b = ev(rgb, disp, valid), ev(rgb, disp, valid)
    assert all(torch.equal(a[k], b[k]) for k in a)
    tr = DepthTransform((64, 96), augment=True)
    outs = [tr(rgb, disp, valid)["image"] for _ in range(5)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])


def test_augmentation_reproducible_from_torch_seed():
    rgb, disp, valid = _sample(80, 120)

    def run() -> list[torch.Tensor]:
        torch.manual_seed(123)
        t = DepthTransform((64, 96), augment=True)
        return [t(rgb, disp, valid)["image"] for _ in range(3)]

    first, second = run(), run()
    assert all(torch.equal(x, y) for x, y in zip(first, second))


class _SameSample(Dataset):
    """One image, augmented n times: passing the item's index (as depthnas' datasets do)
    or not (a direct call)."""

    def __init__(self, n: int = 2, indexed: bool = False) -> None:
        self.sample, self.n, self.indexed = _sample(80, 120), n, indexed
        self.t = DepthTransform((64, 96), augment=True)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return self.t(*self.sample, index=i if self.indexed else None)


def test_dataloader_workers_do_not_replay_the_same_augmentations():
    """albumentations seeds its generator at construction; forked workers would copy it.
    Each worker's first item must still differ."""
    loader = DataLoader(_SameSample(), batch_size=1, num_workers=2, shuffle=False)
    a, b = [batch["image"] for batch in loader]
    assert not torch.equal(a, b)


def test_an_augmentation_depends_on_the_seed_and_the_sample_alone():
    """Not on what was drawn before (a resumed run, calibration batches drawn after
    other trainings) nor on the number of DataLoader workers."""
    data = _SameSample(6, indexed=True)

    def images(workers, seed=0, warm_up=0):
        for _ in range(warm_up):
            data[0]  # draws that must leave no trace
        loader = DataLoader(data, batch_size=1, num_workers=workers,
                            generator=torch.Generator().manual_seed(seed))
        return [b["image"] for b in loader]
    torch.manual_seed(3)
    first = images(0)
    torch.manual_seed(3)
    assert all(torch.equal(a, b) for a, b in zip(first, images(0, warm_up=5)))
    assert len({bytes(x.numpy()) for x in first}) == 6            # samples differ
    torch.manual_seed(4)
    assert not all(torch.equal(a, b) for a, b in zip(first, images(0)))  # seeds differ
    assert all(torch.equal(a, b) for a, b in zip(images(1), images(2)))  # 1 or 2 workers


def test_normalize_target_edge_cases():
    d = np.array([[1.0, 1.0], [1.0, 1.0]], np.float32)
    np.testing.assert_array_equal(normalize_target(d, np.ones((2, 2), bool)), np.zeros((2, 2)))
    np.testing.assert_array_equal(normalize_target(d, np.zeros((2, 2), bool)), np.zeros((2, 2)))


@pytest.mark.parametrize(
    ("shape", "net", "expected"),
    [((480, 640, 3), 384, (288, 384)), ((640, 480, 3), 384, (384, 288)), ((500, 741, 3), 256, (160, 256)),
     ((10, 1000, 3), 256, (32, 256)), ((384, 384, 3), 384, (384, 384))],
)
def test_prepare_image(shape, net, expected):
    rgb = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    x = prepare_image(rgb, net)
    assert x.shape == (1, 3, *expected) and x.dtype == torch.float32


def test_prepare_image_normalises_with_imagenet_stats():
    rgb = np.empty((64, 64, 3), np.uint8)
    rgb[:] = np.round(np.array(IMAGENET_MEAN) * 255).astype(np.uint8)
    x = prepare_image(rgb, 64)
    assert float(x.abs().max()) < 0.02
    grey = prepare_image(rgb[:, :, 0], 64)  # a grey image is accepted as 3 equal channels
    assert grey.shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match="uint8"):
        prepare_image(rgb.astype(np.float32), 64)


def test_images_are_resized_bicubically_in_training_and_at_inference():
    """REFERENCE section 6: image cubic (target nearest). A ramp cannot tell cubic from
    linear, noise can: they differ by up to 57 grey levels here."""
    rgb = np.random.default_rng(0).integers(0, 256, (48, 80, 3), dtype=np.uint8)
    cubic = cv2.resize(rgb, (96, 64), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    mean, std = np.array(IMAGENET_MEAN, np.float32) * 255, np.array(IMAGENET_STD, np.float32) * 255
    # (64, 96) is this image's MiDaS size: resized, not cropped
    trained = DepthTransform((64, 96))(rgb, np.ones((48, 80), np.float32), np.ones((48, 80), bool))
    served = prepare_image(rgb, 96)[0]
    for x in (trained["image"], served):
        assert x.shape == (3, 64, 96)
        np.testing.assert_allclose(x.numpy().transpose(1, 2, 0) * std + mean, cubic, atol=0.01)


def test_the_target_is_resized_onto_the_same_pixel_centres_as_the_image():
    """OpenCV's INTER_NEAREST samples floor(x * scale), not the pixel centre the
    bicubic image resize samples: the depth sat about half a source pixel left of
    the image (and a flip moved it right)."""
    from depthnas.datasets.transforms import MidasResize
    ramp = np.tile(np.arange(800, dtype=np.float32), (320, 1))  # value = source column
    out = MidasResize(128, 320)(image=ramp.copy(), mask=ramp)
    inner = slice(20, -20)  # away from the borders, where cubic clamps
    image_x, target_x = out["image"][0, inner].mean(), out["mask"][0, inner].mean()
    assert abs(image_x - 399.5) < 0.01 and abs(target_x - image_x) < 0.05


def test_a_custom_transform_receives_the_sample_index():
    """The datasets pass `index=`; the type they declared said (rgb, disparity, valid),
    and a transform written to it raised TypeError."""
    from depthnas.datasets import SyntheticDepth
    seen = []

    def transform(rgb, disparity, valid, index=None):
        seen.append(index)
        return {"shape": rgb.shape}
    data = SyntheticDepth(3, (32, 32), index_offset=10, transform=transform)
    assert data[2]["shape"] == (32, 32, 3) and seen == [12]


# ---- caught one-line mutations the tests above let through: flips told apart by the
# target, not the jittered image; a downscale, where nearest and pixel-centre sampling differ
def test_training_flips_are_horizontal_by_the_target():
    """Told apart by the target (colour jitter cannot blur it): near left half, far right.
    The old check read flips off the jittered image brightness."""
    from depthnas.datasets import DepthTransform
    h, w = 64, 128
    rgb = np.full((h, w, 3), 128, np.uint8)
    disp = np.where(np.arange(w)[None, :] < w // 2, 2.0, 1.0).repeat(h, axis=0).astype(np.float32)
    disp[: h // 2] += 0.5  # top nearer: a vertical flip would move it down
    t = DepthTransform((64, 96), augment=True)
    flipped = set()
    for i in range(16):
        tgt = t(rgb, disp, np.ones((h, w), bool), index=i)["target"][0]
        assert float(tgt[: h // 2].mean()) > float(tgt[h // 2:].mean())  # never upside down
        flipped.add(bool(tgt[:, 0].mean() < tgt[:, -1].mean()))
    assert flipped == {True, False}


def test_a_downscaled_target_is_sampled_at_pixel_centres_in_the_transform():
    """DepthTransform's own resize (not only MidasResize's default) samples the
    target at the pixel centres the bicubic image uses."""
    from depthnas.datasets import DepthTransform
    from depthnas.datasets.transforms import normalize_target
    rng = np.random.default_rng(0)
    disp = rng.uniform(1.0, 2.0, (128, 192)).astype(np.float32)
    valid = np.ones(disp.shape, bool)
    item = DepthTransform((64, 96), augment=False)(np.zeros((128, 192, 3), np.uint8), disp, valid)
    expected = normalize_target(disp[1::2, 1::2], valid[1::2, 1::2])  # centres of 2x2 blocks
    np.testing.assert_allclose(item["target"][0].numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("bad", [(128, 100), (64, 70)])
def test_check_image_size_rejects_a_width_that_is_no_multiple_of_32(bad):  # T1
    with pytest.raises(ValueError, match="multiples of 32"):
        check_image_size(bad)


def test_prepare_image_refuses_a_network_size_below_32():  # T9
    with pytest.raises(ValueError, match="net_size must be >= 32, got 16"):
        prepare_image(np.zeros((48, 64, 3), np.uint8), 16)


def test_check_image_size_takes_one_side_as_a_python_or_numpy_integer():
    assert check_image_size(64) == (64, 64)
    assert check_image_size(np.int64(64)) == (64, 64)  # e.g. a size read from an array
    assert check_image_size((np.int32(64), 96)) == (64, 96)
