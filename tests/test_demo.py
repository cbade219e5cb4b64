"""The Gradio demo, called over HTTP with gradio_client as any API user would."""
from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path

import cv2
import gradio as gr
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from depthnas.app.demo import EXAMPLES
from depthnas.cli import main
from depthnas.model_files import newest_depth_run

pytest_plugins = ["fixtures_models"]
# Gradio's queue calls pandas APIs that pandas 3 deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")


@pytest.fixture(scope="module")
def client(demo_server, tmp_path_factory: pytest.TempPathFactory) -> Client:
    return Client(demo_server.url, verbose=False,
                  download_files=str(tmp_path_factory.mktemp("downloads")))


def test_predict_over_the_api(client: Client, photos: Path) -> None:
    (before, depth), files, status = client.predict(handle_file(str(photos / "coffee.jpg")),
                                                    api_name="/predict")
    h, w = 134, 200
    assert Image.open(before).size == (w, h)
    depth_rgb = np.asarray(Image.open(depth).convert("RGB"))
    assert depth_rgb.shape == (h, w, 3) and depth_rgb.std() > 0
    names = sorted(Path(f).name for f in files)
    assert names == ["coffee-depth.npy", "coffee-depth16.png"]
    png16 = cv2.imread(next(f for f in files if f.endswith(".png")), cv2.IMREAD_UNCHANGED)
    raw = np.load(next(f for f in files if f.endswith(".npy")))
    assert png16.dtype == np.uint16 and png16.shape == raw.shape == (h, w)
    assert png16.min() == 0 and png16.max() == 65535
    assert "coffee.jpg" in status and "ms" in status


@pytest.mark.parametrize("name, stem", [("a" * 240 + ".png", None), ("写真" * 40 + ".jpg", None),
                                        (".png", "png"), ("", "coffee")])
def test_an_upload_s_name_gives_visible_downloads_of_a_length_a_file_may_have(
        demo_server, photos: Path, name: str, stem: str | None) -> None:
    """An API call's long original name raised "File name too long"; one named ".png"
    gave hidden downloads (.png-depth16.png)."""
    _, files, _ = demo_server.demo.run({"path": str(photos / "coffee.jpg"), "orig_name": name})
    assert len(files) == 2  # the 16-bit PNG and the .npy
    for f in files:
        assert Path(f).is_file() and not Path(f).name.startswith(".")
        assert len(Path(f).name.encode()) <= 255
        if stem is not None:
            assert Path(f).name.startswith(f"{stem}-depth")


def test_the_slider_gets_the_photo_and_its_depth_as_files_of_their_own(demo_server, photos: Path) -> None:
    """As arrays, Gradio wrote each to a cache path named by its hash, in place: a
    browser fetching one result while an identical one was written got a short or
    empty image."""
    from depthnas.export.images import colorize, read_photo
    (photo, depth), files, _ = demo_server.demo.run(str(photos / "coffee.jpg"))
    rgb = read_photo(photos / "coffee.jpg")
    np.testing.assert_array_equal(np.asarray(Image.open(photo)), rgb)
    np.testing.assert_array_equal(np.asarray(Image.open(depth).convert("RGB")),
                                  colorize(np.load(next(f for f in files if f.endswith(".npy")))))


def test_an_upload_s_name_is_shown_as_written_in_messages_and_status(demo_server, photos: Path,
                                                                    tmp_path: Path) -> None:
    """The toast is HTML and the status Markdown: `holiday <b>2024.jpg` made the rest of
    the message bold, `room *draft* _v2_.jpg` came out in italics."""
    bad = tmp_path / "x.jpg"
    bad.write_text("not a photo")
    with pytest.raises(gr.Error) as err:
        demo_server.demo.run({"path": str(bad), "orig_name": "holiday <b>2024 & more.jpg"})
    assert err.value.message.startswith("holiday &lt;b&gt;2024 &amp; more.jpg is not an image")
    status = demo_server.demo.run({"path": str(photos / "coffee.jpg"), "orig_name": "room *draft* _v2_.jpg"})[2]
    assert status.startswith(r"room \*draft\* \_v2\_.jpg: ")
    assert demo_server.demo.run({"path": str(photos / "coffee.jpg"), "orig_name": "# 1.jpg"})[2] \
        .startswith(r"\# 1.jpg: ")  # not a heading


