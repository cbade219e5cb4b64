"""`depthnas demo`: a Gradio app that shows what a searched model sees.

Layout follows the depth demos people know (MiDaS, Depth Anything): a photo in,
the photo and its colourised depth in an image slider, downloads of the 16-bit
PNG and the raw .npy, example photos, and a panel describing the model with its
measured latency. The upload is decoded here, not by gr.Image's preprocessing,
so a non-image or an oversized photo gets a message that says so (gr.Error)
instead of a generic component failure.
"""
from __future__ import annotations

import collections
import contextlib
import html
import logging
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import gradio as gr
from PIL import Image

from depthnas.datasets import net_input_size
from depthnas.datasets.io import TIFF_MAGIC, tiff_size
from depthnas.export.images import ImageReadError, fit_stem, one_value, read_photo, save_prediction
from depthnas.export.inference import DepthEstimator, ignores_input_warning, predict_latency
from depthnas.out_of_memory import OutOfMemory

log = logging.getLogger(__name__)

MAX_SIDE = 4096                # px, either side of an upload
MAX_BYTES = 20 * 2**20         # 20 MB per upload
EXAMPLES = ("motorcycle", "astronaut", "coffee")
_KEEP_RESULTS = 32             # result folders kept on disk (older ones are deleted)
# Gradio copies every upload and result (a full-size .npy each) into its own cache, which
# outlived the demo: swept every 10 min of what is over an hour old, and all at shutdown.
_GRADIO_CACHE = (600, 3600)    # gr.Blocks(delete_cache=(every_s, older_than_s))
# at shutdown, how long a prediction in progress may finish: within `docker stop`'s
# 10 s grace, so that the clean-up after it runs before a SIGKILL
_DRAIN_S = 8


@dataclass(frozen=True)
class Limits:
    max_side: int = MAX_SIDE
    max_bytes: int = MAX_BYTES


def example_images(folder: str | Path) -> list[Path]:
    """scikit-image's bundled photos as PNGs (written once; gr.Examples wants files)."""
    from skimage import data
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    makers = {"motorcycle": lambda: data.stereo_motorcycle()[0],
              "astronaut": data.astronaut, "coffee": data.coffee}
    paths = []
    for name in EXAMPLES:
        path = folder / f"{name}.png"
        if not path.is_file():
            tmp = path.with_suffix(".tmp.png")
            Image.fromarray(makers[name]()).save(tmp)
            tmp.replace(path)  # a half-written example never shows up
        paths.append(path)
    return paths


def _upload_error(message: str) -> gr.Error:
    """A user's upload mistake: a message in their browser, not a traceback on the
    server's console for every bad file. Escaped: the toast is HTML, and an upload
    named `holiday <b>2024.jpg` turned the rest of the message bold."""
    return gr.Error(html.escape(message, quote=False), print_exception=False)


def _markdown_text(text: str) -> str:
    """`text` shown as written in Markdown: `room *draft* _v2_.jpg` came out in italics.
    Only what marks up text inline is escaped, and what would start a heading or a list
    at the line's start: an API client reads the same text, `coffee.jpg` as it is."""
    text = re.sub(r"([\\`*_\[\]<>&|~])", r"\\\1", text)
    return re.sub(r"^(\d+)([.)])", r"\1\\\2", re.sub(r"^([#+\-])", r"\\\1", text))


def _why(err: ImageReadError, name: str) -> str:
    """Why an upload did not read, in the words `depthnas predict` uses, with the
    server's path to its copy (PIL quotes it) shown as the name the user knows."""
    return err.why.replace(str(err.path), name)


def check_upload(path: Path, name: str, limits: Limits) -> None:
    """Reject before decoding: too many bytes, or a header that says too many pixels."""
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise _upload_error(f"{name} is {size / 2**20:.1f} MB; the limit is "
                            f"{limits.max_bytes / 2**20:.0f} MB.")
    try:
        with Image.open(path) as im:   # reads the header only
            w, h = im.size
    except Image.DecompressionBombError:  # the header alone says far too many pixels
        raise _upload_error(f"{name} has too many pixels to decode; the limit is "
                            f"{limits.max_side} px a side.") from None
    except Exception:
        # a float colour TIFF (OpenCV's, an HDR tool's) PIL cannot open, predict reads:
        # its size from its own header (a 600 KB deflated one of 6000x6000 floats took
        # 4 GB and 15 s to decode), else decoded whole (its bytes are within the limit)
        data = path.read_bytes()
        size = tiff_size(data) if data[:4] in TIFF_MAGIC else None
        try:
            w, h = size or read_photo(path).shape[1::-1]
        except ImageReadError as err:
            raise _upload_error(f"{name} is not an image this demo can read: {_why(err, name)}. "
                                "It reads PNG, JPEG, WebP, BMP, TIFF and GIF.") from None
    if max(w, h) > limits.max_side:
        raise _upload_error(f"{name} is {w}×{h} px; the limit is {limits.max_side} px a side. "
                            "Downscale it, or use `depthnas predict` for large photos.")


