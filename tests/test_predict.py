"""`depthnas predict` and the two inference backends behind it."""
from __future__ import annotations

import os
import re
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from depthnas.cli import main
from depthnas.export.images import ImageReadError, colorize, read_photo, to_uint16
from depthnas.export.inference import OnnxEstimator, TorchEstimator, load_estimator

pytest_plugins = ["fixtures_models"]

SIZES = {"coffee": (134, 200), "astro": (100, 77), "ramp16": (50, 90)}  # (H, W)


def test_predict_folder_skips_the_corrupt_file(onnx_file: Path, photos: Path,
                                               tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    rc = main(["predict", "--model", str(onnx_file), "--input", str(photos),
               "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0
    assert "3 image(s)" in captured.out and "1 skipped" in captured.out
    assert "corrupt.jpg" in captured.err          # reported, by name
    assert not list(out.glob("corrupt*")) and not list(out.glob("README*"))
    for stem, (h, w) in SIZES.items():
        color = cv2.imread(str(out / f"{stem}-depth.png"), cv2.IMREAD_UNCHANGED)
        png16 = cv2.imread(str(out / f"{stem}-depth16.png"), cv2.IMREAD_UNCHANGED)
        raw = np.load(out / f"{stem}-depth.npy")
        assert color.shape == (h, w, 3) and color.dtype == np.uint8
        assert png16.shape == (h, w) and png16.dtype == np.uint16
        assert raw.shape == (h, w) and raw.dtype == np.float32
        # Full range, min-max scaled: the 16-bit file is a monotone map of the raw output.
        assert png16.min() == 0 and png16.max() == 65535
        assert png16.flat[np.argmax(raw)] == 65535 and png16.flat[np.argmin(raw)] == 0


def test_maps_of_one_value_everywhere_are_said_not_passed_as_depth(photos: Path, tmp_path: Path,
                                                                    capsys) -> None:
    """A quick-preset model gave 0 everywhere for every real photo: black PNGs, and
    predict said only '3 image(s)'."""
    from fixtures_models import make_model_file
    dead = make_model_file(tmp_path / "dead.safetensors", dead_head=True)
    assert main(["predict", "--model", str(dead), "--input", str(photos), "--out", str(tmp_path / "o")]) == 0
    captured = capsys.readouterr()
    assert "3 image(s)" in captured.out
    assert re.search(r"warning: 3 of 3 depth map\(s\) hold one value everywhere \(\S+\.(jpg|png), "
                     r"\S+, \S+\): the model saw no depth", captured.err), captured.err
    assert main(["predict", "--model", str(make_model_file(tmp_path / "live.safetensors")),
                 "--input", str(photos), "--out", str(tmp_path / "o2")]) == 0
    assert "one value" not in capsys.readouterr().err


def test_a_model_whose_architecture_ignores_the_image_is_said_by_export_predict_and_the_demo(
        photos: Path, tmp_path: Path, capsys) -> None:
    """train warned of it; export, predict and the demo did not, and its maps, the same
    for every photo but not one value, looked like depth once min-max scaled."""
    from fixtures_models import make_model_file
    from depthnas.app.demo import model_card
    from depthnas.export.inference import load_estimator
    dead = make_model_file(tmp_path / "dead.safetensors", arch="v1-sync:c3,skip,none,none,none")
    said = "v1-sync:c3,skip,none,none,none gives one output whatever the image"
    assert main(["predict", "--model", str(dead), "--input", str(photos), "--out", str(tmp_path / "o"),
                 "--no-progress"]) == 0
    assert said in capsys.readouterr().err
    maps = [np.load(f) for f in sorted((tmp_path / "o").glob("*-depth.npy"))]
    assert len(maps) == 3 and maps[0].std() > 0  # the case: not flat, yet of no photo
    assert main(["export", str(dead), "--out", str(tmp_path / "dead.onnx"), "--exporter", "legacy"]) == 0
    assert said in capsys.readouterr().err
    for model in (dead, tmp_path / "dead.onnx"):  # the ONNX file records it
        assert said in model_card(load_estimator(model), 1.0, 1)
    live = make_model_file(tmp_path / "live.safetensors")
    assert main(["predict", "--model", str(live), "--input", str(photos), "--out", str(tmp_path / "o2"),
                 "--no-progress"]) == 0
    assert "whatever the image" not in capsys.readouterr().err
    assert "Warning" not in model_card(load_estimator(live), 1.0, 1)


def test_a_one_pixel_photo_is_not_blamed_on_the_model(onnx_file: Path, tmp_path: Path, capsys) -> None:
    """Its map was said to "hold one value everywhere: the model saw no depth", with
    advice to train longer: one pixel has one value by nature."""
    from PIL import Image

    from depthnas.export.images import one_value
    Image.new("RGB", (1, 1), (120, 80, 40)).save(tmp_path / "dot.png")
    assert main(["predict", "--model", str(onnx_file), "--input", str(tmp_path / "dot.png"),
                 "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    assert "one value" not in capsys.readouterr().err
    assert one_value(np.zeros((2, 1))) and one_value(np.full((1, 1), np.nan))


def test_all_unreadable_is_an_error(onnx_file: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    assert main(["predict", "--model", str(onnx_file), "--input", str(bad),
                 "--out", str(tmp_path / "out" / "deeper"), "--no-progress"]) == 1
    assert "bad.png" in capsys.readouterr().err  # the file at fault is named
    assert not (tmp_path / "out").exists()  # nor empty folders made for nothing


def test_a_folder_above_the_images_names_the_subfolder_that_holds_them(
        onnx_file: Path, photos: Path, tmp_path: Path, capsys) -> None:
    """--input at a data set's root (images in images/) said only "no images"."""
    import shutil
    root = tmp_path / "mine"
    shutil.copytree(photos, root / "images")
    shutil.copytree(photos, root / "depth")  # depth maps are PNGs too: not named
    assert main(["predict", "--model", str(onnx_file), "--input", str(root),
                 "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert (f"; its subfolder {root / 'images'} holds some (predict reads one folder, not its "
            "subfolders)") in capsys.readouterr().err


def test_images_deeper_down_are_said_to_be_out_of_reach(onnx_file: Path, photos: Path,
                                                       tmp_path: Path, capsys) -> None:
    """Images two folders down got a bare "no images": no subfolder of --input holds
    one itself, so none is named, but the user learns where predict looks."""
    import shutil
    root = tmp_path / "shoot"
    shutil.copytree(photos, root / "day1" / "raw")
    assert main(["predict", "--model", str(onnx_file), "--input", str(root),
                 "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert re.search(r"shoot: no images \(.*\) \(predict reads one folder, not its subfolders\)",
                     capsys.readouterr().err)


def test_a_subfolder_of_images_beside_images_is_named_as_not_read(
        onnx_file: Path, photos: Path, tmp_path: Path, capsys) -> None:
    """It was passed over without a word. The --out folder inside the input, where the
    predictions go, is not named: its PNGs are predict's own."""
    import shutil
    root = tmp_path / "mixed"
    shutil.copytree(photos, root)
    shutil.copytree(photos, root / "more")
    readable = ["astro", "coffee", "ramp16"]  # the fixture's other two files are not photos
    assert main(["predict", "--model", str(onnx_file), "--input", str(root),
                 "--out", str(root / "depth"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert (f"note: not read: the images in {root / 'more'} (predict reads one folder, not its "
            "subfolders)") in err
    assert sorted(p.name for p in (root / "depth").glob("*-depth.npy")) == \
        [f"{name}-depth.npy" for name in readable]
    # again, into another folder: the earlier predictions' folder is not named either
    assert main(["predict", "--model", str(onnx_file), "--input", str(root),
                 "--out", str(tmp_path / "elsewhere"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert str(root / "more") in err and str(root / "depth") not in err


def test_an_out_folder_that_cannot_be_made_is_said_before_any_image_is_predicted(
        onnx_file: Path, photos: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """As root, in /proc, the write check passes and mkdir fails: the error named the
    first output file, after that image's inference."""
    out = tmp_path / "nowhere" / "depth"
    real_mkdir = Path.mkdir

    def mkdir(self: Path, *args, **kwargs) -> None:
        if self == out:
            raise FileNotFoundError(2, "No such file or directory", str(self))
        real_mkdir(self, *args, **kwargs)
    monkeypatch.setattr(Path, "mkdir", mkdir)
    monkeypatch.setattr(OnnxEstimator, "predict", lambda *a: pytest.fail("predicted before the check"))
    assert main(["predict", "--model", str(onnx_file), "--input", str(photos),
                 "--out", str(out), "--no-progress"]) == 2
    assert f"error: --out {out}: the folder cannot be made (No such file or directory)" in \
        capsys.readouterr().err


def test_backends_agree(onnx_file: Path, model_run: Path, photos: Path) -> None:
    onnx_est, torch_est = load_estimator(onnx_file), load_estimator(model_run)
    assert isinstance(onnx_est, OnnxEstimator) and isinstance(torch_est, TorchEstimator)
    assert onnx_est.info.arch == torch_est.info.arch
    assert onnx_est.info.parameters == torch_est.info.parameters
    rgb = read_photo(photos / "coffee.jpg")
    a, b = onnx_est.predict(rgb), torch_est.predict(rgb)
    assert a.shape == b.shape == rgb.shape[:2]
    assert np.abs(a - b).max() <= 1e-4 * np.abs(b).max()


def test_net_size_runs_the_network_larger_with_either_backend(onnx_file: Path, model_run: Path,
                                                              photos: Path, tmp_path: Path,
                                                              capsys) -> None:
    """A model trained on small crops runs at any multiple of 32: --net-size lets a
    large photo get a finer map than the training size gives."""
    trained = max(load_estimator(onnx_file).info.image_size)
    seen: list[tuple[int, ...]] = []
    for model in (onnx_file, model_run):
        est = load_estimator(model, net_size=trained * 2)
        forward = est._forward
        est._forward = lambda x, f=forward: seen.append(tuple(x.shape[-2:])) or f(x)
        assert est.predict(read_photo(photos / "coffee.jpg")).shape == SIZES["coffee"]
    assert seen and all(max(s) == trained * 2 for s in seen)
    # the side it runs at, in what predict and the demo say of it (50 ran at 64)
    assert load_estimator(onnx_file, net_size=trained * 2 - 14).info.net_size == trained * 2
    photo = str(photos / "coffee.jpg")
    assert main(["predict", "--model", str(onnx_file), "--input", photo, "--out", str(tmp_path),
                 "--net-size", str(trained * 2)]) == 0
    assert np.load(tmp_path / "coffee-depth.npy").shape == SIZES["coffee"]
    assert main(["predict", "--model", str(onnx_file), "--input", photo, "--out", str(tmp_path),
                 "--net-size", "16"]) == 2
    assert "--net-size (net_size) must be >= 32" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_running_out_of_memory_is_said_with_what_to_change(backend, onnx_file, model_file, photos,
                                                           tmp_path, monkeypatch, capsys):
    """A --net-size too large for the machine ended in a traceback, in each library's own
    words (numpy, OpenCV, torch and onnxruntime each raise another type)."""
    import onnxruntime
    failure = {  # what each raised at --net-size 4096-8192 under a 5 GB limit
        "onnx": onnxruntime.capi.onnxruntime_pybind11_state.Fail(
            "[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running Conv "
            "node. Status Message: bfc_arena.cc:360 Failed to allocate memory for requested buffer"),
        "torch": RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: "
                              "can't allocate memory: you tried to allocate 322961408 bytes."),
    }[backend]
    estimator = OnnxEstimator if backend == "onnx" else TorchEstimator

    def run_out(self, x):
        raise failure
    monkeypatch.setattr(estimator, "_forward", run_out)
    model = onnx_file if backend == "onnx" else model_file
    assert main(["predict", "--model", str(model), "--input", str(photos / "coffee.jpg"),
                 "--out", str(tmp_path), "--net-size", "4096"]) == 2
    err = capsys.readouterr().err
    # widths first, for the network as for the photo (it said 2752x4096 of a 200x134 photo)
    assert "not enough memory to run the network at 4096x2752 px (net size 4096) for a 200x134 photo" in err
    assert "pass a smaller --net-size" in err and "Traceback" not in err
    monkeypatch.setattr(estimator, "_forward", lambda self, x: (_ for _ in ()).throw(
        RuntimeError("a shape mismatch")))  # any other failure stays what it is
    with pytest.raises(RuntimeError, match="a shape mismatch"):
        load_estimator(model).predict(read_photo(photos / "coffee.jpg"))


def test_predict_with_a_model_file_and_one_image(model_file: Path, photos: Path,
                                                 tmp_path: Path) -> None:
    rc = main(["predict", "--model", str(model_file), "--input", str(photos / "astro.png"),
               "--out", str(tmp_path)])
    assert rc == 0
    assert np.load(tmp_path / "astro-depth.npy").shape == SIZES["astro"]


def test_read_rgb_keeps_16_bit_grey_and_drops_alpha(photos: Path) -> None:
    ramp = read_photo(photos / "ramp16.png")
    assert ramp.shape == (50, 90, 3) and ramp.dtype == np.uint8
    assert ramp.min() == 0 and ramp.max() == 255        # scaled, not clipped at 255
    assert read_photo(photos / "astro.png").shape == (100, 77, 3)


def test_a_12_bit_image_in_a_16_bit_file_uses_the_8_bit_range(tmp_path: Path) -> None:
    path = tmp_path / "sensor12.png"
    Image.fromarray(np.linspace(0, 4095, 40 * 60).reshape(40, 60).astype(np.uint16)).save(path)
    rgb = read_photo(path)
    assert rgb.min() == 0 and rgb.max() == 255  # was 0..15: almost black


def test_a_float_image_is_scaled_over_its_finite_pixels_and_an_all_nan_one_named(tmp_path: Path) -> None:
    """inf made every pixel NaN (black); an all-NaN image leaked numpy's "All-NaN slice"
    warning and was predicted as a black picture."""
    ramp = np.linspace(-1, 3, 30 * 40, dtype=np.float32).reshape(30, 40)
    ramp[0, 0], ramp[0, 1] = np.inf, np.nan
    Image.fromarray(ramp).save(tmp_path / "f.tif")
    grey = read_photo(tmp_path / "f.tif")[..., 0]
    assert grey.max() == 255 and grey[0, 2] == 0 and 100 < grey.mean() < 155  # finite range
    # in [0, 1]: a linear image, kept as it is (as a float colour TIFF is), not stretched
    Image.fromarray(np.linspace(0.2, 0.6, 64, dtype=np.float32).reshape(8, 8)).save(tmp_path / "u.tif")
    unit = read_photo(tmp_path / "u.tif")[..., 0]
    assert unit.min() == round(0.2 * 255) and unit.max() == round(0.6 * 255)
    # whole numbers in [0, 255]: 8-bit levels saved as floats, kept as levels (min-max
    # stretched their contrast); radiance (not whole numbers) is still stretched, below
    Image.fromarray(np.round(np.linspace(40, 90, 64)).astype(np.float32).reshape(8, 8)).save(tmp_path / "l.tif")
    levels = read_photo(tmp_path / "l.tif")[..., 0]
    assert (levels.min(), levels.max()) == (40, 90)
    Image.fromarray(np.full((8, 8), np.nan, np.float32)).save(tmp_path / "nan.tif")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageReadError, match="nan.tif: not a readable image .no finite pixel"):
            read_photo(tmp_path / "nan.tif")


def test_an_empty_file_is_named_as_empty(tmp_path: Path) -> None:
    """A copy that failed leaves 0 bytes, which PIL calls "cannot identify image file"."""
    (tmp_path / "a.jpg").write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"a.jpg: the file is empty \(0 bytes\)"):
        read_photo(tmp_path / "a.jpg")


def test_a_tiff_whose_header_opencv_refuses_is_a_read_error_naming_it(tmp_path: Path) -> None:
    """OpenCV's cv2.error escaped read_photo, and `predict` on a folder stopped at the
    file with a traceback instead of skipping it."""
    import io
    import struct
    buf = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buf, "TIFF")
    data = bytearray(buf.getvalue())
    ifd = struct.unpack_from("<I", data, 4)[0]
    for i in range(struct.unpack_from("<H", data, ifd)[0]):
        if struct.unpack_from("<H", data, ifd + 2 + 12 * i)[0] == 256:  # ImageWidth
            struct.pack_into("<HHII", data, ifd + 2 + 12 * i, 256, 4, 1, 6422544)
    path = tmp_path / "damaged.tif"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match=r"damaged.tif.*not a readable image"):
        read_photo(path)


def test_a_float_colour_tiff_pil_cannot_open_is_read(tmp_path: Path) -> None:
    """OpenCV writes float32 colour TIFFs that PIL cannot identify: such a photo was
    skipped as "not a readable image"."""
    rgb = np.dstack([np.linspace(0, 1, 48 * 64, dtype=np.float32).reshape(48, 64)] * 3)
    rgb[..., 1] *= 0.5
    rgb[..., 2] = 0.25
    assert cv2.imwrite(str(tmp_path / "f.tif"), rgb[..., ::-1])  # OpenCV writes BGR
    out = read_photo(tmp_path / "f.tif")
    assert out.dtype == np.uint8 and out.shape == (48, 64, 3)
    assert np.abs(out.astype(int) - np.round(rgb * 255)).max() <= 1  # [0, 1] kept as it is
    assert cv2.imwrite(str(tmp_path / "hdr.tif"), rgb[..., ::-1] * 40.0)  # radiance, not [0, 1]
    hdr = read_photo(tmp_path / "hdr.tif")
    assert hdr.max() == 255 and hdr.min() == 0


def test_a_float_colour_tiff_shot_rotated_is_turned_upright(tmp_path: Path) -> None:
    """Like every other photo, its Orientation tag is applied (here by OpenCV, as PIL
    cannot open the file); the stored grid would give the prediction on its side."""
    import tifffile
    rgb = np.zeros((4, 6, 3), np.float32)
    rgb[0, 0] = (1.0, 0.0, 0.0)
    tifffile.imwrite(tmp_path / "r.tif", rgb, photometric="rgb", extratags=[(274, 3, 1, 6, True)])
    upright = read_photo(tmp_path / "r.tif")
    assert upright.shape == (6, 4, 3)  # orientation 6: turned 90 degrees clockwise
    assert tuple(upright[0, -1]) == (255, 0, 0)  # the stored top-left, now top-right


@pytest.mark.parametrize("mode", ["L", "I;16"])
@pytest.mark.parametrize("compression", [None, "tiff_lzw"])
def test_a_grey_tiff_shot_rotated_is_turned_upright(mode: str, compression: str | None,
                                                    tmp_path: Path) -> None:
    """An uncompressed grey TIFF (8 or 16 bits: IR and scientific cameras) came out on
    its side: PIL memory-maps it, and drops its Orientation tag without turning it."""
    grey = np.zeros((4, 6), np.uint16 if mode == "I;16" else np.uint8)
    grey[0, 0] = np.iinfo(grey.dtype).max
    image = Image.fromarray(grey)
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(tmp_path / "g.tif", exif=exif, compression=compression)
    upright = read_photo(tmp_path / "g.tif")
    assert upright.shape == (6, 4, 3)  # orientation 6: turned 90 degrees clockwise
    assert upright[0, -1, 0] == 255 and upright.sum() == 3 * 255  # the stored top-left, top-right


def test_a_32_bit_integer_grey_image_is_scaled_by_its_bit_length(tmp_path: Path) -> None:
    """PIL's mode I holds up to 32 bits: a 20-bit ramp must not saturate at 255."""
    path = tmp_path / "ramp20.tif"
    Image.fromarray(np.linspace(0, 2**20 - 1, 30 * 40).reshape(30, 40).astype(np.int32)).save(path)
    grey = read_photo(path)[..., 0]
    assert grey.min() == 0 and grey.max() == 255 and 100 < grey.mean() < 155


def _png_with_orientation(path: Path, bgr: np.ndarray, orientation: int) -> None:
    """A PNG as OpenCV writes it (any bit depth) plus an eXIf chunk holding the tag."""
    import struct
    import zlib
    ok, encoded = cv2.imencode(".png", bgr)
    assert ok
    exif = Image.Exif()
    exif[0x0112] = orientation
    body = exif.tobytes()[6:]  # PNG's eXIf holds the TIFF header on, without "Exif\0\0"
    chunk = struct.pack(">I", len(body)) + b"eXIf" + body
    chunk += struct.pack(">I", zlib.crc32(b"eXIf" + body) & 0xFFFFFFFF)
    data = encoded.tobytes()
    ihdr_end = 8 + 8 + 13 + 4  # signature, IHDR length/type, IHDR data, CRC
    path.write_bytes(data[:ihdr_end] + chunk + data[ihdr_end:])


def test_a_12_bit_colour_image_uses_the_8_bit_range_and_keeps_its_orientation(
        tmp_path: Path) -> None:
    """PIL opens 16-bit colour as 8-bit RGB, keeping each channel's high byte: a 12-bit
    photo (0..4095) read as 0..15, almost black."""
    rgb16 = np.zeros((30, 40, 3), np.uint16)
    rgb16[..., 0] = np.linspace(0, 4095, 40).astype(np.uint16)  # red ramp, left to right
    rgb16[..., 2] = 2048
    path = tmp_path / "sensor12.png"
    _png_with_orientation(path, rgb16[..., ::-1], orientation=1)
    rgb = read_photo(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (30, 40, 3)
    assert rgb[0, 0, 0] == 0 and rgb[0, -1, 0] == 255 and rgb[0, 0, 2] == 128
    _png_with_orientation(path, rgb16[..., ::-1], orientation=6)  # shot rotated: turn 90 deg
    turned = read_photo(path)
    assert turned.shape == (40, 30, 3)
    assert turned[0, 0, 0] == 0 and turned[-1, 0, 0] == 255  # the ramp now runs downwards
    tif = tmp_path / "sensor12.tif"
    assert cv2.imwrite(str(tif), rgb16[..., ::-1])
    np.testing.assert_array_equal(read_photo(tif), rgb)
    import tifffile  # a TIFF's tag is applied once (OpenCV applied it, then PIL again)
    tifffile.imwrite(tif, rgb16, photometric="rgb", extratags=[(274, "H", 1, 6, True)])
    np.testing.assert_array_equal(read_photo(tif), turned)


def test_same_stem_gets_distinct_names(onnx_file: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    pixels = np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(src / "a.png")
    Image.fromarray(pixels).save(src / "a.jpg")
    assert main(["predict", "--model", str(onnx_file), "--input", str(src),
                 "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    assert {p.name for p in (tmp_path / "out").glob("*.npy")} == {"a_png-depth.npy",
                                                                  "a_jpg-depth.npy"}


def test_colour_and_16_bit_scaling() -> None:
    d = np.array([[1.0, 2.0], [3.0, 5.0]], np.float32)
    assert to_uint16(d).tolist() == [[0, 16384], [32768, 65535]]
    assert to_uint16(np.full((2, 2), 7.0)).max() == 0      # constant: no division by zero
    c = colorize(d)
    assert c.shape == (2, 2, 3) and c.dtype == np.uint8
    assert c[1, 1].sum() > c[0, 0].sum()                   # inferno: near is bright


def test_missing_model_is_named(photos: Path, tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nope.onnx"
    assert main(["predict", "--model", str(missing), "--input", str(photos),
                 "--out", str(tmp_path)]) == 2
    assert str(missing) in capsys.readouterr().err


def test_onnx_without_metadata_is_rejected(onnx_file: Path, tmp_path: Path) -> None:
    import onnx
    proto = onnx.load(str(onnx_file))
    del proto.metadata_props[:]
    plain = tmp_path / "plain.onnx"
    onnx.save(proto, str(plain))
    with pytest.raises(ValueError, match="plain.onnx"):
        OnnxEstimator(plain)


def test_output_names_never_collide():
    from pathlib import Path
    from depthnas.export.predict import unique_stems
    paths = [Path("d/a.jpg"), Path("d/a.JPG"), Path("d/a.png"), Path("d/a_jpg.png"), Path("d/b.png")]
    names = unique_stems(paths)
    assert len(set(names.values())) == len(paths)
    assert names[Path("d/b.png")] == "b" and names[Path("d/a.png")] == "a_png"


def test_photos_of_one_name_are_told_apart_and_say_so(onnx_file: Path, photos: Path,
                                                      tmp_path: Path, capsys) -> None:
    """a.webp added beside a.jpg renamed a.jpg's outputs to a_jpg-depth.*, silently, and
    a pipeline reading a-depth.npy kept reading the earlier run's."""
    import shutil
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    shutil.copy(photos / "coffee.jpg", folder / "a.jpg")
    args = ["predict", "--model", str(onnx_file), "--input", str(folder), "--out", str(out),
            "--no-progress"]
    assert main(args) == 0 and "note:" not in capsys.readouterr().err
    assert (out / "a-depth.npy").is_file()
    Image.open(photos / "astro.png").convert("RGB").save(folder / "a.webp")
    assert main(args) == 0
    assert (f"note: a.jpg, a.webp share the name 'a': their outputs are a_jpg-depth.*, "
            f"a_webp-depth.*; {out / 'a'}-depth.* of an earlier run are left as they were"
            ) in capsys.readouterr().err
    assert (out / "a_jpg-depth.npy").is_file() and (out / "a_webp-depth.npy").is_file()


def test_an_input_whose_own_name_another_renamed_output_took_is_not_said_to_share_it(tmp_path):
    """a_jpg.png shares its name with nothing; a.jpg's renamed output took its stem."""
    from depthnas.export.predict import _shared_name_notes, unique_stems
    paths = [tmp_path / n for n in ("a.jpg", "a.JPG", "a.png", "a_jpg.png")]
    stems = unique_stems(paths)
    assert stems[paths[3]] == "a_jpg_3"
    assert _shared_name_notes(stems, tmp_path) == [
        "a.jpg, a.JPG, a.png share the name 'a': their outputs are a_jpg-depth.*, "
        "a_jpg_2-depth.*, a_png-depth.*",
        "a_jpg.png's outputs are a_jpg_3-depth.*: a_jpg-depth.* are a.jpg's"]


def test_out_naming_a_file_is_an_error(onnx_file: Path, photos: Path, tmp_path: Path, capsys) -> None:
    taken = tmp_path / "results.json"
    taken.write_text("{}")
    assert main(["predict", "--model", str(onnx_file), "--input", str(photos),
                 "--out", str(taken), "--no-progress"]) == 2
    assert "results.json is a file; it must name a folder" in capsys.readouterr().err
    assert taken.read_text() == "{}"


def test_links_to_nowhere_are_said_not_passed_over(onnx_file: Path, photos: Path, tmp_path: Path,
                                                  capsys) -> None:
    """A link to a missing photo in the folder was left out without a word, and an --out
    linked to an unmounted drive failed after the work with "File exists"."""
    photos = Path(shutil.copytree(photos, tmp_path / "photos"))  # the fixture's is shared
    (photos / "dead.jpg").symlink_to(tmp_path / "gone.jpg")
    unmounted = tmp_path / "drive"
    unmounted.symlink_to(tmp_path / "not-mounted")
    assert main(["predict", "--model", str(onnx_file), "--input", str(photos),
                 "--out", str(unmounted), "--no-progress"]) == 2
    assert (f"--out {unmounted}: {unmounted} is a symbolic link to {tmp_path / 'not-mounted'}, "
            "which does not exist") in capsys.readouterr().err
    assert main(["predict", "--model", str(onnx_file), "--input", str(photos),
                 "--out", str(unmounted / "maps"), "--no-progress"]) == 2  # below it too
    assert f"{unmounted} is a symbolic link to" in capsys.readouterr().err
    assert main(["predict", "--model", str(onnx_file), "--input", str(photos),
                 "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "2 skipped" in captured.out and "dead.jpg" in captured.err


def test_predicting_into_the_input_folder_twice_skips_its_own_outputs(onnx_file: Path, photos: Path,
                                                                      tmp_path: Path, capsys) -> None:
    """...and says nothing of them: the note on depth maps left out is for an --input
    folder other than --out, where they are predict's own outputs, expected."""
    import shutil
    same = tmp_path / "same"
    shutil.copytree(photos, same)
    args = ["predict", "--model", str(onnx_file), "--input", str(same), "--out", str(same), "--no-progress"]
    assert main(args) == 0 and main(args) == 0
    said = capsys.readouterr()
    assert said.out.count("3 image(s)") == 2 and "left out" not in said.err
    assert not list(same.glob("*-depth-depth*")) and not list(same.glob("*-depth16-depth*"))


def test_a_photo_whose_name_is_too_long_for_its_outputs_is_still_predicted(
        onnx_file: Path, photos: Path, tmp_path: Path, capsys) -> None:
    """A stem of 248 characters plus "-depth16.png" is no file name: the run stopped
    there, and the photos after it were never predicted."""
    import shutil
    folder = tmp_path / "in"
    folder.mkdir()
    long = folder / f"{'x' * 248}.jpg"
    shutil.copy(photos / "coffee.jpg", long)
    shutil.copy(photos / "coffee.jpg", folder / "zz.jpg")
    out = tmp_path / "out"
    assert main(["predict", "--model", str(onnx_file), "--input", str(folder), "--out", str(out),
                 "--no-progress"]) == 0
    assert "2 image(s)" in capsys.readouterr().out
    [made] = [p for p in out.glob("x*-depth16.png")]
    assert made.name.startswith("x" * 180) and len(made.name) < 255


def test_photos_whose_names_are_not_utf8_are_predicted(onnx_file: Path, photos: Path,
                                                      tmp_path: Path, capsys) -> None:
    """A Latin-1 name (an old zip, a camera) stopped the whole run before its first
    photo with "surrogates not allowed"; a long UTF-8 one is cut between characters."""
    folder = tmp_path / "in"
    folder.mkdir()
    jpeg = (photos / "coffee.jpg").read_bytes()
    names = [b"caf\xe9.jpg", "\u00e9".encode() * 120 + b".jpg", b"zz.jpg"]
    for name in names:
        with open(os.path.join(os.fsencode(folder), name), "wb") as f:
            f.write(jpeg)
    out = tmp_path / "out"
    assert main(["predict", "--model", str(onnx_file), "--input", str(folder), "--out", str(out),
                 "--no-progress"]) == 0
    assert "3 image(s)" in capsys.readouterr().out
    made = {os.fsencode(p.name) for p in out.glob("*-depth16.png")}
    assert {b"caf\xe9-depth16.png", b"zz-depth16.png"} < made
    [cut] = made - {b"caf\xe9-depth16.png", b"zz-depth16.png"}
    cut.decode()  # whole characters only: still UTF-8
    assert cut.startswith("\u00e9".encode() * 90) and len(cut) < 255


def test_an_unknown_colormap_is_refused_before_any_work(onnx_file: Path, photos: Path,
                                                        tmp_path: Path, capsys) -> None:
    out = tmp_path / "o"
    assert main(["predict", "--model", str(onnx_file), "--input", str(photos), "--out", str(out),
                 "--colormap", "nope", "--no-progress"]) == 2
    assert "unknown colormap 'nope'" in capsys.readouterr().err and not out.exists()


def test_device_chooses_onnxruntime_providers(onnx_file: Path, photos: Path, tmp_path: Path,
                                              capsys) -> None:
    import onnxruntime as ort
    assert load_estimator(onnx_file, device="cpu").info.backend == "onnxruntime (CPUExecutionProvider)"
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert main(["predict", "--model", str(onnx_file), "--input", str(photos),
                     "--out", str(tmp_path / "o"), "--device", "cuda"]) == 2
        assert "this onnxruntime has no CUDA provider" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        load_estimator(onnx_file, device="gpu")


def test_malformed_size_metadata_names_the_file(onnx_file: Path, tmp_path: Path) -> None:
    import onnx
    proto = onnx.load(str(onnx_file))
    for prop in proto.metadata_props:
        if prop.key == "image_size":
            prop.value = "[64 64]"
    bad = tmp_path / "bad-meta.onnx"
    onnx.save(proto, str(bad))
    with pytest.raises(ValueError, match=r"bad-meta.onnx: metadata image_size '\[64 64\]' is not \[H, W\]"):
        OnnxEstimator(bad)


def test_cuda_device_index_reaches_onnxruntime(monkeypatch) -> None:
    import onnxruntime as ort
    from depthnas.export.inference import onnx_providers
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert onnx_providers("cuda:1") == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    assert onnx_providers("auto")[0] == "CUDAExecutionProvider"
    assert onnx_providers("cpu") == ["CPUExecutionProvider"]
    with pytest.raises(ValueError, match="unknown device 'cuda:x'"):
        onnx_providers("cuda:x")


def test_a_file_predict_did_not_write_is_never_overwritten(onnx_file: Path, photos: Path,
                                                          tmp_path: Path, capsys) -> None:
    """RGB-D folders name sensor depth `<frame>-depth.png`, as predict names its output:
    predicting into such a folder must not replace the ground truth."""
    import shutil
    same = tmp_path / "same"
    shutil.copytree(photos, same)
    sensor = same / "coffee-depth.png"
    assert cv2.imwrite(str(sensor), np.full((134, 200), 1234, np.uint16))
    before = sensor.read_bytes()
    args = ["predict", "--model", str(onnx_file), "--input", str(same), "--out", str(same), "--no-progress"]
    assert main(args) == 0
    captured = capsys.readouterr()
    # coffee and corrupt.jpg; and the sensor's map, named as an output, is said to be left out
    assert "2 image(s)" in captured.out and "3 skipped" in captured.out
    assert f"{sensor} exists and carries no depthnas mark (a file of yours" in captured.err
    assert f"skipped {sensor}: named as predict's outputs (-depth.png, " in captured.err
    assert sensor.read_bytes() == before
    assert not (same / "coffee-depth16.png").exists() and not (same / "coffee-depth.npy").exists()
    assert main(args) == 0  # its own outputs it replaces
    assert "2 image(s)" in capsys.readouterr().out


def test_depth_maps_predict_wrote_are_no_photos_for_a_later_predict(onnx_file: Path, photos: Path,
                                                                   tmp_path: Path, capsys) -> None:
    """Predicted into the photos' folder, then from it into another: the earlier depth
    maps were read as 6 more photos, and depth maps of depth maps written."""
    import shutil
    folder = tmp_path / "photos"
    shutil.copytree(photos, folder)
    assert main(["predict", "--model", str(onnx_file), "--input", str(folder), "--out", str(folder),
                 "--no-progress"]) == 0
    assert "3 image(s)" in capsys.readouterr().out  # coffee, astro, ramp16 (corrupt.jpg skipped)
    out = tmp_path / "depth"
    assert main(["predict", "--model", str(onnx_file), "--input", str(folder), "--out", str(out),
                 "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "3 image(s)" in captured.out
    assert f"note: left out 6 depth map(s) an earlier predict wrote in {folder} (" in captured.err
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{stem}{suffix}" for stem in ("astro", "coffee", "ramp16")
        for suffix in ("-depth.png", "-depth16.png", "-depth.npy"))


def test_a_prediction_cut_short_leaves_no_torn_file(onnx_file: Path, photos: Path, tmp_path: Path,
                                                    monkeypatch, capsys) -> None:
    """A full disk (or Ctrl-C) half-way through a file leaves no file under its name:
    a torn .npy would pass for a prediction."""
    def disk_full(fh, array):
        fh.write(b"\x93NUMPY partial")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(np, "save", disk_full)
    out = tmp_path / "out"
    assert main(["predict", "--model", str(onnx_file), "--input", str(photos / "coffee.jpg"),
                 "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{out / 'coffee-depth.npy'}: could not write it (No space left on device)" in err
    assert sorted(p.name for p in out.iterdir()) == ["coffee-depth16.png"]  # written before, whole


def test_a_photo_over_pils_warning_level_is_read_and_one_over_its_error_level_named(
        tmp_path: Path, monkeypatch) -> None:
    """PIL warns at 89 M pixels (100 MP cameras, panoramas) and refuses at twice that;
    predict read the former as "not a readable image". Scaled down here."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    big, huge = tmp_path / "big.png", tmp_path / "huge.png"
    Image.new("RGB", (15, 10), (10, 20, 30)).save(big)    # 150 pixels: PIL warns
    Image.new("RGB", (30, 10), (10, 20, 30)).save(huge)   # 300 pixels: PIL refuses
    assert read_photo(big).shape == (10, 15, 3)
    with pytest.raises(ImageReadError, match="huge.png: too many pixels to read"):
        read_photo(huge)


def _estimator(image_size, forward):
    """A DepthEstimator whose network output the test writes."""
    from depthnas.export.inference import DepthEstimator, ModelInfo

    class Known(DepthEstimator):
        def _forward(self, x):
            return forward(x)
    estimator = Known()
    estimator.info = ModelInfo(source=Path("known"), backend="test", arch="", space="",
                               backbone="", image_size=image_size, parameters=0)
    return estimator


def test_the_map_is_resized_back_to_the_photo_without_overshoot():
    """Bilinear: a cubic resize (MiDaS' choice) rings at edges, inventing depth outside
    the range the network gave."""
    def step_edge(x):
        out = np.zeros(x.shape[-2:], np.float32)
        out[:, x.shape[-1] // 2:] = 1.0
        return out
    depth = _estimator((64, 64), step_edge).predict(np.zeros((100, 150, 3), np.uint8))
    assert depth.shape == (100, 150) and depth.min() >= 0.0 and depth.max() <= 1.0


def test_a_model_trained_on_a_non_square_size_sees_photos_at_its_longer_side():
    seen = []

    def forward(x):
        seen.append(tuple(x.shape[-2:]))
        return np.zeros(x.shape[-2:], np.float32)
    _estimator((64, 96), forward).predict(np.zeros((64, 96, 3), np.uint8))
    assert seen == [(64, 96)]


def test_nan_pixels_are_drawn_as_the_far_end_not_the_near_one():
    from depthnas.export.images import _lut
    depth = np.array([[0.0, 1.0, np.nan]], np.float32)
    assert to_uint16(depth).tolist() == [[0, 65535, 0]]
    assert (colorize(depth)[0, 2] == _lut("inferno")[0]).all()


def test_predict_refuses_an_unknown_colormap_before_reading_the_model(tmp_path, capsys):
    """Said before the model loads (minutes for a large one, or its own error first)."""
    out = tmp_path / "o"
    assert main(["predict", "--model", str(tmp_path / "missing.onnx"), "--input", str(tmp_path),
                 "--out", str(out), "--colormap", "nope", "--no-progress"]) == 2
    assert "unknown colormap 'nope'" in capsys.readouterr().err and not out.exists()


def test_hidden_files_in_an_input_folder_are_no_photos(tmp_path: Path) -> None:
    """macOS leaves `._a.png` beside `a.png` on a foreign drive: it was read as a
    corrupt photo and counted as skipped."""
    from depthnas.export.predict import collect_inputs
    for name in ("a.png", "._a.png", ".hidden.jpg"):
        (tmp_path / name).write_bytes(b"x")
    photos, _, _ = collect_inputs(tmp_path)
    assert photos == [tmp_path / "a.png"]


def test_an_image_of_no_pixels_is_named_empty() -> None:
    from depthnas.datasets import prepare_image
    for shape in ((0, 0, 3), (0, 10, 3)):
        with pytest.raises(ValueError, match=r"the image is empty \(0x"):
            prepare_image(np.zeros(shape, np.uint8), 64)


def _with_props(onnx_file: Path, out: Path, drop=(), **values) -> Path:
    import onnx
    proto = onnx.load(str(onnx_file))
    props = {p.key: p.value for p in proto.metadata_props if p.key not in drop}
    props.update(values)
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    onnx.save(proto, str(out))
    return out


def test_a_missing_onnx_file_is_not_found_not_unloadable(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="ONNX model not found: .*nope.onnx"):
        OnnxEstimator(tmp_path / "nope.onnx")


def test_onnx_metadata_lacking_the_architecture_alone_is_rejected(onnx_file: Path, tmp_path: Path) -> None:
    """image_size without arch (a file another tool re-labelled) was a KeyError."""
    bad = _with_props(onnx_file, tmp_path / "no-arch.onnx", drop=("arch",))
    with pytest.raises(ValueError, match="no-arch.onnx: no depthnas metadata"):
        OnnxEstimator(bad)


@pytest.mark.parametrize("value", ["64", "null"])
def test_size_metadata_that_is_no_list_names_the_file(onnx_file: Path, tmp_path: Path, value) -> None:
    """Valid JSON of the wrong type (a number, null) was a TypeError traceback."""
    bad = _with_props(onnx_file, tmp_path / "bad-size.onnx", image_size=value)
    with pytest.raises(ValueError, match=rf"bad-size.onnx: metadata image_size '{value}' is not \[H, W\]"):
        OnnxEstimator(bad)  # the text the file holds, not what json made of it


def test_an_upper_case_onnx_suffix_runs_in_onnxruntime(onnx_file: Path, tmp_path: Path) -> None:
    """export takes M.ONNX (its test says predict and the demo read the suffix case-blind)."""
    import shutil
    upper = tmp_path / "M.ONNX"
    shutil.copy(onnx_file, upper)
    estimator = load_estimator(upper)
    assert isinstance(estimator, OnnxEstimator) and estimator.info.backend.startswith("onnxruntime")


def test_auto_asks_onnxruntime_only_for_providers_it_has(monkeypatch) -> None:
    """--device auto on a CPU-only onnxruntime must not ask for CUDA (onnxruntime
    warns about every provider it lacks)."""
    import onnxruntime as ort
    from depthnas.export.inference import onnx_providers
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert onnx_providers("auto") == ["CPUExecutionProvider"]


def test_latency_is_timed_on_a_photo_of_the_model_s_size(monkeypatch) -> None:
    """The demo's card says "median of N runs on a photo of WxH", the training size:
    the median of the timed runs, after the warm-up ones."""
    import types

    import depthnas.export.inference as inference
    from depthnas.export.inference import predict_latency
    passes = [0.004, 0.001, 0.009]  # seconds of the three timed runs
    ticks = iter(t for i, d in enumerate(passes) for t in (10.0 * i, 10.0 * i + d))
    monkeypatch.setattr(inference, "time", types.SimpleNamespace(perf_counter=lambda: next(ticks)))
    seen = []

    def forward(x):
        seen.append(tuple(x.shape[-2:]))
        return np.zeros(x.shape[-2:], np.float32)
    estimator = _estimator((64, 96), forward)
    real_predict = estimator.predict
    photos = []
    estimator.predict = lambda rgb: (photos.append(rgb.shape), real_predict(rgb))[1]
    assert predict_latency(estimator, runs=3, warmup=1) == pytest.approx(4.0)
    assert photos == [(64, 96, 3)] * 4 and seen == [(64, 96)] * 4


def test_a_subfolder_of_upper_case_photos_is_named(onnx_file: Path, tmp_path: Path, capsys) -> None:
    """Suffixes are read case-blind (a camera's IMG_1.JPG) in the hint as in the folder;
    and the message says which suffixes count as images."""
    root = tmp_path / "card"
    (root / "DCIM").mkdir(parents=True)
    cv2.imwrite(str(root / "DCIM" / "IMG_1.JPG"), np.zeros((8, 8, 3), np.uint8))
    assert main(["predict", "--model", str(onnx_file), "--input", str(root),
                 "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"its subfolder {root / 'DCIM'} holds some" in err
    assert ".jpg" in err and ".png" in err


def test_a_constant_map_scales_to_zero_without_a_division_by_zero() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 0/0 gave NaN, cast to 0 only by luck of the platform
        assert to_uint16(np.full((2, 2), 7.0)).tolist() == [[0, 0], [0, 0]]
        assert colorize(np.full((2, 2), 7.0)).shape == (2, 2, 3)


def test_a_12_bit_colour_image_with_alpha_uses_the_8_bit_range(tmp_path: Path) -> None:
    """As 16-bit RGB: PIL keeps each channel's high byte of 16-bit RGBA too (0..15)."""
    bgra16 = np.zeros((30, 40, 4), np.uint16)
    bgra16[..., 2] = np.linspace(0, 4095, 40).astype(np.uint16)  # red ramp
    bgra16[..., 3] = 4095
    path = tmp_path / "sensor12a.png"
    assert cv2.imwrite(str(path), bgra16)
    rgb = read_photo(path)
    assert rgb.shape == (30, 40, 3) and rgb[0, 0, 0] == 0 and rgb[0, -1, 0] == 255


def test_an_onnx_file_is_known_by_its_suffix_in_any_case(onnx_file: Path, photos: Path,
                                                         tmp_path: Path, capsys) -> None:
    """load_estimator picks onnxruntime for .ONNX too; the check before it must agree."""
    upper = shutil.copy(onnx_file, tmp_path / "MODEL.ONNX")
    assert main(["predict", "--model", str(upper), "--input", str(photos / "coffee.jpg"),
                 "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "coffee-depth.npy").is_file()


def test_a_folder_named_like_an_onnx_file_is_no_onnx_model(tmp_path: Path, photos: Path, capsys) -> None:
    (tmp_path / "m.onnx").mkdir()
    assert main(["predict", "--model", str(tmp_path / "m.onnx"), "--input", str(photos),
                 "--out", str(tmp_path / "out")]) == 2
    assert "ONNX model not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_folder_of_upper_case_photos_is_predicted(onnx_file: Path, photos: Path, tmp_path: Path) -> None:
    """Cameras name photos IMG_0001.JPG: a folder of them is a folder of photos."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(photos / "coffee.jpg", folder / "IMG_0001.JPG")
    assert main(["predict", "--model", str(onnx_file), "--input", str(folder),
                 "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    assert (tmp_path / "out" / "IMG_0001-depth.npy").is_file()


def test_a_relative_out_naming_the_input_folder_is_known_as_it(onnx_file: Path, photos: Path,
                                                               tmp_path: Path, monkeypatch, capsys) -> None:
    """--out . inside the folder given by its full path: a sensor's a-depth.png there is
    reported, not predicted as a photo (a-depth-depth.*)."""
    folder = tmp_path / "rgbd"
    folder.mkdir()
    shutil.copy(photos / "astro.png", folder / "a.png")
    cv2.imwrite(str(folder / "a-depth.png"), np.full((20, 30), 1000, np.uint16))
    monkeypatch.chdir(folder)
    main(["predict", "--model", str(onnx_file), "--input", str(folder), "--out", ".",
          "--no-progress"])
    assert "named as predict's outputs" in capsys.readouterr().err
    assert not (folder / "a-depth-depth.npy").exists()


def test_a_folder_of_earlier_depth_maps_only_says_so(onnx_file: Path, photos: Path,
                                                     tmp_path: Path, capsys) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["predict", "--model", str(onnx_file), "--input", str(photos / "coffee.jpg"),
                 "--out", str(first), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["predict", "--model", str(onnx_file), "--input", str(first),
                 "--out", str(second), "--no-progress"]) == 2
    assert "no images" in (err := capsys.readouterr().err) and "2 named as predict's outputs" in err


def test_an_8_bit_photo_shot_rotated_is_turned_upright(tmp_path: Path) -> None:
    """The common case: a phone's JPEG stores the sensor grid and an Orientation tag."""
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    path = tmp_path / "phone.png"
    Image.fromarray(rgb).save(path, exif=exif)
    out = read_photo(path)
    assert out.shape == (30, 20, 3)
    np.testing.assert_array_equal(out, np.rot90(rgb, k=-1))


def test_a_big_endian_float_colour_tiff_is_read(tmp_path: Path) -> None:
    import tifffile
    rgb = np.random.default_rng(0).random((12, 16, 3)).astype(">f4")
    tif = tmp_path / "mm.tif"
    tifffile.imwrite(tif, rgb, byteorder=">", photometric="rgb")
    np.testing.assert_array_equal(read_photo(tif), np.round(rgb.astype(np.float64) * 255).astype(np.uint8))


def test_a_float_image_of_8_bit_levels_up_to_255_keeps_its_levels(tmp_path: Path) -> None:
    grey = np.array([[10.0, 100.0], [200.0, 255.0]], np.float32)
    path = tmp_path / "levels.tif"
    Image.fromarray(grey, mode="F").save(path)
    assert read_photo(path)[..., 0].tolist() == [[10, 100], [200, 255]]


def test_half_way_values_round_to_the_nearer_level(tmp_path: Path) -> None:
    from depthnas.export.images import _lut
    path = tmp_path / "half.tif"
    Image.fromarray(np.array([[0.0, 0.5], [1.0, 0.25]], np.float32), mode="F").save(path)
    assert read_photo(path)[..., 0].tolist() == [[0, 128], [255, 64]]
    np.testing.assert_array_equal(colorize(np.array([[0.0, 0.5, 1.0]]))[0, 1], _lut("inferno")[128])


def test_a_big_endian_16_bit_grey_tiff_uses_its_bit_depth(tmp_path: Path) -> None:
    import tifffile
    grey = np.array([[0, 1000], [2000, 4095]], ">u2")  # 12-bit values, big-endian file
    tif = tmp_path / "mm16.tif"
    tifffile.imwrite(tif, grey, byteorder=">")
    assert Image.open(tif).mode == "I;16B"
    out = read_photo(tif)
    assert out[1, 1].tolist() == [255, 255, 255] and 0 < out[0, 1, 0] < 255


def test_a_photo_over_pils_warning_level_is_read_without_a_warning(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    big = tmp_path / "big.png"
    Image.new("RGB", (15, 10), (10, 20, 30)).save(big)  # 150 pixels: PIL warns
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_photo(big).shape == (10, 15, 3)


def test_the_backend_names_the_provider_that_runs_and_cuda_is_device_0(onnx_file: Path, monkeypatch) -> None:
    import onnxruntime as ort
    from depthnas.export.inference import onnx_providers
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert onnx_providers("cuda") == [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]
    real = ort.InferenceSession

    class OnGpu(real):  # a session that got its first choice, CUDA
        def __init__(self, path, providers=None):
            super().__init__(path, providers=["CPUExecutionProvider"])

        def get_providers(self):
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "InferenceSession", OnGpu)
    assert OnnxEstimator(onnx_file).info.backend == "onnxruntime (CUDAExecutionProvider)"


def test_a_photo_of_no_pixels_is_named_empty_by_the_estimator() -> None:
    estimator = _estimator((64, 64), lambda x: np.zeros(x.shape[-2:], np.float32))
    for shape in ((0, 0, 3), (0, 10, 3)):
        with pytest.raises(ValueError, match="empty"):
            estimator.predict(np.zeros(shape, np.uint8))


def test_device_auto_runs_a_pytorch_model(model_file: Path, photos: Path, tmp_path: Path) -> None:
    assert main(["predict", "--model", str(model_file), "--input", str(photos / "astro.png"),
                 "--out", str(tmp_path), "--device", "auto", "--no-progress"]) == 0
    assert load_estimator(model_file, device="auto").info.backend.startswith("pytorch (")


def test_an_out_through_a_link_to_a_folder_is_taken(onnx_file: Path, photos: Path,
                                                     tmp_path: Path, capsys) -> None:
    """Only a link to nowhere is refused: a link to a folder (a data disk, macOS's
    /tmp) is a folder like any other."""
    (tmp_path / "disk").mkdir()
    linked = tmp_path / "linked"
    linked.symlink_to(tmp_path / "disk")
    assert main(["predict", "--model", str(onnx_file), "--input", str(photos / "coffee.jpg"),
                 "--out", str(linked / "depth"), "--no-progress"]) == 0
    assert (tmp_path / "disk" / "depth" / "coffee-depth.npy").is_file()


def test_a_link_to_a_folder_named_like_a_photo_is_no_input(photos: Path, tmp_path: Path) -> None:
    """A link to nowhere is taken, to be said as unread; a link to a folder is a folder."""
    from depthnas.export.predict import collect_inputs
    folder = Path(shutil.copytree(photos, tmp_path / "photos"))
    (tmp_path / "album").mkdir()
    (folder / "album.jpg").symlink_to(tmp_path / "album", target_is_directory=True)
    (folder / "dead.jpg").symlink_to(tmp_path / "gone.jpg")
    found, _, _ = collect_inputs(folder)
    assert folder / "dead.jpg" in found and folder / "album.jpg" not in found


def test_predict_given_a_path_or_a_flat_array_says_what_it_takes(model_file: Path, photos: Path) -> None:
    """Both failed with 'not enough values to unpack' from the line reading the size."""
    from depthnas.export.inference import load_estimator
    estimator = load_estimator(model_file)
    for path in (str(photos / "coffee.jpg"), photos / "coffee.jpg"):
        with pytest.raises(TypeError, match=r"predict takes an image array, not the path .*coffee.jpg'"
                                            r": depthnas.export.images.read_photo\(path\) reads one"):
            estimator.predict(path)
    with pytest.raises(ValueError, match=r"expected an HxWx3 RGB image, got shape \(10,\)"):
        estimator.predict(np.zeros(10, np.uint8))


def test_an_image_read_error_survives_a_trip_between_processes(tmp_path: Path) -> None:
    """It takes the path and the why apart; pickled by its message alone (how an
    exception comes back from a worker) it could not be rebuilt."""
    import pickle
    err = pickle.loads(pickle.dumps(ImageReadError(tmp_path / "a.png", "the file is empty (0 bytes)")))
    assert (err.path, err.why, str(err)) == (tmp_path / "a.png", "the file is empty (0 bytes)",
                                             f"{tmp_path / 'a.png'}: the file is empty (0 bytes)")