def test_a_float_tiff_s_size_is_read_from_its_header_not_by_decoding_it(tmp_path: Path, monkeypatch) -> None:
    """PIL cannot open a float colour TIFF, so it was decoded whole to learn its size:
    a 600 KB deflated one of 6000x6000 pixels took 4 GB and 15 s."""
    import tifffile
    from depthnas.app import demo as demo_module
    path = tmp_path / "wide.tif"
    tifffile.imwrite(path, np.zeros((2, 5000, 3), np.float32), photometric="rgb", compression="zlib")

    def decoded(path):
        raise AssertionError("decoded to learn its size")
    monkeypatch.setattr(demo_module, "read_photo", decoded)
    with pytest.raises(gr.Error, match=r"wide.tif is 5000×2 px; the limit is 4096 px a side"):
        demo_module.check_upload(path, "wide.tif", demo_module.Limits())


def test_an_upload_swept_from_the_cache_gets_a_message(demo_server) -> None:
    """An hour after the upload, Gradio's sweep has deleted its copy while the page still
    shows it: "Error" and a traceback on the server."""
    cache = Path(demo_server.blocks.GRADIO_CACHE)
    with pytest.raises(gr.Error, match=r"coffee.jpg is no longer on the server \(uploads are kept "
                                       r"an hour\); upload it again"):
        demo_server.demo.run({"path": str(cache / "9f5f" / "coffee.jpg"), "orig_name": "coffee.jpg"},
                             cache)


def test_an_api_call_naming_a_file_it_did_not_upload_is_refused(demo_server, photos: Path) -> None:
    """With preprocess off, a FileData without its "meta" passed Gradio's upload check:
    any image the server could read came back as the result's photo, and the messages
    told which other files existed."""
    import httpx
    answers = []
    for path in (photos / "coffee.jpg", Path("/nonexistent/secret.jpg"), Path("/etc/hostname")):
        call = httpx.post(f"{demo_server.url}gradio_api/call/predict",
                          json={"data": [{"path": str(path)}]}, timeout=30)
        event = call.json()["event_id"]
        answers.append(httpx.get(f"{demo_server.url}gradio_api/call/predict/{event}", timeout=60).text)
    for answer in answers:  # alike, whether the file is there, an image or not
        assert "event: error" in answer and "Upload an image first" in answer, answer
        assert "photo.png" not in answer


def test_non_image_gets_a_message(client: Client, tmp_path: Path, capfd) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    capfd.readouterr()
    with pytest.raises(AppError, match="notes.txt is not an image"):
        client.predict(handle_file(str(notes)), api_name="/predict")
    assert "Traceback" not in capfd.readouterr().err  # a user's mistake, not the server's


def test_a_net_size_the_server_has_no_memory_for_gets_a_message(client: Client, demo_server,
                                                                photos: Path, monkeypatch) -> None:
    """An allocation that failed came to the browser as a bare "Error"."""
    def run_out(x):
        raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : bfc_arena.cc:360 Failed to allocate "
                           "memory for requested buffer of size 322961")
    monkeypatch.setattr(demo_server.demo.estimator, "_forward", run_out)
    with pytest.raises(AppError, match="The server has too little memory for this photo at net size"):
        client.predict(handle_file(str(photos / "coffee.jpg")), api_name="/predict")


def test_oversized_image_gets_a_message(client: Client, tmp_path: Path) -> None:
    wide = tmp_path / "wide.png"
    Image.new("RGB", (4100, 8)).save(wide)           # few bytes, too many pixels a side
    with pytest.raises(AppError, match="4100×8 px; the limit is 4096"):
        client.predict(handle_file(str(wide)), api_name="/predict")
    # ... and the server still answers afterwards.
    small = tmp_path / "small.png"
    Image.new("RGB", (40, 30), (120, 80, 40)).save(small)
    (_, depth), _, _ = client.predict(handle_file(str(small)), api_name="/predict")
    assert Image.open(depth).size == (40, 30)