def model_card(estimator: DepthEstimator, latency_ms: float, runs: int) -> str:
    i = estimator.info
    h, w = i.image_size
    nh, nw = net_input_size(h, w, i.net_size)  # --net-size runs the network larger
    at = f"{w}×{h}" + (f", the network at {nw}×{nh}" if (nh, nw) != (h, w) else "")
    params = f"{i.parameters / 1e6:.2f} M" if i.parameters else "unknown"
    return "\n".join([
        "### Model",
        f"**Architecture** `{i.arch}`  ",
        f"**Space** {i.space} · **Backbone** {i.backbone} · **Parameters** {params}  ",
        f"**Backend** {i.backend} · **File** `{i.source.name}`  ",
        f"**Latency** {latency_ms:.1f} ms (median of {runs} runs on a photo of {at}, "
        "pre- and post-processing included)  ",
        "Output: relative inverse depth — bright is near, dark is far; "
        "the scale and offset are unknown.",
        *([f"  \n**Warning:** {ignores_input_warning(i.arch)}."] if i.ignores_input else []),
    ])


class DepthDemo:
    """The app's state: the estimator, where results go, the upload limits."""

    def __init__(self, estimator: DepthEstimator, *, examples_dir: str | Path | None = None,
                 limits: Limits = Limits(), latency_runs: int = 5):
        self.estimator = estimator
        self.limits = limits
        self.workdir = Path(tempfile.mkdtemp(prefix="depthnas-demo-"))
        self.examples_dir = Path(examples_dir) if examples_dir else self.workdir / "examples"
        self._results: collections.deque[Path] = collections.deque()
        self.latency_runs = latency_runs
        self.latency_ms = predict_latency(estimator, runs=latency_runs)
        self._idle = threading.Condition()
        self._running = 0
        self._stopping = False

    def run(self, payload: Any, uploads: Path | None = None) -> tuple[tuple[str, str], list[str], str]:
        """One prediction. `payload` is gr.Image's raw value (preprocess=False).
        `uploads`: the folder every file a client sent lies in; a path elsewhere is
        refused (the server passes Gradio's cache: with preprocess off, an API call
        naming any path on the server had that image read and served back)."""
        with self._idle:
            if self._stopping:
                raise gr.Error("The demo is stopping.", print_exception=False)
            self._running += 1
        try:
            return self._run(payload, uploads)
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def drain(self, timeout: float = _DRAIN_S) -> bool:
        """Refuse new predictions and wait for the one in progress: the server must
        not stop under it (the native thread it runs in aborted the process at exit,
        and its upload outlived the cache's clean-up). True: none is left running."""
        with self._idle:
            self._stopping = True
            if self._running:
                log.warning("waiting up to %d s for the prediction in progress", timeout)
            return self._idle.wait_for(lambda: self._running == 0, timeout)

    def _run(self, payload: Any, uploads: Path | None) -> tuple[tuple[str, str], list[str], str]:
        path, name = _payload_path(payload)
        # Outside the uploads: said as no upload at all, which tells nothing of the file
        if path is None or (uploads is not None and not _inside(path, uploads)):
            raise _upload_error("Upload an image first (or click an example).")
        if not path.is_file():  # swept from Gradio's cache while its tab stayed open
            raise _upload_error(f"{name} is no longer on the server (uploads are kept an "
                                "hour); upload it again.")
        check_upload(path, name, self.limits)
        try:
            rgb = read_photo(path)
        except ImageReadError as err:  # a header that reads, pixels that do not (cut short)
            raise _upload_error(f"{name} is not an image this demo can read: "
                                f"{_why(err, name)}.") from None
        t0 = time.perf_counter()
        try:
            depth = self.estimator.predict(rgb)
        except OutOfMemory as err:  # the demo's --net-size: its operator's to change
            log.error("%s", err)
            raise gr.Error(f"The server has too little memory for this photo at net size "
                           f"{self.estimator.info.net_size}.", print_exception=False) from None
        ms = (time.perf_counter() - t0) * 1000.0
        # (an upload named ".png" must not give hidden downloads; a long name is cut)
        folder, stem = self._result_dir(), fit_stem(Path(name).stem.lstrip(".") or "image")
        files = save_prediction(depth, folder, stem)
        # The slider gets files, not arrays: Gradio wrote an array to a cache path named
        # by its hash, in place, so a browser fetching one result while an identical
        # one was written got a short or empty image.
        photo = folder / f"{stem}-photo.png"  # a fresh folder: read only once this returns
        photo.write_bytes(cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes())
        h, w = rgb.shape[:2]
        status = (f"{_markdown_text(name)}: {w}×{h} px, inference {ms:.0f} ms. "
                  "Drag the slider to compare; downloads are at full size.")
        if one_value(depth):  # else a flat colour, said as nothing amiss
            status += ("\n\n**The model output one value everywhere: it saw no depth in this "
                       "photo.** A briefly trained model does this, or one trained on other "
                       "images (the quick preset's synthetic rooms).")
        elif self.estimator.info.ignores_input:  # a map that looks like depth, of no photo
            status += f"\n\n**{ignores_input_warning(self.estimator.info.arch)}.**"
        return (str(photo), str(files["color"])), [str(files["png16"]), str(files["npy"])], status

    def _result_dir(self) -> Path:
        folder = Path(tempfile.mkdtemp(dir=self.workdir, prefix="result-"))
        self._results.append(folder)
        # Gradio has copied older results into its own cache by now; ours can go.
        while len(self._results) > _KEEP_RESULTS:
            shutil.rmtree(self._results.popleft(), ignore_errors=True)
        return folder

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _examples(self) -> list[Path]:
        """The example photos; a cache folder that cannot be written (a read-only home)
        costs the examples, not the demo."""
        try:
            return example_images(self.examples_dir)
        except OSError as err:
            log.warning("the demo starts without example photos: %s cannot hold them (%s)",
                        self.examples_dir, err.strerror or err)
            return []

    def build(self) -> gr.Blocks:
        info = self.estimator.info
        with gr.Blocks(title="depthnas depth demo", delete_cache=_GRADIO_CACHE) as blocks:
            gr.Markdown("# depthnas: monocular depth\nUpload a photo; the searched "
                        "decoder estimates its relative inverse depth.")
            with gr.Row():
                with gr.Column():
                    image = gr.Image(label="Photo", type="filepath",
                                     sources=["upload", "clipboard"], elem_id="input-image")
                    button = gr.Button("Estimate depth", variant="primary",
                                       elem_id="predict-btn")
                    examples = self._examples()
                    if examples:
                        gr.Examples(examples=[[str(p)] for p in examples], inputs=[image],
                                    label="Examples (scikit-image)", elem_id="examples")
                with gr.Column():
                    slider = gr.ImageSlider(label="Photo | depth (inferno: bright = near)",
                                            type="filepath", format="png", interactive=False,
                                            elem_id="depth-slider")
                    files = gr.File(label="Downloads: 16-bit PNG (min-max scaled), raw .npy",
                                    file_count="multiple", interactive=False,
                                    elem_id="downloads")
                    status = gr.Markdown(elem_id="status")
            gr.Markdown(model_card(self.estimator, self.latency_ms, self.latency_runs),
                        elem_id="model-card")
            uploads = Path(blocks.GRADIO_CACHE)  # uploads and the examples' copies

            def predict(payload: Any) -> tuple[tuple[str, str], list[str], str]:
                return self.run(payload, uploads)
            # preprocess=False: run() decodes the upload itself, so bad files get a
            # message naming the problem (gr.Image would fail inside PIL first).
            button.click(predict, inputs=image, outputs=[slider, files, status],
                         preprocess=False, api_name="predict")
        log.info("demo for %s (%s)", info.arch, info.backend)
        return blocks


