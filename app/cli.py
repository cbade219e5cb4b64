"""`depthnas demo` (registered by depthnas.cli)."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from depthnas.io import path_arg


def register(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("demo", help="serve a Gradio demo of a trained model")
    d.add_argument("--model", type=path_arg, help="model.onnx, a model.safetensors or a run folder "
                                   "(default: the newest run under --runs)")
    d.add_argument("--runs", default="runs", type=path_arg, help="where to look for runs without --model")
    d.add_argument("--host", default="127.0.0.1",
                   help="address to serve on (default 127.0.0.1: this machine only; 0.0.0.0 "
                        "exposes the demo to the network)")
    d.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    d.add_argument("--device", default="auto",
                   help="auto (default: CUDA when there is one) | cpu | cuda | cuda:N (ONNX models: "
                        "onnxruntime's CUDA provider, when its build has one)")
    d.add_argument("--net-size", type=int, default=None,
                   help="longer side the network sees (default: the training size's)")
    d.set_defaults(func=cmd_demo)


def default_examples_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "depthnas" / "examples"


def cmd_demo(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise ValueError(f"--port {args.port} is not a port number (1-65535)")
    if ":" in args.host:  # an IPv6 address: Gradio writes its URL unbracketed, http://::1:7860
        raise ValueError(f"--host {args.host}: the demo serves on IPv4 addresses only; use "
                         "127.0.0.1 (this machine) or 0.0.0.0 (the network)")
    import socket
    try:
        family = socket.getaddrinfo(args.host, args.port, type=socket.SOCK_STREAM)[0][0]
    except (socket.gaierror, UnicodeError) as err:
        raise ValueError(f"--host {args.host!r} is not an address this machine can resolve "
                         f"({err})") from None
    # Gradio polls its own server through httpx; at INFO that is a line per request.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from depthnas.model_files import check_model_path, newest_depth_run
    model = args.model
    if model is None:
        run = newest_depth_run(args.runs)
        if run is None:
            raise FileNotFoundError(
                f"no --model given and no run under {args.runs}/ holds a depth model (a "
                "search's best/model.safetensors, a training's model.safetensors); make one "
                "with `make search` (or `depthnas search --preset quick`), or pass --model")
        print(f"using the newest run: {run}")
        model = run
    check_model_path(model)  # before torch, onnxruntime and gradio load
    try:  # before the model loads and "starting the demo" is printed
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
            probe.bind((args.host, args.port))
    except OSError as err:
        raise _cannot_serve(args, err) from None
    from depthnas.export.inference import load_estimator
    estimator = load_estimator(model, device=args.device, net_size=args.net_size)

    from .demo import DepthDemo, launch  # gradio: seconds a missing or bad model need not wait
    demo = DepthDemo(estimator, examples_dir=default_examples_dir())
    print(f"starting the demo of {demo.estimator.info.arch} on http://{args.host}:{args.port}")
    # `kill` (SIGTERM) and a closed terminal or SSH session (SIGHUP) must clean up as
    # Ctrl-C does: the work folder holds every result, Gradio's cache every upload.
    main_thread = threading.current_thread() is threading.main_thread()
    # (not a SIGHUP `nohup` ignores: the demo is to outlive its terminal then)
    stops = [s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None))
             if s is not None and signal.getsignal(s) is not signal.SIG_IGN]
    previous = ({s: signal.signal(s, lambda signum, frame: sys.exit(128 + signum)) for s in stops}
                if main_thread else {})
    try:
        launch(demo, args.host, args.port, block=True)
    except OSError as err:  # taken since the probe above
        raise _cannot_serve(args, err) from None
    finally:
        for stop, handler in previous.items():
            signal.signal(stop, handler)
        demo.close()
    return 0


def _cannot_serve(args: argparse.Namespace, err: OSError) -> OSError:
    return OSError(f"cannot serve on {args.host}:{args.port} ({err}): the port is taken (pass "
                   "another --port) or the host is not an address of this machine")