def test_page_shows_model_card_and_examples(demo_server) -> None:
    import httpx
    page = httpx.get(demo_server.url, timeout=30).text
    card = "### Model"
    assert card in page and demo_server.demo.estimator.info.arch in page
    assert "Latency" in page and "Parameters" in page
    assert sorted(p.name for p in demo_server.examples_dir.glob("*.png")) == sorted(
        f"{n}.png" for n in EXAMPLES)


def test_a_map_of_one_value_everywhere_is_said_in_the_status(tmp_path: Path, photos: Path) -> None:
    """A flat colour came back with the usual 'Drag the slider to compare'."""
    from fixtures_models import make_model_file
    from depthnas.app.demo import DepthDemo
    from depthnas.export.inference import load_estimator
    for dead, said in ((True, True), (False, False)):
        demo = DepthDemo(load_estimator(make_model_file(tmp_path / f"{dead}.safetensors", dead_head=dead)),
                         latency_runs=1)
        try:
            status = demo.run(str(photos / "coffee.jpg"))[2]
        finally:
            demo.close()
        assert ("model output one value everywhere" in status) == said, status


def test_a_stopping_demo_lets_the_prediction_in_progress_finish_and_takes_no_new_one(
        tmp_path: Path, photos: Path) -> None:
    """Ctrl-C during a prediction closed the server under it: the process died of
    "terminate called without an active exception" (SIGABRT) and the upload stayed in
    Gradio's cache."""
    import threading

    from fixtures_models import make_model_file
    from depthnas.app.demo import DepthDemo
    from depthnas.export.inference import load_estimator
    estimator = load_estimator(make_model_file(tmp_path / "m.safetensors"))
    demo = DepthDemo(estimator, latency_runs=1)
    entered, release = threading.Event(), threading.Event()
    predict = estimator.predict

    def held(rgb):  # a prediction that lasts until the test lets it end
        entered.set()
        release.wait()
        return predict(rgb)
    estimator.predict = held
    results = []
    worker = threading.Thread(target=lambda: results.append(demo.run(str(photos / "coffee.jpg"))))
    worker.start()
    try:
        assert entered.wait(60)
        assert not demo.drain(timeout=0.2)  # still running: not drained
        with pytest.raises(gr.Error, match="The demo is stopping"):
            demo.run(str(photos / "coffee.jpg"))
    finally:
        release.set()
    assert demo.drain(timeout=60)
    worker.join()
    demo.close()
    assert "inference" in results[0][2]  # it finished, with its answer


