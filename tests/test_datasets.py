"""On-disk loaders (ReDWeb, NYUv2 sync + labeled .mat, DIODE, folder), build_splits and bad input."""
from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch

from depthnas.datasets import DatasetError, Splits, SyntheticDepth, build_splits, read_pfm, write_pfm
from depthnas.datasets.diode import DIODEReader
from depthnas.datasets.splits import least_samples, split_counts
from depthnas.datasets.folder import FolderReader
from depthnas.datasets.nyuv2 import NYUv2MatReader, NYUv2SyncReader
from depthnas.datasets.redweb import ReDWebReader

H, W = 48, 64  # raw sample size on disk
SIZE = (32, 64)  # network size used with the builders


# ----------------------------------------------------------------------- writers
def _rgb(seed: int, h: int = H, w: int = W) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 200, (1, 1, 3))
    return np.clip(base + rng.integers(-30, 30, (h, w, 3)), 0, 255).astype(np.uint8)


def _depth_m(seed: int, h: int = H, w: int = W) -> np.ndarray:
    """Metric depth growing towards the top, like a ground plane, in [1, 6] m."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(6.0, 1.0, h, dtype=np.float32)[:, None]
    return (rows + rng.uniform(0, 0.2, (h, w))).astype(np.float32)


def _save_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _save_png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), arr)


def make_folder(root: Path, n: int = 8, fmt: str = "png") -> Path:
    for i in range(n):
        _save_rgb(root / "images" / f"s{i:03d}.jpg", _rgb(i))
        depth = _depth_m(i)
        kind = fmt if fmt != "mixed" else ("png", "npy", "pfm")[i % 3]
        (root / "depth").mkdir(parents=True, exist_ok=True)
        if kind == "png":
            _save_png(root / "depth" / f"s{i:03d}.png", np.round(depth * 1000).astype(np.uint16))
        elif kind == "npy":
            np.save(root / "depth" / f"s{i:03d}.npy", depth)
        else:
            write_pfm(root / "depth" / f"s{i:03d}.pfm", depth)
    return root


def make_redweb(root: Path, n: int = 8) -> Path:
    for i in range(n):
        _save_rgb(root / "Imgs" / f"r{i}.jpg", _rgb(i))
        rd = np.tile(np.linspace(0, 254, W).astype(np.uint8), (H, 1))  # farther to the right
        rd[:20] = 255  # "sky"
        _save_png(root / "RDs" / f"r{i}.png", rd)
    return root


def make_nyu_sync(root: Path, scenes: int = 6, frames: int = 3) -> Path:
    for s in range(scenes):
        d = root / "sync" / f"scene_{s:02d}"
        for f in range(frames):
            k = s * 10 + f
            _save_rgb(d / f"rgb_{k:05d}.jpg", _rgb(k))
            mm = np.round(_depth_m(k) * 1000).astype(np.uint16)
            mm[:, :4] = 0  # unmeasured border
            _save_png(d / f"sync_depth_{k:05d}.png", mm)
    return root


def make_nyu_mat(path: Path, n: int = 6, h: int = H, w: int = W,
                 scenes: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    rgbs = np.stack([_rgb(i, h, w) for i in range(n)])
    depths = np.stack([_depth_m(i, h, w) for i in range(n)])
    with h5py.File(path, "w") as f:  # MATLAB v7.3 layout as h5py sees it: transposed
        f.create_dataset("images", data=rgbs.transpose(0, 3, 2, 1))  # [N,3,W,H]
        f.create_dataset("depths", data=depths.transpose(0, 2, 1).astype(np.float64))  # [N,W,H]
        if scenes is not None:  # a cell array of strings: references to uint16 char arrays
            chars = [f.create_dataset(f"#refs#/s{i}", data=np.array([[ord(c)] for c in s], np.uint16))
                     for i, s in enumerate(scenes)]
            f.create_dataset("scenes", data=np.array([[c.ref for c in chars]], dtype=h5py.ref_dtype))
    return rgbs, depths


def make_diode(root: Path, scenes: int = 4, scans: int = 2) -> Path:
    for s in range(scenes):
        for c in range(scans):
            d = root / "val" / ("indoors" if s % 2 else "outdoor") / f"scene_{s:05d}" / f"scan_{c:05d}"
            name = f"{s:05d}_{c:05d}_indoors_000_010"
            k = s * 10 + c
            _save_rgb(d / f"{name}.png", _rgb(k))
            np.save(d / f"{name}_depth.npy", _depth_m(k)[:, :, None])
            mask = np.ones((H, W), np.float32)
            mask[-3:] = 0
            np.save(d / f"{name}_depth_mask.npy", mask)
    return root


def load_all(splits: Splits) -> list[dict]:
    return [ds[i] for ds in (splits.train, splits.reg, splits.val) for i in range(len(ds))]


def check_items(splits: Splits) -> None:
    for item in load_all(splits):
        assert item["image"].shape == (3, *SIZE) and item["image"].dtype == torch.float32
        assert item["target"].shape == (1, *SIZE) and item["mask"].shape == (1, *SIZE)
        assert item["mask"].dtype == torch.bool and bool(item["mask"].any())
        t = item["target"]
        assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0 + 1e-6


def check_disjoint(splits: Splits, total: int) -> None:
    m = splits.manifest()
    json.dumps(m)  # JSON-able
    parts = [set(m[k]) for k in ("train", "reg", "val")]
    assert sum(len(p) for p in parts) == total == len(set().union(*parts))
    assert all(len(p) > 0 for p in parts)


# ------------------------------------------------------------------------ formats
def test_folder_png16_millimetres(tmp_path):
    root = make_folder(tmp_path / "f", fmt="png")
    splits = build_splits(f"folder:{root}", SIZE, seed=0)
    check_items(splits)
    check_disjoint(splits, 8)
    rgb, disp, valid = splits.val.raw(0)
    sid = Path(splits.val.ids()[0]).stem
    depth = _depth_m(int(sid[1:]))
    assert valid.all()
    np.testing.assert_allclose(disp, 1.0 / (np.round(depth * 1000) / 1000), rtol=1e-5)


def test_an_8_bit_depth_png_is_flagged_once(tmp_path, caplog):
    """8-bit 'depth' PNGs are mostly pictures where bright means near: say how to read
    them as disparity, once per dataset, and read them as asked."""
    root = make_folder(tmp_path / "f", n=3, fmt="png")
    for p in sorted((root / "depth").glob("*.png")):
        _save_png(p, np.tile(np.arange(W, dtype=np.uint8), (H, 1)) + 1)
    reader = FolderReader(root, "depth")
    refs, _ = reader.index()
    with caplog.at_level("WARNING"):
        for ref in refs:
            reader.load(ref)
    assert caplog.text.count("looks like an 8-bit PNG") == 1
    # each spelling where it exists: `data` and `evaluate` take no --set
    assert "pass --depth-kind disparity" in caplog.text  # a flag of every command that reads data
    caplog.clear()
    with caplog.at_level("WARNING"):
        make_folder(tmp_path / "g", n=1, fmt="png")
        FolderReader(tmp_path / "g", "depth").load(FolderReader(tmp_path / "g", "depth").index()[0][0])
    assert "8-bit" not in caplog.text  # 16-bit millimetres are what the layout expects


def test_folder_subfolders_are_scenes_kept_in_one_split(tmp_path):
    """Frames of a video are near-duplicates: split per file, they leaked from train
    into validation. Subfolders were not read at all."""
    root = tmp_path / "f"
    for scene in range(10):
        make_folder(root / "tmp" / f"walk_{scene:02d}", n=3)
        for kind in ("images", "depth"):
            (root / kind).mkdir(exist_ok=True)
            (root / "tmp" / f"walk_{scene:02d}" / kind).rename(root / kind / f"walk_{scene:02d}")
    make_folder(root, n=2)  # and two loose files
    splits = build_splits(f"folder:{root}", SIZE, seed=0)
    check_disjoint(splits, 32)
    m = splits.manifest()
    scenes = {k: {Path(i).parent.name for i in m[k] if "walk_" in i} for k in ("train", "reg", "val")}
    assert not (scenes["train"] & scenes["val"] or scenes["train"] & scenes["reg"] or scenes["reg"] & scenes["val"])
    assert sum(len(v) for v in scenes.values()) == 10
    (root / "depth" / "walk_03" / "s001.png").unlink()
    _expect_build_error(f"folder:{root}", r"image .*walk_03/s001.jpg has no depth map")


def test_folder_subfolders_on_one_side_are_left_out_and_nested_ones_join_their_scene(tmp_path, caplog):
    """depth/vis/ (previews) or images/thumbs/ have no counterpart: not samples, not
    errors. walk/left and walk/right are views of one scene: one split."""
    root = tmp_path / "f"
    for scene in range(8):
        for view in ("left", "right"):
            make_folder(root / "tmp" / f"walk{scene}{view}", n=2)
            for kind in ("images", "depth"):
                (root / kind / f"walk{scene}").mkdir(parents=True, exist_ok=True)
                (root / "tmp" / f"walk{scene}{view}" / kind).rename(root / kind / f"walk{scene}" / view)
    make_folder(root / "tmp" / "vis", n=2)
    (root / "tmp" / "vis" / "depth").rename(root / "depth" / "vis")
    with caplog.at_level(logging.WARNING, logger="depthnas.datasets"):
        splits = build_splits(f"folder:{root}", SIZE, seed=0)
    assert ("1 subfolder(s) on only one side of images/ and depth/ are not read: depth/vis/ "
            "(no images/vis/)") in caplog.text
    check_disjoint(splits, 32)
    m = splits.manifest()
    scenes = {k: {Path(i).parts[1] for i in m[k]} for k in ("train", "reg", "val")}
    assert not (scenes["train"] & scenes["val"] or scenes["train"] & scenes["reg"] or scenes["reg"] & scenes["val"])


def test_folder_mixed_npy_pfm_png_and_disparity_kind(tmp_path):
    root = make_folder(tmp_path / "f", n=9, fmt="mixed")
    splits = build_splits(f"folder:{root}", SIZE, seed=1)
    check_items(splits)
    reader = FolderReader(root)
    refs, problems = reader.index()
    assert not problems and len(refs) == 9
    for ref in refs:
        _, disp, valid = reader.load(ref)
        expected = 1.0 / _depth_m(int(Path(ref.image).stem[1:]))
        np.testing.assert_allclose(disp, expected, rtol=2e-3)  # png rounds to millimetres
    # The same files read as disparity: used as they are (larger = closer), no inversion.
    _, disp, _ = FolderReader(root, "disparity").load(refs[1])  # refs[1] is an npy file
    np.testing.assert_allclose(disp, _depth_m(1))


def test_a_16_bit_redweb_map_is_named(tmp_path):
    root = make_redweb(tmp_path / "ReDWeb_V1", n=1)
    _save_png(root / "RDs" / "r0.png", np.full((H, W), 300, np.uint16))
    reader = ReDWebReader(root)
    refs, _ = reader.index()
    with pytest.raises(ValueError, match=r"r0.png: a uint16 RD map; ReDWeb's RDs are 8-bit"):
        reader.load(refs[0])


def test_a_size_mismatch_from_an_exif_turned_photo_says_so(tmp_path):
    """A phone photo stored 64x48 with Orientation=6 shows as 48x64, the size of its
    depth map; the bare size error left the user comparing numbers that look equal."""
    from PIL import Image
    root = make_folder(tmp_path / "f", n=1, fmt="npy")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_rgb(0)).save(root / "images" / "s000.jpg", exif=exif)
    np.save(root / "depth" / "s000.npy", _depth_m(0, h=W, w=H))
    reader = FolderReader(root)
    with pytest.raises(DatasetError, match=r"is 64x48 as stored: its EXIF orientation tag \(6\) turns it "
                                           r"on screen, but images are read in their stored pixel grid"):
        reader.load(reader.index()[0][0])
    Image.fromarray(_rgb(0)).save(root / "images" / "s000.jpg")  # no tag: the plain error
    with pytest.raises(DatasetError, match=r"is 64x48$"):
        reader.load(reader.index()[0][0])


def test_a_truncated_png_is_named_without_opencv_s_own_warning(tmp_path, capfd):
    from depthnas.datasets.io import read_png, read_rgb
    path = tmp_path / "cut.png"
    _save_png(path, np.round(_depth_m(0) * 1000).astype(np.uint16))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DatasetError, match="truncated PNG depth map .*cut.png"):
        read_png(path)
    with pytest.raises(DatasetError, match="truncated PNG image .*cut.png"):
        read_rgb(path)
    # nor libpng's or OpenCV's own lines ("libpng error: PNG input buffer is incomplete",
    # "[ERROR:0@1.3] global loadsave.cpp ...", TIFF_Error), for any format
    for suffix in (".bmp", ".tif"):
        other = tmp_path / f"cut{suffix}"
        cv2.imwrite(str(other), _rgb(0))
        other.write_bytes(other.read_bytes()[:300])
        with pytest.raises(DatasetError, match=f"cut{suffix}"):
            read_rgb(other)
    assert capfd.readouterr().err == ""
    # what follows IEND is no part of the image
    whole = tmp_path / "whole.png"
    _save_png(whole, np.round(_depth_m(0) * 1000).astype(np.uint16))
    whole.write_bytes(whole.read_bytes() + b"appended by a tool")
    assert read_png(whole).shape == (H, W)


def test_a_depth_kind_for_a_data_set_of_known_kind_is_refused(tmp_path):
    """--depth-kind disparity on synthetic/redweb/nyuv2/diode was ignored without a word."""
    root = make_redweb(tmp_path / "ReDWeb_V1", n=3)
    with pytest.raises(ValueError, match=r"depth kind 'disparity' applies to folder: data; redweb: "
                                         r"files hold a known kind \(leave --depth-kind"):
        build_splits(f"redweb:{root}", SIZE, depth_kind="disparity")
    with pytest.raises(ValueError, match=r"applies to folder: data; synthetic scenes hold a known kind"):
        build_splits("synthetic", SIZE, depth_kind="disparity")


def test_redweb_rd_is_negative_disparity_and_255_invalid(tmp_path):
    # MiDaS reads an RD map as negative disparity (isl-org/MiDaS#16): 0 is the nearest
    # valid value, 254 the farthest, 255 invalid (sky).
    root = make_redweb(tmp_path / "ReDWeb_V1")
    splits = build_splits(f"redweb:{root}", SIZE, seed=0)
    check_items(splits)
    check_disjoint(splits, 8)
    reader = ReDWebReader(root)
    refs, _ = reader.index()
    _, disp, valid = reader.load(refs[0])
    assert not valid[:20].any() and valid[20:].all()
    assert disp[20, 0] > disp[20, -1]  # RD 0 (left) is the nearest: the largest disparity
    np.testing.assert_allclose(disp[20, 0] - disp[20, -1], 254.0)  # linear in RD, no inversion
    # `depthnas data` says these are 255 - RD, not the RD values a user sees in the files
    from depthnas.datasets.check import check_data
    assert "disparity (255 - RD) over valid pixels: 1 to 255" in check_data(f"redweb:{root}").lines()
    item = splits.val[0]
    # 255 rows stay invalid in the item: 48x64 is resized to 64x64 (MiDaS rounds to multiples
    # of 32), so sky rows 0..19 become 0..26, and the centre crop keeps rows 16..47.
    mask = item["mask"][0]
    assert not bool(mask[:9].any()) and bool(mask[12:].all())
    row = item["target"][0, -1]
    assert float(row[0]) > float(row[-1])


def test_nyu_sync_layout_scene_grouped_splits(tmp_path):
    root = make_nyu_sync(tmp_path / "nyu")
    splits = build_splits(f"nyuv2:{root}", SIZE, seed=0)
    check_items(splits)
    check_disjoint(splits, 18)
    m = splits.manifest()
    scenes = {k: {Path(i).parent.name for i in m[k]} for k in ("train", "reg", "val")}
    assert not (scenes["train"] & scenes["val"] or scenes["train"] & scenes["reg"] or scenes["reg"] & scenes["val"])
    reader = NYUv2SyncReader(root)
    refs, problems = reader.index()
    assert not problems
    _, disp, valid = reader.load(refs[0])
    assert not valid[:, :4].any() and valid[:, 4:].all()  # 0 mm = no measurement
    assert (disp[:, :4] == 0).all()
    np.testing.assert_allclose(disp[:, 4:], 1.0 / (np.round(_depth_m(0) * 1000) / 1000)[:, 4:], rtol=1e-5)


def test_nyu_sync_sessions_of_one_room_are_one_split_group(tmp_path):
    """kitchen_0028a and kitchen_0028b film one kitchen: split apart, near-duplicate
    frames of it would sit in train and val at once."""
    for scene in ("kitchen_0028a", "kitchen_0028b", "office_0001"):
        d = tmp_path / "sync" / scene
        _save_rgb(d / "rgb_00001.jpg", _rgb(0))
        _save_png(d / "sync_depth_00001.png", np.round(_depth_m(0) * 1000).astype(np.uint16))
    refs, problems = NYUv2SyncReader(tmp_path).index()
    assert not problems
    assert sorted(r.group for r in refs) == ["sync/kitchen_0028", "sync/kitchen_0028", "sync/office_0001"]


def test_scene_folders_that_are_symlinks_are_read(tmp_path):
    """A dataset assembled from links (a shared copy linked into a project) read as empty."""
    def link_children(real, linked):
        linked.mkdir(parents=True)
        for child in real.iterdir():
            (linked / child.name).symlink_to(child, target_is_directory=child.is_dir())

    for kind, make in (("nyuv2", make_nyu_sync), ("diode", make_diode), ("folder", None)):
        real, linked = tmp_path / f"{kind}-real", tmp_path / f"{kind}-linked"
        if kind == "folder":  # scene subfolders images/s<k>/, depth/s<k>/ linked one by one
            for k in range(4):
                make_folder(real / "scenes" / f"s{k}", n=3)
                for sub in ("images", "depth"):
                    (real / sub).mkdir(exist_ok=True)
                    (real / "scenes" / f"s{k}" / sub).rename(real / sub / f"s{k}")
            for sub in ("images", "depth"):
                link_children(real / sub, linked / sub)
        else:
            make(real)
            link_children(real, linked)
        assert len(load_all(build_splits(f"{kind}:{linked}", SIZE, seed=0))) == \
            len(load_all(build_splits(f"{kind}:{real}", SIZE, seed=0))) > 0, kind


def test_few_scenes_fall_back_to_per_sample_split(tmp_path, caplog):
    root = make_nyu_sync(tmp_path / "nyu", scenes=2, frames=5)
    with caplog.at_level(logging.WARNING, logger="depthnas.datasets"):
        splits = build_splits(f"nyuv2:{root}", SIZE, seed=0)
    assert (len(splits.train), len(splits.reg), len(splits.val)) == (6, 2, 2)
    assert "splitting per sample" in caplog.text
    check_disjoint(splits, 10)


def test_nyu_labeled_mat_transposed_layout(tmp_path):
    path = tmp_path / "nyu_depth_v2_labeled.mat"
    rgbs, depths = make_nyu_mat(path)
    reader = NYUv2MatReader(path)
    refs, problems = reader.index()
    assert len(refs) == 6 and not problems
    rgb, disp, valid = reader.load(refs[4])
    np.testing.assert_array_equal(rgb, rgbs[4])  # H x W x 3, not W x H
    np.testing.assert_allclose(disp, 1.0 / depths[4], rtol=1e-6)
    assert valid.all()
    splits = build_splits(f"nyuv2:{path}", SIZE, seed=0)
    check_items(splits)
    check_disjoint(splits, 6)
    assert splits.manifest()["val"][0].startswith("nyu_depth_v2_labeled.mat#")


def test_nyu_mat_splits_by_scene(tmp_path):
    """Frames of one room never land in both train and val, nor do two recording
    sessions of one room (NYUv2's `kitchen_0003a` and `kitchen_0003b`)."""
    # 10 rooms, 2 sessions each, 3 frames each
    scenes = [f"kitchen_{i // 6:04d}{'ab'[i // 3 % 2]}" for i in range(60)]
    path = tmp_path / "nyu_depth_v2_labeled.mat"
    make_nyu_mat(path, n=60, scenes=scenes)
    refs, _ = NYUv2MatReader(path).index()
    assert [r.group for r in refs] == [s[:-1] for s in scenes]
    splits = build_splits(f"nyuv2:{path}", SIZE, seed=0)
    m = splits.manifest()
    room = {f"{path.name}#{i:05d}": s[:-1] for i, s in enumerate(scenes)}
    parts = {k: {room[i] for i in m[k]} for k in ("train", "reg", "val")}
    assert not (parts["train"] & parts["val"] or parts["train"] & parts["reg"] or parts["reg"] & parts["val"])


def test_nyu_mat_works_in_dataloader_workers(tmp_path):
    path = tmp_path / "nyu_depth_v2_labeled.mat"
    make_nyu_mat(path)
    splits = build_splits(f"nyuv2:{path}", SIZE, seed=0)
    splits.val[0]  # open the HDF5 handle in the parent first: workers must not reuse it
    loader = torch.utils.data.DataLoader(splits.train, batch_size=2, num_workers=2)
    batches = list(loader)
    assert sum(b["image"].shape[0] for b in batches) == len(splits.train)


def test_diode_layout_with_masks(tmp_path):
    root = make_diode(tmp_path / "diode")
    splits = build_splits(f"diode:{root}", SIZE, seed=0)
    check_items(splits)
    check_disjoint(splits, 8)
    reader = DIODEReader(root / "val")  # a split folder works as PATH too
    refs, problems = reader.index()
    assert len(refs) == 8 and not problems
    assert all(r.group == Path(r.id).parent.parent.as_posix() for r in refs)  # scene, not scan
    _, disp, valid = reader.load(refs[0])
    assert not valid[-3:].any() and valid[:-3].all()
    scene, scan = (int(v) for v in Path(refs[0].id).stem.split("_")[:2])
    np.testing.assert_allclose(disp[:-3], 1.0 / _depth_m(scene * 10 + scan)[:-3], rtol=1e-6)


def test_splits_deterministic_per_seed_and_vary_with_seed(tmp_path):
    root = make_folder(tmp_path / "f", n=20, fmt="npy")
    a = build_splits(f"folder:{root}", SIZE, seed=3).manifest()
    b = build_splits(f"folder:{root}", SIZE, seed=3).manifest()
    c = build_splits(f"folder:{root}", SIZE, seed=4).manifest()
    assert a == b and a["seed"] == 3
    assert a["val"] != c["val"]
    assert (len(a["train"]), len(a["reg"]), len(a["val"])) == (14, 3, 3)


def test_motorcycle_middlebury_disparity_as_folder(tmp_path):
    """scikit-image's Middlebury pair: inf = invalid disparity; saved as npy (0 = invalid)
    and as PFM (inf kept), plus a half-size copy, loaded as a disparity folder."""
    from skimage.data import stereo_motorcycle

    left, _, disp = stereo_motorcycle()
    root = tmp_path / "middlebury"
    _save_rgb(root / "images" / "motorcycle.png", left)
    (root / "depth").mkdir()
    write_pfm(root / "depth" / "motorcycle.pfm", disp)  # inf stays inf
    _save_rgb(root / "images" / "motorcycle_npy.png", left)
    np.save(root / "depth" / "motorcycle_npy.npy", np.where(np.isfinite(disp), disp, 0).astype(np.float32))
    small = cv2.resize(left, (left.shape[1] // 2, left.shape[0] // 2), interpolation=cv2.INTER_AREA)
    _save_rgb(root / "images" / "motorcycle_half.png", small)
    write_pfm(root / "depth" / "motorcycle_half.pfm",
              cv2.resize(disp, small.shape[1::-1], interpolation=cv2.INTER_NEAREST) / 2)

    reader = FolderReader(root, "disparity")
    refs, problems = reader.index()
    assert not problems and len(refs) == 3
    finite = np.isfinite(disp)
    for ref in (r for r in refs if "half" not in r.id):  # full size: pfm (inf) and npy (0)
        _, d, valid = reader.load(ref)
        np.testing.assert_array_equal(valid, finite)
        np.testing.assert_allclose(d[valid], disp[finite])
        assert 0.85 < valid.mean() < 0.99  # ~7% occluded/unknown pixels
    splits = build_splits(f"folder:{root}", (96, 128), seed=0, depth_kind="disparity",
                          val_fraction=0.34, reg_fraction=0.34)
    for ds in (splits.train, splits.reg, splits.val):
        item = ds[0]
        assert item["image"].shape == (3, 96, 128)
        mask, t = item["mask"][0], item["target"][0]
        assert 0.8 < float(mask.float().mean()) < 0.995
        assert float(t[mask].min()) == 0.0 and float(t[mask].max()) == pytest.approx(1.0)
    # The scene is farther at the top: mean target (disparity) is larger at the bottom.
    item = splits.val[0]
    t, m = item["target"][0], item["mask"][0]
    assert float(t[:32][m[:32]].mean()) < float(t[-32:][m[-32:]].mean())


# ---------------------------------------------------------------------- PFM format
def test_pfm_roundtrip_and_bottom_to_top_storage(tmp_path):
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = tmp_path / "x.pfm"
    write_pfm(path, arr)
    np.testing.assert_array_equal(read_pfm(path), arr)
    raw = path.read_bytes()
    header_end = raw.index(b"-1.0\n") + 5
    first_row = np.frombuffer(raw[header_end:header_end + 16], "<f4")
    np.testing.assert_array_equal(first_row, arr[-1])  # the file starts with the bottom row
    colour = np.random.default_rng(0).random((5, 6, 3)).astype(np.float32)
    write_pfm(path, colour)
    np.testing.assert_array_equal(read_pfm(path), colour)
    # Big-endian files (positive scale) are read too.
    path.write_bytes(b"Pf\n4 3\n1.0\n" + np.flipud(arr).astype(">f4").tobytes())
    np.testing.assert_array_equal(read_pfm(path), arr)


@pytest.mark.parametrize("content", [b"P6\n4 3\n255\n", b"Pf\n4 3\n-1.0\n" + b"\0" * 10,
                                     b"Pf\n4 3\n-1.0.0\n" + b"\0" * 48, b"Pf\n4 3\n0\n" + b"\0" * 48])
def test_pfm_bad_files_name_the_file(tmp_path, content):
    path = tmp_path / "bad.pfm"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match="bad.pfm"):
        read_pfm(path)


# ----------------------------------------------------------------------- bad input
def _expect_build_error(spec: str, match: str) -> None:
    with pytest.raises(DatasetError, match=match):
        build_splits(spec, SIZE, seed=0)


def _expect_load_error(spec: str, match: str) -> None:
    splits = build_splits(spec, SIZE, seed=0)  # pairing is fine; content is checked on load
    with pytest.raises(DatasetError, match=match):
        load_all(splits)


def _expect_skipped(spec: str, caplog, n_ok: int, n_bad: int, name: str) -> None:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="depthnas.datasets"):
        splits = build_splits(spec, SIZE, seed=0, skip_bad=True)
    m = splits.manifest()
    assert sum(len(m[k]) for k in ("train", "reg", "val")) == n_ok
    assert len(m["skipped"]) == n_bad and any(name in s for s in m["skipped"])
    warnings = [r for r in caplog.records if r.name.startswith("depthnas.datasets") and r.levelno == logging.WARNING]
    assert warnings and f"skipped {n_bad} of {n_ok + n_bad}" in warnings[-1].getMessage()
    assert name in warnings[-1].getMessage()
    load_all(splits)  # every remaining sample loads


def test_unknown_kind_and_malformed_specs():
    with pytest.raises(ValueError, match=r"'kitti'.*synthetic, redweb, nyuv2, diode, folder"):
        build_splits("kitti:/data", SIZE)
    with pytest.raises(ValueError, match="needs a path"):
        build_splits("folder", SIZE)
    with pytest.raises(ValueError, match=r"\(100, 64\)"):
        build_splits("synthetic", (100, 64))
    with pytest.raises(ValueError, match="depth_kind"):
        build_splits("synthetic", SIZE, depth_kind="metres")


def test_a_path_given_without_its_kind_is_told_the_folder_spec(tmp_path, monkeypatch):
    """`--data data/mine` said only "unknown dataset kind 'data/mine'"."""
    with pytest.raises(ValueError, match=r"unknown dataset kind 'data/mine'.*a folder of your own "
                                         r"is 'folder:data/mine'\)$"):
        build_splits("data/mine", SIZE)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    with pytest.raises(ValueError, match=r"is 'folder:mine'\)$"):
        build_splits("mine", SIZE)
    with pytest.raises(ValueError, match=r"\(use 'synthetic' or 'KIND:PATH'\)$"):
        build_splits("kitti", SIZE)  # a name, not a path: no folder hint
    with pytest.raises(ValueError, match=r"unknown dataset kind '/Data/Mine' in spec '/Data/Mine'"):
        build_splits("/Data/Mine", SIZE)  # shown as typed: it was lower-cased


def test_a_folder_of_only_bad_samples_is_not_said_to_have_the_wrong_layout(tmp_path, caplog):
    """With --skip-bad and every sample bad, the error said "no usable samples found
    (folder looks for images/NAME...)", as if the files had not been found."""
    root = make_folder(tmp_path / "f", n=4, fmt="npy")
    for p in (root / "depth").iterdir():
        np.save(p, np.full((H, W), np.nan, np.float32))
    with caplog.at_level(logging.WARNING, logger="depthnas.datasets"), \
            pytest.raises(DatasetError, match=r"no usable samples: all 4 found have bad input "
                                              r"\(the first: depth map .*s000.npy has \d+ NaN") as err:
        build_splits(f"folder:{root}", SIZE, seed=0, skip_bad=True)
    assert "looks for" not in str(err.value)


@pytest.mark.parametrize("kind", ["folder", "redweb", "nyuv2", "diode"])
def test_missing_folder_names_path(tmp_path, kind):
    missing = tmp_path / "nope"
    _expect_build_error(f"{kind}:{missing}", "nope")
    with pytest.raises(DatasetError, match="nope"):
        build_splits(f"{kind}:{missing}", SIZE, skip_bad=True)  # nothing to skip: still an error


def test_missing_subfolder_named(tmp_path):
    root = make_folder(tmp_path / "f")
    for p in (root / "depth").iterdir():
        p.unlink()
    (root / "depth").rmdir()
    _expect_build_error(f"folder:{root}", "depth folder not found")


def test_a_data_path_one_level_off_says_where_the_data_is(tmp_path):
    """--data at the data sets' parent, or at a data set's images/ folder, was told
    only "images folder not found", and a path that did not exist the same."""
    make_folder(tmp_path / "data" / "mine")
    make_folder(tmp_path / "data" / "other")
    with pytest.raises(DatasetError) as parent:
        build_splits(f"folder:{tmp_path / 'data'}", SIZE)
    assert (f"images folder not found: {tmp_path / 'data' / 'images'} (found in "
            f"{tmp_path / 'data' / 'mine'}, {tmp_path / 'data' / 'other'}: pass one of those); "
            "folder looks for images/NAME.jpg|png with depth/NAME") in str(parent.value)
    images = tmp_path / "data" / "mine" / "images"
    _expect_build_error(f"folder:{images}", re.escape(
        f"({images} is the images folder itself: pass {images.parent})"))
    depth = images.parent / "depth"  # was told only "images folder not found"
    _expect_build_error(f"folder:{depth}", re.escape(
        f"({depth} is a folder beside the images folder: pass {depth.parent})"))
    _expect_build_error(f"folder:{tmp_path / 'nope'}", re.escape(f"folder: data folder not found: {tmp_path / 'nope'}"))
    note = tmp_path / "notes.txt"
    note.write_text("x")
    _expect_build_error(f"folder:{note}", re.escape(f"folder: {note} is a file; folder:PATH names a folder"))
    _expect_build_error(f"nyuv2:{note}", re.escape(f"nyuv2: {note} is a file; nyuv2:PATH names a folder, "
                                                    "or the labeled .mat file (nyu_depth_v2_labeled.mat)"))


def test_the_hints_search_does_not_replace_the_error_with_a_permission_error(tmp_path, monkeypatch):
    """A mount's root holds a root-only lost+found: looking into it raised EACCES, and
    the user saw that instead of "images folder not found"."""
    make_folder(tmp_path / "data" / "mine")
    (tmp_path / "data" / "lost+found").mkdir()
    is_dir = Path.is_dir

    def guarded(self):
        if "lost+found" in self.parts and self.name != "lost+found":
            raise PermissionError(13, "Permission denied", str(self))
        return is_dir(self)
    monkeypatch.setattr(Path, "is_dir", guarded)
    _expect_build_error(f"folder:{tmp_path / 'data'}", re.escape(
        f"(found in {tmp_path / 'data' / 'mine'}: pass one of those)"))


def test_image_without_depth_and_depth_without_image(tmp_path, caplog):
    root = make_folder(tmp_path / "f", n=8)
    _save_rgb(root / "images" / "lonely.jpg", _rgb(99))
    _expect_build_error(f"folder:{root}", "lonely.jpg has no depth")
    _expect_skipped(f"folder:{root}", caplog, 8, 1, "lonely.jpg")
    (root / "images" / "lonely.jpg").unlink()
    np.save(root / "depth" / "orphan.npy", _depth_m(0))
    _expect_build_error(f"folder:{root}", "orphan.npy has no image")
    _expect_skipped(f"folder:{root}", caplog, 8, 1, "orphan.npy")


def test_ambiguous_depth_files(tmp_path):
    root = make_folder(tmp_path / "f", n=8)
    np.save(root / "depth" / "s000.npy", _depth_m(0))
    _expect_build_error(f"folder:{root}", "ambiguous depth files for 's000'")


def test_corrupt_image(tmp_path, caplog):
    root = make_folder(tmp_path / "f", n=8)
    (root / "images" / "s003.jpg").write_bytes(b"definitely not a jpeg")
    _expect_load_error(f"folder:{root}", "cannot read image .*s003.jpg")
    _expect_skipped(f"folder:{root}", caplog, 7, 1, "s003.jpg")


def test_corrupt_depth_png(tmp_path, caplog):
    root = make_folder(tmp_path / "f", n=8)
    (root / "depth" / "s002.png").write_bytes(b"\x89PNG garbage")
    _expect_load_error(f"folder:{root}", "s002.png")
    _expect_skipped(f"folder:{root}", caplog, 7, 1, "s002.png")


def test_depth_size_differs_from_image(tmp_path, caplog):
    root = make_folder(tmp_path / "f", n=8, fmt="npy")
    np.save(root / "depth" / "s005.npy", _depth_m(5, H // 2, W))
    _expect_load_error(f"folder:{root}", r"s005.npy is 64x24 .*s005.jpg is 64x48")
    _expect_skipped(f"folder:{root}", caplog, 7, 1, "s005.npy")


def test_all_invalid_depth(tmp_path, caplog):
    root = make_folder(tmp_path / "f", n=8, fmt="png")
    _save_png(root / "depth" / "s001.png", np.zeros((H, W), np.uint16))
    _expect_load_error(f"folder:{root}", r"s001.png has no valid pixel \(valid pixels hold a finite "
                                         r"depth > 0; 0 or below, inf and NaN mark unknown ones\)")
    _expect_skipped(f"folder:{root}", caplog, 7, 1, "s001.png")
    assert "8-bit" not in caplog.text  # all zeros is no measurement, not an 8-bit picture


def test_a_decoder_error_no_check_foresaw_is_a_bad_sample_naming_its_files(tmp_path, caplog, monkeypatch):
    """A cv2.error or ValueError from a reader (a PNG over OpenCV's pixel limit was
    one) ended `depthnas data` and --skip-bad runs with a traceback naming no file."""
    from depthnas.datasets import folder

    root = make_folder(tmp_path / "f", n=8, fmt="npy")
    real = folder.read_rgb

    def read_rgb(path):
        if str(path).endswith("s002.jpg"):
            raise cv2.error("OpenCV: something no check foresaw")
        return real(path)
    monkeypatch.setattr(folder, "read_rgb", read_rgb)
    _expect_load_error(f"folder:{root}", r"cannot read sample \S*s002\S* \(.*s002.jpg, .*s002.npy\): error: "
                                         "OpenCV: something no check foresaw")
    _expect_skipped(f"folder:{root}", caplog, 7, 1, "s002.jpg")


def test_a_depth_below_float32_s_range_is_no_measured_pixel_and_no_nan_target(tmp_path):
    """1 / 1e-39 m overflows to an infinite disparity, left valid: the target's
    normalisation made it NaN, and training stopped at "non-finite loss ... lower the
    learning rate", pointing away from the data."""
    root = make_folder(tmp_path / "f", n=8, fmt="npy")
    for path in (root / "depth").iterdir():
        depth = np.load(path)
        depth[10, 10] = 1e-39
        np.save(path, depth)
    splits = build_splits(f"folder:{root}", SIZE, seed=0)
    _, disp, valid = splits.val.raw(0)
    assert not valid[10, 10] and np.isfinite(disp).all()
    check_items(splits)  # every target finite, in [0, 1]
    # not measured, it is not counted by the checks either: a constant map with one
    # such pixel was no "constant map", and trained at a loss of 0
    np.save(root / "depth" / "s002.npy", np.where(np.arange(W)[None] == 3, 1e-39, 2.5).repeat(H, 0)
            .astype(np.float32))
    _expect_load_error(f"folder:{root}", r"s002.npy is constant \(2.5 m at every valid pixel\)")
    # and an API caller's transform drops a non-finite value marked valid, and refuses
    # a float image it would normalise as 0-255
    from depthnas.datasets.transforms import DepthTransform
    rgb, disp, valid = splits.val.raw(0)
    disp = disp.copy()
    disp[5, 5] = np.inf
    item = DepthTransform(SIZE)(rgb, disp, np.ones_like(valid))
    assert torch.isfinite(item["target"]).all()
    with pytest.raises(ValueError, match="DepthTransform: expected a uint8 RGB image, got float32"):
        DepthTransform(SIZE)(rgb.astype(np.float32) / 255, disp, valid)


def test_a_constant_depth_map_is_a_bad_sample(tmp_path, caplog):
    """It trained at a loss of 0 and scored perfectly: evaluate's metrics were the
    other samples' times 12/13."""
    root = make_folder(tmp_path / "f", n=8, fmt="npy")
    np.save(root / "depth" / "s005.npy", np.full_like(_depth_m(5), 2.5))
    _expect_load_error(f"folder:{root}", r"s005.npy is constant \(2.5 m at every valid pixel\)")
    _expect_skipped(f"folder:{root}", caplog, 7, 1, "s005.npy")
    redweb = make_redweb(tmp_path / "rw")  # RD 7 everywhere: said as the disparity read, 248
    _save_png(redweb / "RDs" / "r3.png", np.full((H, W), 7, np.uint8))
    _expect_load_error(f"redweb:{redweb}", r"r3.png is constant \(disparity \(255 - RD\) 248 at every")


def test_a_file_that_is_not_npy_is_called_so(tmp_path):
    """numpy calls any non-.npy file 'pickled (object) data' and suggests allow_pickle."""
    root = make_folder(tmp_path / "f", n=8, fmt="npy")
    (root / "depth" / "s002.npy").write_bytes(b"garbage, not an array")
    _expect_load_error(f"folder:{root}", r"^cannot read array \S*s002.npy: not a .npy file")


def test_nan_depth(tmp_path, caplog):
    root = make_folder(tmp_path / "f", n=8, fmt="pfm")
    d = _depth_m(4)
    d[10, 10] = np.nan
    write_pfm(root / "depth" / "s004.pfm", d)
    _expect_load_error(f"folder:{root}", "s004.pfm has 1 NaN value outside its invalid-pixel mask")
    _expect_skipped(f"folder:{root}", caplog, 7, 1, "s004.pfm")


def test_nan_under_the_formats_own_mask_is_just_unmeasured(tmp_path):
    root = make_diode(tmp_path / "diode", scenes=1, scans=1)
    depth_file = next(root.rglob("*_depth.npy"))
    depth = np.load(depth_file)
    depth[-3:] = np.nan  # the rows DIODE's mask marks invalid
    np.save(depth_file, depth)
    reader = DIODEReader(root)
    _, disp, valid = reader.load(reader.index()[0][0])
    assert not valid[-3:].any() and np.isfinite(disp).all()


def test_exif_orientation_does_not_turn_the_image_against_its_depth(tmp_path):
    """A phone photo tagged "rotate 180" is stored upside down; its depth map, made on
    the stored pixels, has no tag. The pair must stay as stored."""
    from PIL import Image
    root = tmp_path / "f"
    (root / "images").mkdir(parents=True)
    (root / "depth").mkdir()
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:, : W // 2] = 255  # left half white in the stored grid
    exif = Image.Exif()
    exif[0x0112] = 3  # Orientation: rotate 180
    Image.fromarray(rgb).save(root / "images" / "s000.jpg", exif=exif, quality=95)
    depth = np.full((H, W), 4.0, np.float32)
    depth[:, : W // 2] = 1.0  # the white half is near
    np.save(root / "depth" / "s000.npy", depth)
    reader = FolderReader(root)
    img, disp, _ = reader.load(reader.index()[0][0])
    assert img[:, : W // 2].mean() > 200 and img[:, W // 2:].mean() < 50
    assert disp[:, : W // 2].mean() > disp[:, W // 2:].mean()


def test_error_surfaces_through_dataset_getitem(tmp_path):
    root = make_folder(tmp_path / "f", n=8)
    (root / "images" / "s006.jpg").write_bytes(b"")
    splits = build_splits(f"folder:{root}", SIZE, seed=0)
    ds = next(d for d in (splits.train, splits.reg, splits.val) if any("s006" in i for i in d.ids()))
    idx = next(i for i, s in enumerate(ds.ids()) if "s006" in s)
    with pytest.raises(DatasetError, match="s006.jpg"):
        ds[idx]


def test_redweb_unpaired_and_all_sky(tmp_path, caplog):
    root = make_redweb(tmp_path / "rw")
    _save_png(root / "RDs" / "r3.png", np.full((H, W), 255, np.uint8))
    _expect_load_error(f"redweb:{root}", r"r3.png has no valid pixel \(RD 255 marks an unknown pixel, "
                                         r"every other value a measured one\)")
    (root / "RDs" / "r5.png").unlink()
    _expect_build_error(f"redweb:{root}", "r5.jpg has no depth")
    _expect_skipped(f"redweb:{root}", caplog, 6, 2, "r3.png")


def test_diode_and_nyu_names_differing_in_case_alone_are_ambiguous(tmp_path):
    """X.png beside X.PNG (DIODE), rgb_00000.jpg beside RGB_00000.JPG (NYUv2): one of
    each was dropped without a word, which one depending on the disk's listing order."""
    diode = make_diode(tmp_path / "diode", scenes=1, scans=1)
    image = next(diode.rglob("*.png"))
    _save_rgb(image.with_suffix(".PNG"), _rgb(7))
    _expect_build_error(f"diode:{diode}", rf"ambiguous image files for '{image.stem}': .*{image.stem}.PNG")
    image.with_suffix(".PNG").unlink()
    depth = image.with_name(image.stem + "_depth.npy")
    depth.rename(depth.with_suffix(".NPY"))
    _expect_build_error(f"diode:{diode}", rf"has no {image.stem}_depth.npy \({image.stem}_depth.NPY here: "
                                          rf"the name must be the image's, {image.stem}, then _depth.npy")
    depth.with_suffix(".NPY").rename(depth)
    upper = image.with_name(image.stem.upper() + ".png")  # another image: c.png's files are not its
    _save_rgb(upper, _rgb(8))
    with pytest.raises(DatasetError) as err:
        build_splits(f"diode:{diode}", SIZE, seed=0)
    said = str(err.value)
    assert f"{upper} has no {upper.stem}_depth.npy / {upper.stem}_depth_mask.npy" in said
    assert "here: the name must be" not in said
    nyu = make_nyu_sync(tmp_path / "nyu", scenes=2)
    _save_rgb(nyu / "sync" / "scene_00" / "RGB_00000.JPG", _rgb(9))
    _expect_build_error(f"nyuv2:{nyu}", r"ambiguous image files for '00000': .*RGB_00000.JPG")


def test_nyu_sync_missing_depth_and_8bit_depth(tmp_path, caplog):
    root = make_nyu_sync(tmp_path / "nyu")
    (root / "sync" / "scene_01" / "sync_depth_00011.png").unlink()
    _expect_build_error(f"nyuv2:{root}", "rgb_00011.jpg has no depth")
    _save_png(root / "sync" / "scene_01" / "sync_depth_00011.png", np.full((H, W), 7, np.uint8))
    _expect_load_error(f"nyuv2:{root}", "sync_depth_00011.png should be 16-bit")
    _expect_skipped(f"nyuv2:{root}", caplog, 17, 1, "sync_depth_00011.png")


def test_nyu_mat_bad_files(tmp_path):
    path = tmp_path / "bad.mat"
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=np.zeros((3, 3, W, H), np.uint8))
        f.create_dataset("depths", data=np.ones((2, W, H)))
    _expect_build_error(f"nyuv2:{path}", "bad.mat.*do not match")
    not_hdf5 = tmp_path / "old.mat"
    not_hdf5.write_bytes(b"MATLAB 5.0 MAT-file")
    _expect_build_error(f"nyuv2:{not_hdf5}", "old.mat")
    # float RGB in [0, 1] became black images through a cast to uint8, without a word
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=np.full((2, 3, W, H), 0.5))
        f.create_dataset("depths", data=np.ones((2, W, H)))
    _expect_build_error(f"nyuv2:{path}", r"bad.mat: 'images' holds float64, not uint8 RGB")
    with h5py.File(path, "w") as f:  # millimetres as integers, read as metres
        f.create_dataset("images", data=np.zeros((2, 3, W, H), np.uint8))
        f.create_dataset("depths", data=np.full((2, W, H), 1500, np.uint16))
    _expect_build_error(f"nyuv2:{path}", r"bad.mat: 'depths' holds uint16, not depth in metres")


def test_diode_missing_mask(tmp_path, caplog):
    root = make_diode(tmp_path / "diode")
    victim = next(root.rglob("*_depth_mask.npy"))
    victim.unlink()
    name = victim.name.replace("_depth_mask.npy", ".png")
    _expect_build_error(f"diode:{root}", f"{name} has no .*_depth_mask.npy")
    _expect_skipped(f"diode:{root}", caplog, 7, 1, name)


def test_a_diode_mask_of_no_valid_pixel_is_named_with_its_rule(tmp_path):
    """Good depths with an all-zero mask were blamed as 'depth > 0' failures."""
    root = make_diode(tmp_path / "diode")
    victim = next(root.rglob("*_depth_mask.npy"))
    np.save(victim, np.zeros((H, W), np.float32))
    _expect_load_error(f"diode:{root}", r"has no valid pixel \(valid pixels are 1 in its "
                                        r"_depth_mask.npy and hold a finite depth > 0\)")


def test_a_diode_depth_map_of_another_size_is_named_not_its_mask(tmp_path):
    """The mask, right for the image, was blamed for the depth map's size."""
    root = make_diode(tmp_path / "diode")
    victim = next(root.rglob("*_depth.npy"))
    np.save(victim, np.ones((H // 2, W // 2, 1), np.float32))
    _expect_load_error(f"diode:{root}", rf"depth map .*{victim.name} is {W // 2}x{H // 2} .*but its image")


def test_diode_image_with_an_upper_case_suffix_and_an_orphan_mask(tmp_path, caplog):
    """`a.PNG` was indexed as `a.png`, a file that does not exist, and failed only when
    first read; a mask without its image was skipped without a word."""
    root = make_diode(tmp_path / "diode")
    image = next(root.rglob("*.png"))
    image.rename(image.with_suffix(".PNG"))
    refs, problems = DIODEReader(root).index()
    assert not problems and len(refs) == 8
    loaded = [r for r in refs if r.image.endswith(".PNG")]
    assert len(loaded) == 1 and DIODEReader(root).load(loaded[0])[0].shape == (H, W, 3)
    np.save(image.parent / "orphan_depth_mask.npy", np.ones((H, W), np.float32))
    _expect_build_error(f"diode:{root}", "depth mask .*orphan_depth_mask.npy has no image")


def test_too_few_samples(tmp_path):
    root = make_folder(tmp_path / "f", n=2, fmt="npy")
    _expect_build_error(f"folder:{root}", "too few")


# ------------------------------------------------------- files that decode, but wrongly
def test_a_truncated_jpeg_is_an_error_not_grey_rows(tmp_path, caplog):
    """OpenCV decodes a cut JPEG without complaint and paints the missing rows grey."""
    root = make_folder(tmp_path / "f", n=8)
    path = root / "images" / "s006.jpg"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    _expect_load_error(f"folder:{root}", "truncated JPEG .*s006.jpg")
    _expect_skipped(f"folder:{root}", caplog, 7, 1, "s006.jpg")
    # what a camera appends after the end-of-image marker (a motion photo's video,
    # whose bytes hold start-of-scan markers too) is harmless
    path.write_bytes(data + b"\0ftypmp42\xff\xda\x00\x0c video")
    assert FolderReader(root).load(FolderReader(root).index()[0][6])[0].shape == (H, W, 3)


def test_a_12_bit_colour_image_is_scaled_by_its_bit_depth_not_cut_to_its_high_byte(tmp_path):
    """OpenCV's colour decode keeps each 16-bit channel's high byte: 12-bit sensor data
    (0..4095) trained as 0..15, almost black."""
    root = make_folder(tmp_path / "f", n=2)
    rgb16 = _rgb(0).astype(np.uint16) * 16  # 8-bit content stored as 12-bit
    _save_png(root / "images" / "s000.png", cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
    for f in (root / "images").glob("s000.*"):
        if f.suffix != ".png":
            f.unlink()
    reader = FolderReader(root)
    rgb = reader.load(reader.index()[0][0])[0]
    np.testing.assert_allclose(rgb.astype(int), _rgb(0).astype(int), atol=1)


@pytest.mark.parametrize("orientation", [3, 6, 8])
@pytest.mark.parametrize("bits", [8, 16, "float32", "int16", "uint32"])
def test_a_tiff_with_an_orientation_tag_is_read_in_its_stored_grid(tmp_path, orientation, bits):
    """OpenCV's TIFF decoder turns the image by its Orientation tag even when told to
    ignore it; the depth map beside it is stored unturned, so a 180-degree tag paired
    every pixel with the wrong depth (and 90 degrees failed on the shape). Float, int16
    and uint32 colour TIFFs, which PIL cannot open, were turned too."""
    import tifffile
    root = make_folder(tmp_path / "f", n=2)
    rgb = _rgb(0)
    stored = {8: rgb, 16: rgb.astype(np.uint16) * 16,  # 16: 8-bit content as 12-bit
              "float32": rgb.astype(np.float32) / 255, "int16": rgb.astype(np.int16) * 128,
              "uint32": rgb.astype(np.uint32) << 24}[bits]
    (root / "images" / "s000.jpg").unlink()
    tifffile.imwrite(root / "images" / "s000.tif", stored, photometric="rgb",
                     extratags=[(274, "H", 1, orientation, True)])
    reader = FolderReader(root)
    loaded = reader.load(reader.index()[0][0])[0]
    np.testing.assert_allclose(loaded.astype(int), rgb.astype(int), atol=1)


@pytest.mark.parametrize("kind, bigtiff", [("B", False), ("h", False), ("i", False), ("Q", False),
                                           ("I", True), ("h", True), ("H", True)])
def test_a_tiff_orientation_tag_of_any_integer_type_is_read_as_opencv_applies_it(tmp_path, kind, bigtiff):
    """libtiff, and so OpenCV, turns a TIFF by an Orientation tag stored as BYTE,
    SSHORT, SLONG or LONG8 as well as SHORT; the hand-read tag knew SHORT and LONG only,
    and BigTIFF files were not looked at. A tag of two values libtiff ignores."""
    import tifffile
    root = make_folder(tmp_path / "f", n=2)
    rgb = _rgb(0)
    (root / "images" / "s000.jpg").unlink()
    path = root / "images" / "s000.tif"
    tifffile.imwrite(path, rgb.astype(np.float32) / 255, photometric="rgb", bigtiff=bigtiff,
                     extratags=[(274, kind, 1, 6, True)])
    reader = FolderReader(root)
    loaded = reader.load(reader.index()[0][0])[0]
    np.testing.assert_allclose(loaded.astype(int), rgb.astype(int), atol=1)
    if kind == "H" and bigtiff:
        tifffile.imwrite(path, rgb.astype(np.float32) / 255, photometric="rgb",
                         extratags=[(274, "H", 2, (6, 6), True)])  # libtiff: "Incorrect count"
        loaded = reader.load(reader.index()[0][0])[0]
        np.testing.assert_allclose(loaded.astype(int), rgb.astype(int), atol=1)


def test_a_float_tiff_turned_on_screen_gets_the_as_stored_hint(tmp_path):
    import tifffile
    root = make_folder(tmp_path / "f", n=2, fmt="npy")
    (root / "images" / "s000.jpg").unlink()
    tifffile.imwrite(root / "images" / "s000.tif", np.zeros((W, H, 3), np.float32),
                     photometric="rgb", extratags=[(274, "H", 1, 6, True)])
    reader = FolderReader(root)
    with pytest.raises(DatasetError, match=r"as stored: its EXIF orientation tag \(6\) turns it"):
        reader.load(reader.index()[0][0])


def test_a_colour_mapped_depth_png_is_refused_and_grey_copies_are_read(tmp_path):
    root = make_folder(tmp_path / "f", n=2)
    mm = np.round(_depth_m(1) * 1000).astype(np.uint16)
    _save_png(root / "depth" / "s001.png", np.dstack([mm, mm, mm]))  # three identical channels
    reader = FolderReader(root)
    refs, _ = reader.index()
    np.testing.assert_allclose(reader.load(refs[1])[1], 1.0 / (mm / 1000.0), rtol=1e-5)
    colour = cv2.applyColorMap(np.tile(np.arange(W, dtype=np.uint8), (H, 1)), cv2.COLORMAP_JET)
    _save_png(root / "depth" / "s001.png", colour)
    with pytest.raises(DatasetError, match=r"s001.png has 3 channels that differ"):
        reader.load(refs[1])
    colour_pfm = np.dstack([_depth_m(1), _depth_m(1), 2 * _depth_m(1)])
    (root / "depth" / "s001.png").unlink()
    write_pfm(root / "depth" / "s001.pfm", colour_pfm)
    with pytest.raises(DatasetError, match=r"s001.pfm has 3 channels that differ"):
        reader.load(reader.index()[0][1])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])  # 16-bit topping out at 255: the same
def test_a_full_range_8_bit_depth_png_is_flagged(tmp_path, caplog, dtype):
    root = make_folder(tmp_path / "f", n=1)
    _save_png(root / "depth" / "s000.png", np.tile(np.linspace(1, 255, W).astype(dtype), (H, 1)))
    reader = FolderReader(root, "depth")
    with caplog.at_level("WARNING"):
        reader.load(reader.index()[0][0])
    assert "looks like an 8-bit PNG" in caplog.text


def test_disparity_maps_nan_is_an_error_and_negatives_are_invalid_with_a_warning(tmp_path, caplog):
    root = make_folder(tmp_path / "f", n=2, fmt="npy")
    disp = 1.0 / _depth_m(0)
    disp[0, :8] = -1.0  # a stereo export's "no match"
    np.save(root / "depth" / "s000.npy", disp)
    bad = 1.0 / _depth_m(1)
    bad[3, 3] = np.nan
    np.save(root / "depth" / "s001.npy", bad)
    reader = FolderReader(root, "disparity")
    refs, _ = reader.index()
    with caplog.at_level("WARNING"):
        _, values, valid = reader.load(refs[0])
    assert "8 negative disparities, read as invalid" in caplog.text
    assert not valid[0, :8].any() and valid[1:].all()
    with pytest.raises(DatasetError, match=r"s001.npy contains 1 NaN"):
        reader.load(refs[1])


def test_pfm_with_windows_line_ends_and_pfm_with_extra_bytes(tmp_path):
    arr = np.random.default_rng(3).random((40, 60)).astype(np.float32)
    path = tmp_path / "crlf.pfm"
    path.write_bytes(b"Pf\r\n60 40\r\n-1.0\r\n" + np.flipud(arr).astype("<f4").tobytes())
    np.testing.assert_array_equal(read_pfm(path), arr)
    path.write_bytes(b"Pf\n60 40\n-1.0\n" + np.flipud(arr).astype("<f4").tobytes() + b"\n")
    np.testing.assert_array_equal(read_pfm(path), arr)  # a newline after the data is padding
    path.write_bytes(b"Pf \n60 40 \n-1.0 \n" + np.flipud(arr).astype("<f4").tobytes())
    np.testing.assert_array_equal(read_pfm(path), arr)  # spaces before the line ends
    newline_first = np.full((2, 2), np.frombuffer(b"\n\0\0\x3f", "<f4")[0], np.float32)
    path.write_bytes(b"Pf 2 2 -1.0 " + newline_first.astype("<f4").tobytes())  # one line: a byte 10 is data
    np.testing.assert_array_equal(read_pfm(path), newline_first)
    path.write_bytes(b"Pf\n30 40\n-1.0\n" + np.flipud(arr).astype("<f4").tobytes())  # width halved
    with pytest.raises(DatasetError, match=r"crlf.pfm: 30x40x1 needs 4800 data bytes, found 9600"):
        read_pfm(path)


def test_diode_bool_mask_is_read_and_a_complex_depth_array_is_refused(tmp_path):
    root = make_diode(tmp_path / "diode", scenes=1, scans=1)
    mask_file = next(root.rglob("*_depth_mask.npy"))
    np.save(mask_file, np.load(mask_file) > 0)
    reader = DIODEReader(root)
    ref = reader.index()[0][0]
    valid = reader.load(ref)[2]
    assert valid[:-3].all() and not valid[-3:].any()
    np.save(ref.depth, _depth_m(0).astype(np.complex64))
    with pytest.raises(DatasetError, match=r"real-valued map in .*_depth.npy.*complex64"):
        reader.load(ref)


def test_linked_in_folders_are_read_once(tmp_path, caplog):
    """Links are followed (data sets are put together from them), but a second name for
    a folder listed its frames twice, in train and val at once, and a link back up the
    tree listed them 40 times."""
    root = make_nyu_sync(tmp_path / "nyu", scenes=4, frames=3)
    (root / "train").symlink_to(root / "sync")                       # an alias
    (root / "sync" / "scene_00" / "up").symlink_to(root / "sync")   # a loop
    with caplog.at_level(logging.WARNING, logger="depthnas.datasets"):
        refs, problems = NYUv2SyncReader(root).index()
    assert len(refs) == 12 and not problems
    assert all(r.id.startswith("sync/scene_") and "/up/" not in r.id for r in refs)
    assert "folder(s) reached again through links are read once" in caplog.text
    folder = make_folder(tmp_path / "folder", n=4)
    (folder / "images" / "again").symlink_to(folder / "images")
    (folder / "depth" / "again").symlink_to(folder / "depth")
    (folder / "images" / "scene_b").symlink_to(tmp_path / "unmounted" / "b")  # a folder, not there
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="depthnas.datasets"):
        assert len(FolderReader(folder).index()[0]) == 4
    assert "1 link(s) lead nowhere (a drive not mounted?) and are not read" in caplog.text
    assert "images/scene_b" in caplog.text


def test_a_link_to_nothing_is_named_not_dropped(tmp_path):
    """A data set of links to a drive that is not mounted shrank without a word."""
    root = make_folder(tmp_path / "folder", n=4)
    (root / "images" / "s010.jpg").symlink_to(tmp_path / "unmounted" / "a.jpg")
    (root / "depth" / "s010.png").symlink_to(tmp_path / "unmounted" / "a.png")
    splits = build_splits(f"folder:{root}", (32, 32), val_fraction=0.0, reg_fraction=0.0)
    assert len(splits.train) == 5
    skipping = build_splits(f"folder:{root}", (32, 32), val_fraction=0.0, reg_fraction=0.0,
                            skip_bad=True)
    assert len(skipping.train) == 4 and any("s010.jpg" in s for s in skipping.skipped)
    ids = [i for i in range(5) if splits.train.ids()[i].endswith("s010.jpg")]
    with pytest.raises(DatasetError, match=r"s010\.jpg"):
        splits.train.raw(ids[0])


def test_a_layout_with_no_samples_says_what_it_looks_for(tmp_path):
    """Both said only "no usable samples found": an empty images/ + depth/, and an NYUv2
    folder holding the labeled .mat, which must be passed as the file itself."""
    (tmp_path / "f" / "images").mkdir(parents=True)
    (tmp_path / "f" / "depth").mkdir()
    with pytest.raises(DatasetError, match=r"no usable samples found \(folder looks for "
                                           r"images/NAME.jpg\|png with depth/NAME.png\|npy\|pfm"):
        build_splits(f"folder:{tmp_path / 'f'}", (64, 64))
    (tmp_path / "nyu").mkdir()
    (tmp_path / "nyu" / "nyu_depth_v2_labeled.mat").write_bytes(b"")
    with pytest.raises(DatasetError, match="nyu_depth_v2_labeled.mat is here: pass nyuv2:"):
        build_splits(f"nyuv2:{tmp_path / 'nyu'}", (64, 64))


def test_depthnas_data_names_every_bad_sample_at_once(tmp_path, capsys):
    """A run reads lazily and stops at the first bad file it meets: three bad files
    took three runs to find. `depthnas data` reads them all."""
    from depthnas.cli import main
    root = make_folder(tmp_path / "f", n=8, fmt="npy")
    (root / "images" / "s001.jpg").write_bytes(b"\xff\xd8 cut off")
    nan = _depth_m(2)
    nan[0, 0] = np.nan
    np.save(root / "depth" / "s002.npy", nan)
    np.save(root / "depth" / "s003.npy", _depth_m(3, h=H // 2))
    assert main(["data", "--data", f"folder:{root}", "--no-progress"]) == 1
    captured = capsys.readouterr()
    bad = [line for line in captured.out.splitlines() if line.startswith("bad: ")]
    assert len(bad) == 3 and all(any(f"s00{i}" in line for line in bad) for i in (1, 2, 3))
    assert f"folder:{root}: 5 readable sample(s) in 5 group(s)" in captured.out
    assert f"image sizes (WxH): {W}x{H} (5)" in captured.out
    assert "depth over valid pixels: 1 m to 6.2 m" in captured.out  # _depth_m: 1 to 6.2 m
    assert "3 bad sample(s): fix them, or leave them out of a run with --skip-bad (search, train, evaluate)" in captured.err
    # a run stopped by one of them points here
    splits = build_splits(f"folder:{root}", SIZE, seed=0)
    with pytest.raises(DatasetError, match=re.escape(f"`depthnas data --data folder:{root}` lists "
                                                     "every bad sample at once")):
        load_all(splits)
    for i in (1, 2, 3):
        (root / "images" / f"s00{i}.jpg").unlink()
        (root / "depth" / f"s00{i}.npy").unlink()
    # 5 samples leave training 3: a batch of 2 fits
    assert main(["data", "--data", f"folder:{root}", "--no-progress", "--batch-size", "2"]) == 0
    assert ", 0 bad" in capsys.readouterr().out
    assert main(["data", "--data", "digits"]) == 2  # valid for nb201, not a depth data set
    assert "digits is classification data" in capsys.readouterr().err


def test_depthnas_data_lists_the_folders_it_left_out_and_fails_data_too_few_to_split(tmp_path, capsys,
                                                                                     caplog):
    """A scene folder named differently on each side was left out with a log line and
    `data` passed (exit 0); two good pairs passed, and every run then refused them."""
    from depthnas.cli import main
    root = make_folder(tmp_path / "f", n=6)
    for side, scene in (("images", "walk2"), ("depth", "walk_2")):
        (root / side / scene).mkdir()
        (root / side / "s000.jpg" if side == "images" else root / side / "s000.png").rename(
            root / side / scene / ("0.jpg" if side == "images" else "0.png"))
    assert main(["data", "--data", f"folder:{root}", "--no-progress", "--batch-size", "2"]) == 0
    out = capsys.readouterr().out
    assert "5 readable sample(s) in 5 group(s)" in out
    assert "not read: depth/walk_2/ (no images/walk_2/)" in out
    assert "not read: images/walk2/ (no depth/walk2/)" in out
    assert "(a scene folder named differently on each side?)" in caplog.text
    for i in range(1, 4):
        (root / "images" / f"s{i:03d}.jpg").unlink()
        (root / "depth" / f"s{i:03d}.png").unlink()
    assert main(["data", "--data", f"folder:{root}", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert f"folder:{root}: 2 readable sample(s), 0 bad" in out  # no groups said of a set no run splits
    assert ("too few for a run: 2 samples are too few for val_fraction=0.15, reg_fraction=0.15: "
            "the splits need at least 3") in out


def test_a_folder_listed_again_after_its_one_sided_scene_got_its_other_side_reads_all(tmp_path):
    """not_read kept the first listing's one-sided folders: once depth/walk/ was added
    a second index() still said images/walk/ was not read."""
    root = make_folder(tmp_path / "f", n=6)
    (root / "images" / "walk").mkdir()
    (root / "images" / "s000.jpg").rename(root / "images" / "walk" / "0.jpg")
    reader = FolderReader(root)
    reader.index()
    assert reader.not_read == ["images/walk/ (no depth/walk/)"]
    (root / "depth" / "walk").mkdir()
    (root / "depth" / "s000.png").rename(root / "depth" / "walk" / "0.png")
    refs, problems = reader.index()
    assert reader.not_read == [] and len(refs) == 6 and not problems


def test_a_depth_map_whose_image_has_a_suffix_not_read_names_that_image(tmp_path):
    """"depth map s005.png has no image" beside images/s005.gif: an image of the name
    was there, of a format training does not read; the other way round said so. Each
    depth map without an image is named, the note going with its own alone."""
    root = make_folder(tmp_path / "f", n=8)
    (root / "images" / "s005.jpg").rename(root / "images" / "s005.gif")
    (root / "images" / "s006.jpg").unlink()
    refs, problems = FolderReader(root).index()
    assert len(refs) == 6
    assert sorted(p for p in problems if p.startswith("depth map ")) == [
        f"depth map {root / 'depth' / 's005.png'} has no image ({root / 'images' / 's005.gif'} is "
        "not read: images here are .jpg / .jpeg / .png / .bmp / .tif / .tiff / .webp)",
        f"depth map {root / 'depth' / 's006.png'} has no image"]


def test_a_redweb_rd_whose_image_has_a_suffix_not_read_names_that_image(tmp_path):
    """As for folder: data, "depth map RDs/r2.png has no image" beside Imgs/r2.gif named
    the image of the name that was there, of a format not read."""
    root = make_redweb(tmp_path / "rw", n=4)
    (root / "Imgs" / "r2.jpg").rename(root / "Imgs" / "r2.gif")
    refs, problems = ReDWebReader(root).index()
    assert len(refs) == 3
    assert [p for p in problems if "r2" in p] == [
        f"depth map {root / 'RDs' / 'r2.png'} has no image ({root / 'Imgs' / 'r2.gif'} is not "
        "read: images here are .jpg / .jpeg / .png / .bmp / .tif / .tiff / .webp)"]


def test_depthnas_data_of_only_bad_samples_says_they_are_bad_not_too_few(tmp_path):
    """Every sample bad: each is named; "0 samples are too few" would only repeat it."""
    from depthnas.datasets.check import check_data
    root = make_folder(tmp_path / "f", n=3)
    for i in range(3):
        (root / "images" / f"s{i:03d}.jpg").write_bytes(b"\xff\xd8 cut off")
    check = check_data(f"folder:{root}")
    assert check.samples == 0 and len(check.problems) == 3 and not check.usable
    assert check.unsplittable == ""
    assert not any("too few" in line for line in check.lines())


@pytest.mark.parametrize("val, reg, least", [(0.15, 0.15, 3), (0.3, 0.3, 3), (0.5, 0.45, 5),
                                             (0.6, 0.39, 14)])
def test_too_few_samples_names_the_least_number_the_splits_need(val, reg, least):
    """"the splits need at least N": N splits, and no count between the samples there
    are and N does, however far N is above them."""
    with pytest.raises(DatasetError, match=rf"2 samples are too few .*: the splits need at least {least}$"):
        split_counts(2, val, reg)
    assert split_counts(least, val, reg)[0] >= 1
    for fewer in range(3, least):
        with pytest.raises(DatasetError, match="too few"):
            split_counts(fewer, val, reg)
    assert least_samples(0.5, 0.45, more_than=6) == 9  # 5 splits, 6 to 8 do not: not monotone
    assert least_samples(0.5, 0.45, more_than=5) == 9  # above more_than, not it


def test_depthnas_data_says_when_too_few_scenes_split_per_sample(tmp_path, capsys):
    """It said "scenes stay in one split" of 2 scenes, which a run then split per sample
    (with a warning): frames of one scene in train and validation."""
    from depthnas.cli import main
    for scenes, said in ((2, "too few to keep each in one split"), (12, "scenes stay in one split")):
        root = tmp_path / f"s{scenes}"
        for k in range(scenes):
            for i in range(24 // scenes):
                _save_rgb(root / "images" / f"walk_{k}" / f"{i:03d}.jpg", _rgb(k * 10 + i))
                (root / "depth" / f"walk_{k}").mkdir(parents=True, exist_ok=True)
                np.save(root / "depth" / f"walk_{k}" / f"{i:03d}.npy", _depth_m(k * 10 + i))
        assert main(["data", "--data", f"folder:{root}", "--no-progress"]) == 0
        assert f"24 readable sample(s) in {scenes} group(s) ({said}" in capsys.readouterr().out


def test_file_names_that_are_not_utf8_are_read_and_reported(tmp_path):
    """cv2.imread crashed the process (SIGSEGV) on such a name, and a strict UTF-8
    stdout stopped `depthnas data` on the report line naming one."""
    root = make_folder(tmp_path / "f", n=4)
    base = os.fsencode(root)
    os.rename(base + b"/images/s000.jpg", base + b"/images/caf\xe9.jpg")
    os.rename(base + b"/depth/s000.png", base + b"/depth/caf\xe9.png")
    os.rename(base + b"/images/s001.jpg", base + b"/images/orph\xe9.jpg")  # now unpaired
    env = dict(os.environ, PYTHONIOENCODING="utf-8:strict", HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "depthnas", "data", "--data", f"folder:{root}"],
                          capture_output=True, env=env, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert b"3 readable sample(s)" in proc.stdout and b"orph\xe9.jpg has no depth map" in proc.stdout


def test_a_scene_split_that_starves_train_falls_back_to_a_per_sample_split():
    """Whole scenes can overshoot val and reg and leave train a sample or two: below half
    its intended size the split goes per sample."""
    from depthnas.datasets.base import SampleRef
    from depthnas.datasets.splits import assign_groups, split_counts
    sizes = {"a": 5, "b": 4, "c": 1}
    refs = [SampleRef(id=f"{g}/{i}", image="", depth="", group=g)
            for g, k in sizes.items() for i in range(k)]
    n_train = split_counts(len(refs), 0.3, 0.3)[0]
    per_sample = 0
    for seed in range(30):
        train, reg, val, whole = assign_groups(refs, seed, 0.3, 0.3, warn=False)
        per_sample += whole is False
        assert len(train) >= n_train // 2, (seed, len(train))
        assert len(train) + len(reg) + len(val) == len(refs)
    assert per_sample  # some seeds drew scenes that starved train


def test_depthnas_data_reports_the_share_of_valid_pixels(tmp_path):
    from depthnas.datasets.check import check_data
    root = make_redweb(tmp_path / "ReDWeb_V1", n=3)  # rows 0..19 of 48 are sky (255)
    check = check_data(f"redweb:{root}")
    assert check.valid == pytest.approx([28 / 48] * 3)
    assert "valid pixels per image: mean 58%, least 58%" in check.lines()


def test_a_16_bit_image_whose_maximum_is_a_power_of_two_is_read_at_the_next_bit_depth():
    """256 needs 9 bits: 10-bit data, scaled by 255/1023, not clipped as 8-bit."""
    from depthnas.datasets.io import to_uint8
    np.testing.assert_array_equal(to_uint8(np.array([[0, 128, 256]], np.uint16)),
                                  np.round(np.array([[0, 128, 256]]) * 255 / 1023))
    np.testing.assert_array_equal(to_uint8(np.array([[0, 1024]], np.uint16)), [[0, 64]])


def _total(spec: str) -> int:
    m = build_splits(spec, SIZE, seed=0).manifest()
    return sum(len(m[k]) for k in ("train", "reg", "val"))


def test_hidden_files_and_folders_are_no_samples(tmp_path, caplog):
    """A data set copied from a Mac has a `._NAME` beside every file: it read as half
    corrupt ("cannot read image ._s000.jpg"), and a notebook's .ipynb_checkpoints folder
    would be read as a scene of copies."""
    folder = make_folder(tmp_path / "f")
    diode = make_diode(tmp_path / "diode")
    for f in [*folder.rglob("*.*"), *diode.rglob("*.*")]:
        (f.parent / f"._{f.name}").write_bytes(b"\0\5\26\7 AppleDouble")
    checkpoints = folder / "images" / ".ipynb_checkpoints"
    checkpoints.mkdir()
    _save_rgb(checkpoints / "s000-checkpoint.jpg", _rgb(0))
    (folder / "depth" / ".ipynb_checkpoints").mkdir()
    with caplog.at_level(logging.INFO, logger="depthnas.datasets"):
        assert _total(f"folder:{folder}") == 8 and _total(f"diode:{diode}") == 8
    assert "hidden file(s) or folder(s) (names starting with '.', such as macOS '._' copies) are not read" \
        in caplog.text


def test_a_depth_map_in_a_format_not_read_is_named_beside_its_image(tmp_path):
    """`depth/s003.exr` was passed over without a word: "image s003.jpg has no depth map"
    pointed away from the file that was there."""
    root = make_folder(tmp_path / "f")
    (root / "depth" / "s003.png").rename(root / "depth" / "s003.exr")
    _expect_build_error(f"folder:{root}", r"image .*s003.jpg has no depth map \(.*s003.exr is not read: "
                                          r"depth maps here are .png / .npy / .pfm\)")
    redweb = make_redweb(tmp_path / "r")
    (redweb / "RDs" / "r2.png").rename(redweb / "RDs" / "r2.jpg")
    _expect_build_error(f"redweb:{redweb}", r"r2.jpg has no depth map \(.*RDs/r2.jpg is not read: "
                                            r"depth maps here are .png\)")


def test_a_scene_folder_that_cannot_be_listed_is_warned_of(tmp_path, caplog, monkeypatch):
    """os.walk passed over it without a word: its frames were gone from the data set."""
    import os
    root = make_nyu_sync(tmp_path / "nyu", scenes=3, frames=2)
    locked = sorted(p for p in root.rglob("*") if p.is_dir())[-1]
    real = os.scandir

    def scandir(path="."):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)
    monkeypatch.setattr(os, "scandir", scandir)
    with caplog.at_level(logging.WARNING, logger="depthnas.datasets"):
        assert _total(f"nyuv2:{root}") == 4
    assert f"1 folder(s) cannot be listed and are not read: {locked} (Permission denied)" in caplog.text
    # a folder: data set's scene whose images/ side cannot be listed, its depth/ side can
    folder = tmp_path / "f"
    for side, name in (("images", "a.jpg"), ("depth", "a.png")):
        for scene in ("s1", "s2"):
            (folder / side / scene).mkdir(parents=True, exist_ok=True)
            if side == "images":
                _save_rgb(folder / side / scene / name, _rgb(0))
            else:
                _save_png(folder / side / scene / name, np.round(_depth_m(0) * 1000).astype(np.uint16))
    locked = folder / "images" / "s2"  # os.scandir above now refuses this one (os.walk's)
    real_iterdir = Path.iterdir  # and so does Path.iterdir (the scene's own listing)

    def iterdir(self):
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)
    monkeypatch.setattr(Path, "iterdir", iterdir)
    caplog.clear()
    from depthnas.datasets.folder import FolderReader
    with caplog.at_level(logging.WARNING, logger="depthnas.datasets"):
        refs, problems = FolderReader(folder).index()
    assert [r.id for r in refs] == ["images/s1/a.jpg"] and not problems
    assert f"cannot be listed and are not read: {locked} (Permission denied)" in caplog.text


# ---- loaders: each test below fails under a one-line mutation the suite let through
# (a truncation walk off by a marker, a scale's denominator, a dropped check)
def test_a_jpeg_with_restart_markers_cut_after_rst7_is_truncated(tmp_path):
    """Restart markers RST0..RST7 sit inside the scan data; RST7 (0xFFD7) taken for a
    segment marker ended the walk early and called a cut file whole."""
    from depthnas.datasets.io import read_rgb
    ok, buf = cv2.imencode(".jpg", _rgb(0), [cv2.IMWRITE_JPEG_RST_INTERVAL, 1])
    data = buf.tobytes()
    rst7 = data.index(b"\xff\xd7")
    path = tmp_path / "rst.jpg"
    path.write_bytes(data)
    assert read_rgb(path).shape == (H, W, 3)  # whole: fine
    path.write_bytes(data[: rst7 + 40])  # cut in the scan data after RST7
    with pytest.raises(DatasetError, match=r"truncated JPEG .*rst.jpg"):
        read_rgb(path)


def test_a_jpeg_cut_inside_a_segment_length_is_truncated(tmp_path):
    from depthnas.datasets.io import read_rgb
    path = tmp_path / "cut.jpg"
    cv2.imwrite(str(path), _rgb(0))
    path.write_bytes(path.read_bytes()[:5])  # SOI, APP0 marker, half its length field
    with pytest.raises(DatasetError, match=r"truncated JPEG .*cut.jpg"):
        read_rgb(path)


def test_junk_after_a_jpeg_start_marker_is_said_to_be_cut_short_or_corrupt(tmp_path):
    """Its first segment announces more bytes than the file has: the walk cannot tell a
    cut file from junk, so the message (which said only "ends inside the image data")
    names both."""
    from depthnas.datasets.io import read_rgb
    path = tmp_path / "junk.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    with pytest.raises(DatasetError, match=r"truncated JPEG .*junk.jpg: .*\(cut short, or corrupt\)"):
        read_rgb(path)


def test_depth_files_whose_headers_announce_too_much_are_named(tmp_path):
    """A PNG of 70000x70000 pixels (over OpenCV's limit) ended the run with cv2.error,
    and an npy header announcing 200000x200000 floats with MemoryError: neither named
    the file, and --skip-bad, which skips DatasetError, stopped on them."""
    import struct
    import zlib

    from depthnas.datasets.io import read_npy, read_png

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    png = tmp_path / "huge.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 70000, 70000, 16, 0, 0, 0, 0))
                    + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    with pytest.raises(DatasetError, match=r"cannot read depth map .*huge.png"):
        read_png(png)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (200000, 200000)})
    npy = tmp_path / "huge.npy"
    npy.write_bytes(header.getvalue() + b"\0" * 64)
    with pytest.raises(DatasetError, match=r"^cannot read array \S*huge.npy: its header announces shape "
                                           r"\(200000, 200000\) float32 \(160000000000 bytes of data\), "
                                           r"the file holds 64"):
        read_npy(npy)
    def version_3(shape: str) -> bytes:  # 2.0's layout, a UTF-8 header
        text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}"
        text += " " * (-(len(text) + 13) % 64) + "\n"
        return b"\x93NUMPY\x03\x00" + len(text).to_bytes(4, "little") + text.encode() + b"\0" * 64
    npy.write_bytes(version_3("(200000, 200000)"))
    with pytest.raises(DatasetError, match=r"huge.npy: its header announces shape \(200000, 200000\)"):
        read_npy(npy)
    npy.write_bytes(version_3("('a',)"))  # np.load's to name
    with pytest.raises(DatasetError, match=r"cannot read array \S*huge.npy: "):
        read_npy(npy)
    np.save(npy, np.ones((3, 4), np.float32))  # whole: read
    assert read_npy(npy).shape == (3, 4)


def test_a_png_cut_inside_its_iend_chunk_is_truncated(tmp_path):
    from depthnas.datasets.io import read_png
    path = tmp_path / "cut.png"
    _save_png(path, np.round(_depth_m(0) * 1000).astype(np.uint16))
    path.write_bytes(path.read_bytes()[:-2])  # IEND's CRC half gone
    with pytest.raises(DatasetError, match=r"truncated PNG depth map .*cut.png"):
        read_png(path)


# ----------------------------------------------------------------- io: values
def test_8_bit_content_in_a_16_bit_file_keeps_full_white():
    from depthnas.datasets.io import to_uint8
    np.testing.assert_array_equal(to_uint8(np.array([[0, 128, 255]], np.uint16)), [[0, 128, 255]])
    np.testing.assert_array_equal(to_uint8(np.array([[0, 4095]], np.uint16)), [[0, 255]])


def test_a_grey_depth_png_with_an_alpha_channel_is_read(tmp_path):
    """Grey copies in three channels are read; an alpha channel (here opaque) is not depth."""
    from depthnas.datasets.io import read_png
    mm = np.round(_depth_m(0) * 1000).astype(np.uint16)
    path = tmp_path / "rgba.png"
    _save_png(path, np.dstack([mm, mm, mm, np.full_like(mm, 65535)]))
    np.testing.assert_array_equal(read_png(path), mm)


def test_a_transparent_pixel_of_a_depth_png_is_unknown_not_depth(tmp_path):
    """Renderers mark background transparent; its stored value (here 65.535 m) was
    trained on as a wall. Unknown is 0 in depth PNGs and 255 in ReDWeb's RDs."""
    from depthnas.datasets.io import read_png
    mm = np.round(_depth_m(0) * 1000).astype(np.uint16)
    alpha = np.full_like(mm, 65535)
    alpha[:10] = 0
    grey = mm.copy()
    grey[:10] = 65535
    root = make_folder(tmp_path / "f", n=2)
    _save_png(root / "depth" / "s000.png", np.dstack([grey, grey, grey, alpha]))
    reader = FolderReader(root)
    _, disparity, valid = reader.load(reader.index()[0][0])
    assert not valid[:10].any() and valid[10:].all()
    np.testing.assert_allclose(disparity[10:], 1000.0 / mm[10:], rtol=1e-5)
    rd = np.full((H, W), 7, np.uint8)
    a8 = np.full_like(rd, 255)
    a8[:, :5] = 0
    _save_png(tmp_path / "rd.png", np.dstack([rd, rd, rd, a8]))
    assert (read_png(tmp_path / "rd.png", unknown=255)[:, :5] == 255).all()
    redweb = make_redweb(tmp_path / "redweb", n=2)
    rd = np.tile(np.linspace(0, 254, W).astype(np.uint8), (H, 1))
    _save_png(redweb / "RDs" / "r0.png", np.dstack([rd, rd, rd, a8]))
    reader = ReDWebReader(redweb)
    valid = reader.load(reader.index()[0][0])[2]
    assert not valid[:, :5].any() and valid[:, 5:].all()


def test_image_and_depth_names_spelled_apart_by_unicode_normalisation_pair(tmp_path):
    """macOS writes 'café' decomposed, Linux composed: the two names look the same, and
    'has no depth map' / 'has no image' named both."""
    import unicodedata
    root = make_folder(tmp_path / "f", n=4)
    os.rename(root / "images" / "s000.jpg", root / "images" / (unicodedata.normalize("NFD", "café") + ".jpg"))
    os.rename(root / "depth" / "s000.png", root / "depth" / (unicodedata.normalize("NFC", "café") + ".png"))
    refs, problems = FolderReader(root).index()
    assert not problems and len(refs) == 4


def test_scene_folders_spelled_apart_by_unicode_normalisation_are_one_scene(tmp_path):
    """Files were paired as Unicode composes their names, scene folders were not:
    images/scène0/ from a Mac and depth/scène0/ from Linux were each 'on one side only',
    and the data set had no sample."""
    import unicodedata
    flat = make_folder(tmp_path / "flat", n=4)
    root = tmp_path / "f"
    for side, form in (("images", "NFD"), ("depth", "NFC")):
        scene = root / side / unicodedata.normalize(form, "scène0")
        scene.mkdir(parents=True)
        for f in (flat / side).iterdir():
            os.rename(f, scene / f.name)
    reader = FolderReader(root)
    refs, problems = reader.index()
    assert not problems and not reader.not_read and len(refs) == 4
    assert len({r.group for r in refs}) == 1  # one scene, kept in one split
    assert all(Path(r.image).is_file() and Path(r.depth).is_file() for r in refs)
    # both spellings on one side (Linux keeps them apart): which is the scene? Said, not
    # one of them dropped without a word
    other = root / "images" / unicodedata.normalize("NFC", "scène0")
    other.mkdir()
    os.rename(next((root / "images" / unicodedata.normalize("NFD", "scène0")).iterdir()),
              other / "s000.jpg")
    refs, problems = FolderReader(root).index()
    assert not refs and len(problems) == 1
    assert unicodedata.normalize("NFC", problems[0]).startswith(
        "ambiguous scene folders images/scène0/ and images/scène0/: their names differ only "
        "in Unicode form")


def test_a_float_tiff_image_is_read_as_predict_reads_one(tmp_path):
    """OpenCV decodes a float TIFF, but not as 8 bits: it was called corrupt. Floats in
    [0, 1] are colour as they are, whole numbers in [0, 255] 8-bit levels."""
    root = make_folder(tmp_path / "f", n=2)
    (root / "images" / "s000.jpg").unlink()
    rgb = _rgb(0)
    path = root / "images" / "s000.tiff"
    reader = FolderReader(root)
    for stored in (rgb.astype(np.float32) / 255, rgb.astype(np.float32)):
        assert cv2.imwrite(str(path), cv2.cvtColor(stored, cv2.COLOR_RGB2BGR))
        np.testing.assert_array_equal(reader.load(reader.index()[0][0])[0], rgb)
    assert cv2.imwrite(str(path), np.full((H, W, 3), np.nan, np.float32))
    with pytest.raises(DatasetError, match=r"s000.tiff: no finite pixel value"):
        reader.load(reader.index()[0][0])


def test_a_one_channel_float_tiff_image_is_read_as_grey(tmp_path):
    """OpenCV's colour decode refuses one float channel, and such an image was called
    "corrupt or unsupported format" (RGB float TIFFs and 16-bit grey ones read)."""
    from PIL import Image
    root = make_folder(tmp_path / "f", n=2)
    (root / "images" / "s000.jpg").unlink()
    grey = np.linspace(0, 1, H * W, dtype=np.float32).reshape(H, W)
    reader = FolderReader(root)
    for name, write in (("pil.tif", lambda p: Image.fromarray(grey, "F").save(p)),
                        ("cv.tiff", lambda p: cv2.imwrite(str(p), grey))):
        for old in (root / "images").glob("s000.*"):
            old.unlink()
        write(root / "images" / f"s000.{name.split('.')[1]}")
        rgb = reader.load(reader.index()[0][0])[0]
        assert rgb.shape == (H, W, 3), name
        np.testing.assert_array_equal(rgb[..., 0], np.round(grey * 255).astype(np.uint8))
        assert (rgb == rgb[..., :1]).all(), name


def test_a_nyu_mat_written_in_c_order_is_refused_not_read_turned(tmp_path):
    """[N,3,H,W] passes the shape check, and every frame came out transposed: portrait
    scenes, image and depth turned together."""
    path = tmp_path / "c_order.mat"
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=np.stack([_rgb(i) for i in range(3)]).transpose(0, 3, 1, 2))
        f.create_dataset("depths", data=np.stack([_depth_m(i) for i in range(3)]).astype(np.float64))
    _expect_build_error(f"nyuv2:{path}", rf"c_order.mat: frames would come out portrait, {H}x{W} .*C order")


def test_an_empty_image_and_an_empty_depth_png_are_both_called_empty(tmp_path):
    root = make_folder(tmp_path / "f", n=4)
    (root / "depth" / "s000.png").write_bytes(b"")
    _expect_load_error(f"folder:{root}", r"depth map .*s000.png: the file is empty")
    (root / "depth" / "s000.png").unlink()
    make_folder(root, n=1)
    (root / "images" / "s000.jpg").write_bytes(b"")
    _expect_load_error(f"folder:{root}", r"image .*s000.jpg: the file is empty")


def test_a_pairing_error_points_to_the_command_that_finds_every_bad_file(tmp_path):
    """evaluate named the unpaired file; a corrupt one, only read when a batch needs it,
    stopped the next try: fix one, meet the next."""
    root = make_folder(tmp_path / "my data", n=4)
    (root / "depth" / "s001.png").unlink()
    for kind, flag in (("depth", ""), ("disparity", " --depth-kind disparity")):
        with pytest.raises(DatasetError) as err:
            build_splits(f"folder:{root}", SIZE, seed=0, depth_kind=kind)
        assert f"found without reading the files; `depthnas data --data 'folder:{root}'{flag}` reads every file too" \
            in str(err.value)


def test_a_colour_pfm_with_nan_in_every_channel_is_grey_depth(tmp_path):
    """NaN != NaN: identical NaN channels must not read as 'channels that differ'."""
    from depthnas.datasets.io import read_depth_file
    d = _depth_m(0)
    d[2, 3] = np.nan
    path = tmp_path / "grey3.pfm"
    write_pfm(path, np.dstack([d, d, d]))
    out = read_depth_file(path)
    assert out.shape == (H, W) and np.isnan(out[2, 3]) and np.isfinite(np.delete(out.ravel(), 2 * W + 3)).all()


# ----------------------------------------------------------------- base / folder
def test_raw_disparity_is_zero_where_invalid(tmp_path):
    root = make_folder(tmp_path / "f", n=1, fmt="npy")
    disp = 1.0 / _depth_m(0)
    disp[0, :8] = -1.0
    disp[1, :8] = np.inf
    np.save(root / "depth" / "s000.npy", disp)
    reader = FolderReader(root, "disparity")
    _, values, valid = reader.load(reader.index()[0][0])
    assert not valid[:2, :8].any() and (values[~valid] == 0).all()


def test_dataset_items_are_augmented_per_sample_index(tmp_path):
    """PairedDepthDataset passes the index: an item's augmentation depends on (seed,
    sample), not on what was drawn before it."""
    root = make_folder(tmp_path / "f", n=8)
    train = build_splits(f"folder:{root}", SIZE, seed=0).train
    torch.manual_seed(5)
    first = train[0]["image"]
    torch.manual_seed(5)
    for i in range(1, len(train)):
        train[i]
    assert torch.equal(train[0]["image"], first)


def test_upper_case_suffixes_are_read_in_a_folder_data_set(tmp_path):
    root = make_folder(tmp_path / "f", n=4)
    (root / "images" / "s001.jpg").rename(root / "images" / "s001.JPG")
    (root / "depth" / "s001.png").rename(root / "depth" / "s001.PNG")
    refs, problems = FolderReader(root).index()
    assert not problems and len(refs) == 4


def test_an_ambiguous_sample_is_left_out_by_skip_bad(tmp_path, caplog):
    root = make_folder(tmp_path / "f", n=8)
    np.save(root / "depth" / "s000.npy", _depth_m(0))
    with caplog.at_level(logging.WARNING, logger="depthnas.datasets"):
        m = build_splits(f"folder:{root}", SIZE, seed=0, skip_bad=True).manifest()
    ids = m["train"] + m["reg"] + m["val"]
    assert len(ids) == 7 and not any("s000" in i for i in ids)
    assert any("ambiguous depth files for 's000'" in s for s in m["skipped"])


def test_an_8_bit_png_read_as_disparity_is_not_called_millimetres(tmp_path, caplog):
    root = make_folder(tmp_path / "f", n=1)
    _save_png(root / "depth" / "s000.png", np.tile(np.linspace(1, 255, W).astype(np.uint8), (H, 1)))
    reader = FolderReader(root, "disparity")
    with caplog.at_level("WARNING"):
        reader.load(reader.index()[0][0])
    assert "8-bit" not in caplog.text


# ----------------------------------------------------------------- nyuv2
def test_an_upper_case_mat_file_is_read_as_the_labeled_set(tmp_path):
    path = tmp_path / "NYU_DEPTH_V2_LABELED.MAT"
    make_nyu_mat(path)
    m = build_splits(f"nyuv2:{path}", SIZE, seed=0).manifest()
    assert sum(len(m[k]) for k in ("train", "reg", "val")) == 6


def test_the_mat_handle_is_reopened_in_another_process(tmp_path, monkeypatch):
    import os
    path = tmp_path / "nyu_depth_v2_labeled.mat"
    make_nyu_mat(path)
    reader = NYUv2MatReader(path)
    first = reader._file()
    assert reader._file() is first  # once per process
    pid = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: pid + 1)  # as in a forked DataLoader worker
    assert reader._file() is not first


def test_a_scenes_list_of_the_wrong_length_falls_back_to_per_frame_groups(tmp_path):
    path = tmp_path / "nyu_depth_v2_labeled.mat"
    make_nyu_mat(path, n=6, scenes=["kitchen_0001a"] * 5)  # one name short
    refs, problems = NYUv2MatReader(path).index()
    assert not problems and [r.group for r in refs] == [f"{path.name}#{i:05d}" for i in range(6)]


# ----------------------------------------------------------------- diode
def test_a_diode_mask_of_another_size_is_named(tmp_path):
    root = make_diode(tmp_path / "diode", scenes=1, scans=1)
    mask = next(root.rglob("*_depth_mask.npy"))
    np.save(mask, np.ones((H // 2, W // 2), np.float32))
    reader = DIODEReader(root)
    with pytest.raises(DatasetError, match=rf"mask .*{mask.name} is \({H // 2}, {W // 2}\), its depth map"):
        reader.load(reader.index()[0][0])


def test_a_diode_depth_map_without_an_image_is_named(tmp_path):
    root = make_diode(tmp_path / "diode")
    scan = next(root.rglob("scan_*"))
    np.save(scan / "orphan_depth.npy", _depth_m(0)[:, :, None])
    with pytest.raises(DatasetError, match=r"depth map .*orphan_depth.npy has no image"):
        build_splits(f"diode:{root}", SIZE, seed=0)


def test_load_splits_leaves_out_bad_samples_when_the_config_says_so(tmp_path):
    from depthnas.config import Config
    from depthnas.data import load_splits
    root = make_folder(tmp_path / "f", n=8)
    np.save(root / "depth" / "s000.npy", _depth_m(0))  # ambiguous: s000.png and s000.npy
    cfg = Config()
    cfg.data.spec, cfg.data.image_size, cfg.data.skip_bad = f"folder:{root}", SIZE, True
    m = load_splits(cfg).manifest()
    assert len(m["train"] + m["reg"] + m["val"]) == 7


def test_load_splits_passes_the_split_fractions_to_synthetic_data():
    from depthnas.config import Config
    from depthnas.data import load_splits
    cfg = Config()
    cfg.data.image_size, cfg.data.synthetic_samples = (32, 32), 40
    cfg.data.val_fraction, cfg.data.reg_fraction = 0.1, 0.3
    s = load_splits(cfg)
    assert (len(s.train), len(s.reg), len(s.val)) == (24, 12, 4)


def test_a_fraction_of_one_is_named_not_called_too_few_samples():  # SP1
    for kw in ({"val_fraction": 1.0, "reg_fraction": 0.0}, {"val_fraction": 0.0, "reg_fraction": 1.0}):
        with pytest.raises(ValueError, match=r"_fraction must be in \[0, 1\), got 1.0"):
            split_counts(100, **kw)


def test_a_path_after_synthetic_is_refused_not_ignored():  # SP5
    with pytest.raises(ValueError, match="'synthetic' is embedded and takes no path"):
        build_splits("synthetic:/data/nyu", (32, 32))


def test_a_negative_seed_is_refused_by_name():  # SP11
    with pytest.raises(ValueError, match="seed must be >= 0, got -1"):
        build_splits("synthetic", (32, 32), seed=-1)


def test_a_folder_s_depth_kind_must_be_depth_or_disparity(tmp_path):
    """A typo in depth_kind was taken as depth (metres) for a folder: by build_splits,
    and by `data check`'s reader, which opens the folder without build_splits."""
    from depthnas.datasets.check import check_data
    root = make_folder(tmp_path / "f", n=4)
    says = r"depth_kind must be one of \('depth', 'disparity'\), got 'metres'"
    with pytest.raises(ValueError, match=says):
        build_splits(f"folder:{root}", SIZE, depth_kind="metres")
    with pytest.raises(ValueError, match=says):
        check_data(f"folder:{root}", depth_kind="metres")


@pytest.mark.parametrize("size", [(100, 96), 48, (32, 64, 3)])
def test_a_network_size_that_is_no_multiple_of_32_is_refused_for_any_data(tmp_path, size):
    """Checked by build_splits for every kind, and by SyntheticDepth when built on its own."""
    root = make_folder(tmp_path / "f", n=4)
    with pytest.raises(ValueError, match="multiples of 32"):
        build_splits(f"folder:{root}", size)
    with pytest.raises(ValueError, match="multiples of 32"):
        SyntheticDepth(4, size)


def test_the_data_check_a_bad_sample_points_to_runs_as_pasted_from_a_folder_with_spaces(tmp_path):
    """The hint's command was unquoted: pasted, `depthnas data --data folder:/x/my data`
    checked /x/my, with a stray argument."""
    root = make_folder(tmp_path / "my data", n=8)
    jpg = root / "images" / "s003.jpg"
    jpg.write_bytes(jpg.read_bytes()[:40])  # cut short
    splits = build_splits(f"folder:{root}", SIZE, seed=0)
    with pytest.raises(DatasetError, match=re.escape(f"`depthnas data --data 'folder:{root}'` lists "
                                                     "every bad sample at once")):
        load_all(splits)


def test_depthnas_data_says_when_the_training_split_holds_no_whole_batch(tmp_path, capsys):
    """It exited 0 on 8 samples, whose training split (6) a run at batch size 8 refuses."""
    from depthnas.cli import main
    root = make_folder(tmp_path / "f", n=8)
    assert main(["data", "--data", f"folder:{root}", "--no-progress"]) == 1
    assert ("too few for a run: the training split holds 6 sample(s), fewer than the batch "
            "size 8 (search or train with --batch-size 6 or lower, or add data)") in capsys.readouterr().out
    assert main(["data", "--data", f"folder:{root}", "--no-progress", "--batch-size", "6"]) == 0
    assert "too few" not in capsys.readouterr().out


def test_depthnas_data_splits_at_the_run_s_seed(tmp_path):
    """Scenes of unequal sizes fall into the splits otherwise under another seed: the
    check split at seed 0 whatever seed the run would use."""
    from depthnas.datasets.check import check_data
    root = tmp_path / "f"
    sizes = [10] + [3] * 11
    for k, n in enumerate(sizes):
        for i in range(n):
            _save_rgb(root / "images" / f"walk_{k}" / f"{i:03d}.jpg", _rgb(k * 10 + i))
            (root / "depth" / f"walk_{k}").mkdir(parents=True, exist_ok=True)
            np.save(root / "depth" / f"walk_{k}" / f"{i:03d}.npy", _depth_m(k * 10 + i))
    trains = {seed: check_data(f"folder:{root}", seed=seed).train_samples for seed in range(8)}
    assert len(set(trains.values())) > 1, trains  # the seed moves the big scene
    splits = {seed: build_splits(f"folder:{root}", SIZE, seed=seed) for seed in (0, 5)}
    assert all(trains[s] == len(splits[s].train) for s in splits)


def test_a_dataset_of_one_s_own_without_ids_is_named_when_the_splits_are_made():
    """Splits took any Dataset, and training failed at its splits.json with
    "AttributeError: 'Mine' object has no attribute 'ids'", from deep inside."""
    from torch.utils.data import Dataset

    from depthnas.datasets import Splits

    class Mine(Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, i):
            return {}
    with pytest.raises(TypeError, match=r"Splits.train: a Mine has no ids\(\) \(one string per sample"):
        Splits(train=Mine(), reg=Mine(), val=Mine(), seed=0)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.uint32])
def test_a_signed_or_32_bit_integer_tiff_image_is_read_as_predict_reads_one(tmp_path, dtype):
    """OpenCV decodes these TIFFs but its colour conversion refuses them: every command
    on the folder died in an OpenCV traceback naming no file, --skip-bad or not."""
    import tifffile
    from depthnas.datasets.io import read_rgb
    from depthnas.export.images import read_photo
    root = make_folder(tmp_path / "f", n=2)
    (root / "images" / "s000.jpg").unlink()
    grey = np.linspace(0, 120, H * W).reshape(H, W).astype(dtype)
    path = root / "images" / "s000.tif"
    tifffile.imwrite(path, grey)
    reader = FolderReader(root)
    rgb = reader.load(reader.index()[0][0])[0]
    assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8
    # values within 8 bits as they are: the grey ramp, in all three channels (int8's
    # levels end at 127, which is white)
    scale = 255 / 127 if dtype == np.int8 else 1
    np.testing.assert_array_equal(rgb[..., 1], np.round(grey * scale).astype(np.uint8))
    np.testing.assert_array_equal(rgb, read_photo(path))
    np.testing.assert_array_equal(rgb, read_rgb(path))
    # negative values, values over 2**31 (PIL wrapped both around) and colour (PIL could
    # not open it) read alike for training and predict; a signed full scale is white
    info = np.iinfo(dtype)
    ends = np.array([[max(info.min, -100), 0, info.max // 2 + 1, info.max]], dtype)
    colour = np.repeat(np.repeat(ends, 4, axis=0)[:, :, None], 3, axis=2)
    for name, pixels in (("ends.tif", ends), ("colour.tif", colour)):
        tifffile.imwrite(tmp_path / name, pixels, photometric="rgb" if pixels.ndim == 3 else None)
        photo = read_photo(tmp_path / name)
        np.testing.assert_array_equal(photo, read_rgb(tmp_path / name))
        assert photo[0, :, 0].tolist() in ([0, 0, 128, 255], [0, 0, 129, 255])  # 64/127 rounds up


def test_a_signed_tiff_of_too_many_pixels_is_refused_from_its_header(tmp_path, monkeypatch):
    """Signed TIFFs went to OpenCV first, which decoded a pixel bomb whole before PIL's
    check of the header refused it."""
    import tifffile
    from PIL import Image
    from depthnas.export.images import ImageReadError, read_photo
    tifffile.imwrite(tmp_path / "big.tif", np.zeros((20, 20), np.int16))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 400 pixels: over twice the limit
    with pytest.raises(ImageReadError, match="too many pixels to read"):
        read_photo(tmp_path / "big.tif")


def test_an_image_opencv_decodes_but_cannot_convert_is_named(tmp_path, monkeypatch):
    import depthnas.datasets.io as io
    path = tmp_path / "odd.png"
    cv2.imwrite(str(path), np.zeros((4, 4, 3), np.uint8))
    monkeypatch.setattr(io, "decode_bgr8", lambda data, p: np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(DatasetError, match=r"cannot read image .*odd.png: "):
        io.read_rgb(path)


@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_data_names_a_seed_out_of_range_before_reading_any_file(tmp_path, monkeypatch, capsys, seed):
    """numpy's "expected non-negative integer" came after every file was read (minutes
    on a large set) and named no flag."""
    import depthnas.datasets.check
    from depthnas.cli import main
    root = make_folder(tmp_path / "f", n=4)
    monkeypatch.setattr(depthnas.datasets.check, "check_data",
                        lambda *a, **k: pytest.fail("the data was read before --seed was checked"))
    assert main(["data", "--data", f"folder:{root}", "--seed", seed, "--no-progress"]) == 2
    assert capsys.readouterr().err == f"error: --seed must be 0 to 2**32 - 1, got {seed}\n"