def _payload_path(payload: Any) -> tuple[Path | None, str]:
    """gr.Image's serialised value (a FileData dict) -> (local path, display name)."""
    if payload is None:
        return None, ""
    if isinstance(payload, dict):
        raw = payload.get("path")
        name = payload.get("orig_name") or (Path(raw).name if raw else "")
    else:  # a plain path, e.g. when called from Python
        raw, name = str(payload), Path(str(payload)).name
    if not raw:
        return None, ""
    return Path(raw), name


def _inside(path: Path, folder: Path) -> bool:
    """Whether `path` lies in `folder`, links and `..` resolved (a path no file can
    have, with a NUL byte say, lies nowhere)."""
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, ValueError):
        return False


def launch(demo: DepthDemo, host: str = "127.0.0.1", port: int | None = None, *,
           block: bool = True) -> gr.Blocks:
    """Queue on (one prediction at a time per event; requests wait their turn)."""
    blocks = demo.build()
    blocks.queue(default_concurrency_limit=1, max_size=32)
    # quiet: Gradio's banner tells to "set share=True in launch()", no flag of ours
    blocks.launch(server_name=host, server_port=port, prevent_thread_lock=True,
                  max_file_size=demo.limits.max_bytes, quiet=True, show_error=False)
    if block:
        print(f"serving on {blocks.local_url} (Ctrl-C stops)", flush=True)
        try:  # not blocks.block_thread(): it swallows Ctrl-C, and a shell should see 130
            while blocks.is_running:
                time.sleep(0.1)
        finally:  # Ctrl-C or `kill`: the server's shutdown deletes this demo's cached files
            # a second Ctrl-C, or `kill` (SystemExit): stop waiting, still clean up
            with contextlib.suppress(KeyboardInterrupt, SystemExit):
                demo.drain()
            folders = {Path(f).parent for files in blocks.temp_file_sets for f in files}
            blocks.close(verbose=False)
            # the server's own clean-up at shutdown, which a client's connection left
            # open (one waiting on a prediction) kept from running before we exit
            from gradio.route_utils import delete_files_created_by_app
            delete_files_created_by_app(blocks, age=None)
            for folder in folders:  # ... but not the folder it made for each
                with contextlib.suppress(OSError):
                    folder.rmdir()  # if empty: an example's copy stays for the next start
    return blocks