def test_an_unreadable_upload_is_told_why_under_its_own_name(tmp_path: Path, photos: Path) -> None:
    """The demo said only "not an image this demo can read", where predict says why;
    and the why that PIL gives quotes the server's copy of the file, not the user's name."""
    from fixtures_models import make_model_file
    from depthnas.app.demo import DepthDemo, Limits, check_upload
    from depthnas.export.inference import load_estimator
    whole = (photos / "coffee.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(whole[: len(whole) // 2])  # its header reads, its pixels not
    (tmp_path / "notes.jpg").write_text("hello")
    demo = DepthDemo(load_estimator(make_model_file(tmp_path / "m.safetensors")), latency_runs=1)
    try:
        with pytest.raises(gr.Error) as cut:
            demo.run(str(tmp_path / "cut.jpg"))
    finally:
        demo.close()
    assert "cut.jpg is not an image this demo can read: not a readable image (image file is " \
        "truncated" in cut.value.message
    with pytest.raises(gr.Error) as notes:
        check_upload(tmp_path / "notes.jpg", "notes.jpg", Limits())
    assert "notes.jpg is not an image this demo can read: not a readable image (cannot identify " \
        "image file 'notes.jpg')" in notes.value.message
    assert str(tmp_path) not in cut.value.message + notes.value.message


def test_the_model_card_names_the_size_the_network_ran_at(model_file: Path) -> None:
    """--net-size runs the network larger than the training size; the card said its
    latency was taken at the training size (a 64 px model's 3 ms, at 320 px 27 ms)."""
    from depthnas.app.demo import model_card
    from depthnas.export.inference import load_estimator
    assert "median of 3 runs on a photo of 64×64, pre-" in model_card(load_estimator(model_file), 3.0, 3)
    card = model_card(load_estimator(model_file, net_size=320), 27.0, 3)
    assert "median of 3 runs on a photo of 64×64, the network at 320×320, pre-" in card


def test_newest_run_is_found(tmp_path: Path, make_model) -> None:
    assert newest_depth_run(tmp_path / "runs") is None
    old = make_model(tmp_path / "runs" / "a" / "best" / "model.safetensors")
    new = make_model(tmp_path / "runs" / "b" / "best" / "model.safetensors")
    os.utime(old, (1_000_000, 1_000_000))
    assert newest_depth_run(tmp_path / "runs") == new.parent.parent


def test_a_train_run_is_found_but_not_a_searchs_stand_alone_models(tmp_path: Path, make_model) -> None:
    """`depthnas train` writes model.safetensors at the top of its folder; the demo
    looked for best/ only and said no run existed."""
    search = make_model(tmp_path / "runs" / "s" / "best" / "model.safetensors")
    os.utime(search, (1_000_000, 1_000_000))
    inner = make_model(tmp_path / "runs" / "s" / "standalone" / "v1" / "model.safetensors")
    (inner.parent / "result.json").write_text("{}")
    assert newest_depth_run(tmp_path / "runs") == search.parent.parent
    trained = make_model(tmp_path / "runs" / "t" / "model.safetensors")
    (trained.parent / "result.json").write_text("{}")
    os.utime(inner, (1_000, 1_000))
    assert newest_depth_run(tmp_path / "runs") == trained.parent


def test_newest_depth_run_is_found_past_a_classification_one(tmp_path: Path, make_model) -> None:
    from fixtures_models import make_classification_model_file
    depth = make_model(tmp_path / "runs" / "depth" / "best" / "model.safetensors")
    os.utime(depth, (1_000_000, 1_000_000))
    (tmp_path / "runs" / "nb201" / "best").mkdir(parents=True)
    make_classification_model_file(tmp_path / "runs" / "nb201" / "best" / "model.safetensors")
    assert newest_depth_run(tmp_path / "runs") == depth.parent.parent


def test_bad_device_and_busy_port_are_messages(model_run: Path, capsys) -> None:
    import socket
    with socket.socket() as free:  # not 7860: the demo_server fixture may hold it
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    assert main(["demo", "--model", str(model_run), "--device", "gpu", "--port", str(port)]) == 2
    assert "unknown device 'gpu'" in capsys.readouterr().err
    assert main(["demo", "--model", str(model_run), "--net-size", "8", "--port", str(port)]) == 2
    assert "--net-size (net_size) must be >= 32" in capsys.readouterr().err  # reaches the model's loading
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["demo", "--model", str(model_run), "--port", str(port)]) == 2
    captured = capsys.readouterr()
    assert f"cannot serve on 127.0.0.1:{port}" in captured.err
    assert "starting the demo" not in captured.out  # said before the model loads
    assert main(["demo", "--model", str(model_run), "--port", "99999"]) == 2
    assert "--port 99999 is not a port number" in capsys.readouterr().err
    assert main(["demo", "--model", str(model_run), "--host", "999.1.1.1"]) == 2
    assert "--host '999.1.1.1' is not an address" in capsys.readouterr().err
    # passed the checks, then Gradio's unbracketed http://::1:PORT was a traceback
    assert main(["demo", "--model", str(model_run), "--host", "::1", "--port", str(port)]) == 2
    assert "--host ::1: the demo serves on IPv4 addresses only" in capsys.readouterr().err


def test_a_cache_folder_that_cannot_hold_the_examples_costs_the_examples_not_the_demo(
        model_file: Path, tmp_path: Path, caplog) -> None:
    """A read-only home failed the start as "cannot serve on ...: the port is taken"."""
    from depthnas.app.demo import DepthDemo
    from depthnas.export.inference import load_estimator
    (tmp_path / "a-file").write_text("")
    demo = DepthDemo(load_estimator(model_file), examples_dir=tmp_path / "a-file" / "examples",
                     latency_runs=1)
    try:
        demo.build()
    finally:
        demo.close()
    assert "the demo starts without example photos" in caplog.text
    assert "a-file/examples cannot hold them" in caplog.text


def test_demo_without_a_run_says_how_to_make_one(tmp_path: Path, capsys) -> None:
    assert main(["demo", "--runs", str(tmp_path / "runs")]) == 2
    assert "make search" in capsys.readouterr().err


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM", "SIGHUP", "nohup"])  # HUP: a closed terminal
def test_ctrl_c_and_kill_clean_up_the_work_folder_and_exit_as_a_shell_reports(
        stop: str, onnx_file: Path, tmp_path: Path, photos: Path) -> None:
    """`kill` of a demo left /tmp/depthnas-demo-* behind, full of result .npy files, and
    any stop left gradio's copies of every upload and result in /tmp/gradio. Ctrl-C
    exited 0, as if the demo had ended of itself (search and train exit 130)."""
    import signal
    import socket
    import subprocess
    import sys
    import time
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, TMPDIR=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"),
               GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    # A shell starts background jobs with Ctrl-C ignored (CI may run this suite so), and
    # Python keeps it ignored, as it keeps the hang-up of a suite run under nohup: give
    # the demo the signals a terminal's user has.
    start = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
             "signal.signal(signal.SIGTERM, signal.SIG_DFL); "
             + ("signal.signal(signal.SIGHUP, signal.SIG_IGN); " if stop == "nohup"
                else "signal.signal(signal.SIGHUP, signal.SIG_DFL); ") +
             "sys.argv[0] = 'depthnas'; runpy.run_module('depthnas', run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", start, "demo", "--model", str(onnx_file),
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180  # a readiness wait on a busy CI machine, not a timing
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the demo did not start serving"
            with socket.socket() as c:
                if c.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.5)
        assert list(tmp_path.glob("depthnas-demo-*"))  # the work folder exists while serving
        client = Client(f"http://127.0.0.1:{port}/", verbose=False,
                        download_files=str(tmp_path / "downloads"))
        client.predict(handle_file(str(photos / "coffee.jpg")), api_name="/predict")
        cached = sorted(p.name for p in (tmp_path / "gradio").rglob("*") if p.is_file())
        ours = {"coffee.jpg", "coffee-depth.npy", "coffee-depth16.png"}  # the upload, the results
        assert ours <= set(cached), cached
        if stop == "nohup":  # started so, the demo outlives its terminal
            proc.send_signal(signal.SIGHUP)
            with pytest.raises(subprocess.TimeoutExpired):
                proc.wait(timeout=3)
            stop = "SIGTERM"
        proc.send_signal(getattr(signal, stop))
        assert proc.wait(timeout=60) == 128 + getattr(signal, stop)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not list(tmp_path.glob("depthnas-demo-*"))
    left = sorted(p.name for p in (tmp_path / "gradio").rglob("*") if p.is_file())
    assert not ours & set(left), left  # the examples' copies may stay: the next start reuses them
    empty = [d for d in (tmp_path / "gradio").rglob("*") if d.is_dir() and not any(d.iterdir())
             and len(d.name) >= 32 and not d.name.strip("0123456789abcdef")]
    assert not empty, empty  # nor the folder, named by a hash, made for each file


def test_a_decompression_bomb_gets_the_size_message(tmp_path: Path) -> None:
    """Pillow refuses to open such a header at all; the demo said 'not an image'."""
    from depthnas.app.demo import Limits, check_upload
    bomb = tmp_path / "bomb.png"
    Image.new("1", (14000, 14000)).save(bomb)  # a few kB, 196 M pixels
    with pytest.raises(gr.Error, match="bomb.png has too many pixels.*4096 px a side"):
        check_upload(bomb, "bomb.png", Limits())


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # PIL, reading the junk file's header
def test_a_float_colour_tiff_is_checked_by_its_decoded_size(tmp_path: Path) -> None:
    """PIL cannot open the float colour TIFFs OpenCV writes; predict reads them, and the
    demo refused them as 'not an image'."""
    import cv2
    import numpy as np

    from depthnas.app.demo import Limits, check_upload
    rgb = np.dstack([np.linspace(0, 1, 48 * 64, dtype=np.float32).reshape(48, 64)] * 3)
    assert cv2.imwrite(str(tmp_path / "f.tif"), rgb)
    check_upload(tmp_path / "f.tif", "f.tif", Limits())  # accepted
    with pytest.raises(gr.Error, match="f.tif is 64×48 px; the limit is 32 px a side"):
        check_upload(tmp_path / "f.tif", "f.tif", Limits(max_side=32))
    (tmp_path / "junk.tif").write_bytes(b"II*\0 not a tiff")
    with pytest.raises(gr.Error, match="junk.tif is not an image this demo can read"):
        check_upload(tmp_path / "junk.tif", "junk.tif", Limits())


def test_an_upload_is_held_to_the_side_limit_on_both_sides(tmp_path):
    from depthnas.app.demo import Limits, check_upload
    tall = tmp_path / "tall.png"
    Image.fromarray(np.zeros((5000, 8), np.uint8)).save(tall)
    with pytest.raises(gr.Error, match="8×5000 px; the limit is 4096"):
        check_upload(tall, "tall.png", Limits())


def test_an_upload_one_byte_over_the_size_limit_is_refused(tmp_path):
    from depthnas.app.demo import Limits, check_upload
    path = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    size = path.stat().st_size
    check_upload(path, "noise.png", Limits(max_bytes=size))  # at the limit: fine
    with pytest.raises(gr.Error, match="the limit is"):
        check_upload(path, "noise.png", Limits(max_bytes=size - 1))


def test_an_upload_exactly_at_the_side_limit_is_taken(tmp_path):
    """"the limit is 4096 px a side": 4096 itself is within it."""
    from depthnas.app.demo import MAX_SIDE, Limits, check_upload
    edge = tmp_path / "edge.png"
    Image.fromarray(np.zeros((MAX_SIDE, 8), np.uint8)).save(edge)
    check_upload(edge, "edge.png", Limits())


def test_the_model_card_says_unknown_for_a_file_without_a_parameter_count(model_file: Path) -> None:
    """An ONNX file lacking the `parameters` property reads 0: not "0.00 M"."""
    from depthnas.app.demo import model_card
    from depthnas.export.inference import load_estimator
    estimator = load_estimator(model_file)
    estimator.info = dataclasses.replace(estimator.info, parameters=0)
    card = model_card(estimator, 3.0, 3)
    assert "**Parameters** unknown" in card and "0.00 M" not in card


def test_a_newest_model_that_cannot_be_read_is_chosen_for_the_loader_to_name(tmp_path: Path,
                                                                            make_model) -> None:
    """Passed over, the demo would silently show an older model than the user's newest."""
    old = make_model(tmp_path / "runs" / "a" / "best" / "model.safetensors")
    os.utime(old, (1_000_000, 1_000_000))
    bad = tmp_path / "runs" / "b" / "best" / "model.safetensors"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\0" * 64)
    assert newest_depth_run(tmp_path / "runs") == bad.parent.parent


def test_the_newest_run_is_the_model_the_demo_goes_on_with(tmp_path: Path, make_model, capsys) -> None:
    """Without --model the run found is checked and served (here: up to the busy port)."""
    make_model(tmp_path / "runs" / "a" / "best" / "model.safetensors")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["demo", "--runs", str(tmp_path / "runs"), "--port", str(port)]) == 2
    captured = capsys.readouterr()
    assert f"using the newest run: {tmp_path / 'runs' / 'a'}" in captured.out
    assert f"cannot serve on 127.0.0.1:{port}" in captured.err
