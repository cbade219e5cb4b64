"""`depthnas export`: one self-contained ONNX file, dynamic shapes, metadata, parity."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from depthnas.cli import main
from depthnas.export.onnx_export import Parity, check_parity, export_onnx, load_for_export

pytest_plugins = ["fixtures_models"]


def _dims(value) -> list:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_cli_export_with_check(model_run: Path, arch: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "model.onnx"
    rc = main(["export", "--run", str(model_run), "--out", str(out), "--check",
               "--exporter", "legacy"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # no .onnx.data
    parity = [line for line in text.splitlines() if line.startswith("parity")]
    assert len(parity) == 2 and all(line.endswith("ok") for line in parity), text
    assert "max abs" in parity[0] and "relative" in parity[0]

    proto = onnx.load(str(out), load_external_data=False)
    onnx.checker.check_model(proto)
    assert max(op.version for op in proto.opset_import if op.domain in ("", "ai.onnx")) >= 17
    assert _dims(proto.graph.input[0]) == ["batch", 3, "height", "width"]
    assert _dims(proto.graph.output[0]) == ["batch", 1, "height", "width"]
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["arch"] == arch
    assert props["space"] == "v2-nonsync"
    assert props["backbone"] == "mobilenetv3_small_050"
    assert json.loads(props["image_size"]) == [64, 64]
    # ImageNet normalisation is inside the graph; keys named "mean"/"std" invited a
    # consumer to apply it a second time
    assert "mean" not in props and "std" not in props
    assert json.loads(props["applied_in_graph_mean"]) == pytest.approx([0.485, 0.456, 0.406])
    assert json.loads(props["applied_in_graph_std"]) == pytest.approx([0.229, 0.224, 0.225])
    assert "relative inverse depth" in props["output"]
    assert "[0, 1]" in props["input"]
    assert int(props["parameters"]) > 0


def test_parity_at_other_sizes(onnx_file: Path, model_file: Path) -> None:
    # Batch 3 and non-square sizes the export never saw: the axes really are dynamic.
    # Sides off the multiples of 32 as well: the file, run on its own, is fed any size
    # (63x63 came back as a 64x64 map, 65x100 as an onnxruntime broadcast error).
    shapes = [(3, 3, 32, 96), (1, 3, 160, 64), (2, 3, 63, 63), (1, 3, 65, 100), (1, 3, 1, 7)]
    results = check_parity(onnx_file, model_file, shapes=shapes)
    assert [r.shape for r in results] == shapes
    for r in results:
        assert r.ok and r.max_rel < 1e-4, r


def test_check_detects_a_different_model(onnx_file: Path, make_model, tmp_path: Path) -> None:
    other = make_model(tmp_path / "other.safetensors", seed=1)
    results = check_parity(onnx_file, other)
    assert len(results) == 2 and not any(r.ok for r in results)


def test_arch_flag_must_match_the_model_file(model_file: Path, arch: str) -> None:
    _, meta, _ = load_for_export(model_file, arch=arch)
    assert meta["arch"] == arch
    wrong = arch.replace("c3,skip,none,c1,ap+bic", "c1,skip,none,c1,ap+bic")
    with pytest.raises(ValueError, match=str(model_file)):
        load_for_export(model_file, arch=wrong)


def test_arch_flag_takes_a_twin_of_the_model_file_s_architecture(tmp_path: Path) -> None:
    """A search's best read from the landmark store under its twin's string: the copied
    model file says the twin, best_arch.json the search's string, and export --arch
    best_arch.json refused the very model it names."""
    from fixtures_models import make_model_file
    model = make_model_file(tmp_path / "m.safetensors", arch="v1-sync:c3,c3,ap,c1,none")
    _, meta, _ = load_for_export(model, arch="v1-sync:skip,c1,ap,c1,none")  # node 2 idle in both
    assert meta["arch"] == "v1-sync:c3,c3,ap,c1,none"
    with pytest.raises(ValueError, match="but --arch says v1-sync:skip,c1,ap,c1,c3; not exported"):
        load_for_export(model, arch="v1-sync:skip,c1,ap,c1,c3")


def test_export_takes_an_architecture_file_as_train_does(model_file: Path, arch: str, tmp_path: Path,
                                                        capsys) -> None:
    """README: both forms are accepted everywhere; export read the path as a string."""
    wrong = arch.replace("c3,skip,none,c1,ap+bic", "c1,skip,none,c1,ap+bic")
    arch_file = tmp_path / "best_arch.json"
    arch_file.write_text(json.dumps({"space": "v2-nonsync", "string": wrong}))
    out = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(model_file), "--arch", str(arch_file), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--arch says {wrong}; not exported" in err  # read from the file, then compared
    assert not out.exists()
    arch_file.write_text('{"space": "v2-nonsync", "string": }')
    assert main(["export", "--checkpoint", str(model_file), "--arch", str(arch_file), "--out", str(out)]) == 2
    assert f"--arch {arch_file}: not valid JSON" in capsys.readouterr().err


def test_an_arch_of_another_space_names_the_model_file_and_the_flag(model_file: Path, arch: str,
                                                                    tmp_path: Path, capsys) -> None:
    """It said only "architecture string is for space 'v1-sync', not 'v2-nonsync'"."""
    other = "v1-sync:c3,skip,c3,c1,c3"
    assert main(["export", "--checkpoint", str(model_file), "--arch", other,
                 "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert f"{model_file}: holds {arch}, but --arch {other} (" in err and "not exported" in err
    assert not (tmp_path / "m.onnx").exists()


def test_unreadable_model_files_are_named(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "missing.safetensors"
    assert main(["export", "--checkpoint", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_bytes(b"not safetensors")
    assert main(["export", "--checkpoint", str(bogus)]) == 2
    assert str(bogus) in capsys.readouterr().err
    # a torch.save file read as safetensors gives "header too large": say what it is
    pickled = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, pickled)
    assert main(["export", "--checkpoint", str(pickled)]) == 2
    assert "model.pt: not a readable safetensors model file" in (err := capsys.readouterr().err)
    assert "it looks like a torch.save file" in err
    from depthnas.checkpoint import load_weights  # the weights' reader says it too
    with pytest.raises(ValueError, match="model.pt: not a readable .* it looks like a torch.save file"):
        load_weights(pickled, torch.nn.Linear(2, 2))
    legacy = tmp_path / "legacy.pt"  # torch < 1.6: a plain pickle
    torch.save({"w": torch.zeros(2)}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match="it looks like a torch.save file"):
        load_weights(legacy, torch.nn.Linear(2, 2))
    # a damaged safetensors file whose header length starts with the pickle's byte 0x80
    # is what it seems, and told nothing of torch.save
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes((0x0280).to_bytes(8, "little") + b'{"w": {"dtype": "F32"')
    with pytest.raises(ValueError) as refused:
        load_weights(cut, torch.nn.Linear(2, 2))
    assert "not a readable safetensors model file" in str(refused.value)
    assert "torch.save" not in str(refused.value)
    # a photo given as the model says what a model is; a missing run folder is not
    # called a "model file"
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8 not really")
    assert main(["predict", "--model", str(photo), "--input", str(photo), "--out", str(tmp_path / "p")]) == 2
    assert "photo.jpg is an image, not a model" in capsys.readouterr().err
    assert main(["export", "--run", str(tmp_path / "norun")]) == 2
    assert f"{tmp_path / 'norun'}: no such file or folder" in capsys.readouterr().err


def test_model_files_whose_metadata_lies_are_named(model_file: Path, tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
    from depthnas.models import load_model
    with safe_open(str(model_file), "pt") as fh:
        meta = fh.metadata()
    tensors = load_file(str(model_file))
    bad = tmp_path / "bad.safetensors"
    model = json.loads(meta["model"])  # what the model is rebuilt from
    for key, value, says in (("model", json.dumps({**model, "features": 16}), "do not fit"),
                             ("model", json.dumps({**model, "features": "abc"}), "build no v2-nonsync model"),
                             ("model", json.dumps({**model, "colour": 1}), "unexpected keyword"),
                             ("space", "nope", "unknown search space")):
        save_file(tensors, str(bad), metadata={**meta, key: value})
        with pytest.raises(ValueError, match=f"{bad}.*{says}"):
            load_model(bad)
    # a file written before the settings were recorded is rebuilt from the decoder's
    old = {k: v for k, v in meta.items() if k != "model"}
    for key, value, says in (("features", "16", "do not fit"), ("features", "abc", "invalid literal")):
        save_file(tensors, str(bad), metadata={**old, key: value})
        with pytest.raises(ValueError, match=f"{bad}.*{says}"):
            load_model(bad)
    save_file(tensors, str(bad), metadata=old)
    load_model(bad)


def test_an_onnx_file_where_weights_are_needed_is_explained(onnx_file: Path, capsys) -> None:
    assert main(["evaluate", "--checkpoint", str(onnx_file), "--data", "synthetic"]) == 2
    assert f"{onnx_file} is an ONNX export" in capsys.readouterr().err


def test_classification_models_are_refused_by_name(tmp_path: Path, capsys) -> None:
    """An NB201 model outputs class logits: exported or run as a depth map it would
    give a [batch, 10] "inverse_depth" and constant pictures, so the tools say no."""
    from fixtures_models import make_classification_model_file
    path = make_classification_model_file(tmp_path / "nb.safetensors")
    for argv in (["export", "--checkpoint", str(path), "--out", str(tmp_path / "nb.onnx")],
                 ["predict", "--model", str(path), "--input", str(tmp_path), "--out", str(tmp_path / "p")],
                 ["evaluate", "--checkpoint", str(path), "--data", "synthetic"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"{path} holds a classification model (space nb201)" in err, (argv, err)
    assert not (tmp_path / "nb.onnx").exists()
    # in its run folder, before evaluate says which split of the run's data it scores
    from depthnas import config as config_mod
    run = tmp_path / "run"
    run.mkdir()
    path.rename(run / "model.safetensors")
    cfg = config_mod.apply_dotted(config_mod.Config(), ["space=nb201", "data.spec=digits"])
    config_mod.dump(cfg, run / "config.yaml")
    assert main(["evaluate", "--checkpoint", str(run), "--split", "val"]) == 2
    captured = capsys.readouterr()
    assert "holds a classification model (space nb201)" in captured.err and "split val" not in captured.out


def test_dynamo_exporter(model_file: Path, tmp_path: Path) -> None:
    result = export_onnx(model_file, tmp_path / "dyn.onnx", exporter="dynamo")
    assert result.exporter == "dynamo"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dyn.onnx"]
    proto = onnx.load(str(result.path), load_external_data=False)
    assert _dims(proto.graph.input[0]) == ["batch", 3, "height", "width"]
    # torch marks it IR 10, which onnxruntime before 1.18 refuses; opset 18 needs 8,
    # what the README's "onnxruntime 1.14 or newer" (IR 8 at most) can read
    assert proto.ir_version == 8 and not proto.functions
    results = check_parity(result.path, model_file, shapes=[(1, 3, 64, 64), (2, 3, 96, 128),
                                                             (1, 3, 63, 65)])
    assert all(r.ok for r in results), results
    assert np.isfinite([r.max_abs for r in results]).all()


def test_an_opset_outside_what_onnx_knows_is_named(model_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="opset 16 is too old; use 17 or newer"):
        export_onnx(model_file, tmp_path / "m.onnx", opset=16)
    with pytest.raises(ValueError, match="opset 99 is newer than this onnx package knows"):
        export_onnx(model_file, tmp_path / "m.onnx", opset=99)


def test_the_file_holds_the_opset_asked_for(model_file: Path, tmp_path: Path, monkeypatch) -> None:
    """torch's dynamo exporter builds at opset 18 and converts down; when that failed it
    kept 18 (and printed a traceback), and the file was labelled opset 17: a runtime
    of 17, the reason to ask for it, rejects such a file. The dynamo exporter here
    stands in for one whose conversion failed (a real dynamo export costs ~30 s; that
    path has test_dynamo_exporter)."""
    import onnx

    import depthnas.export.onnx_export as ox
    tried = []

    def dynamo_kept_18(model, example, opset):
        tried.append(opset)
        return ox._export_legacy(model, example, 18)
    monkeypatch.setattr(ox, "_export_dynamo", dynamo_kept_18)
    result = export_onnx(model_file, tmp_path / "m.onnx", opset=17)
    assert tried == [17] and result.exporter == "legacy"
    proto = onnx.load(str(result.path))
    assert [op.version for op in proto.opset_import if op.domain in ("", "ai.onnx")] == [17]
    assert result.metadata["opset"] == "17"
    with pytest.raises(ValueError, match="opset 17: the dynamo exporter could not convert this "
                                         "model to it .it wrote opset 18.; use --opset 18 .opset=18., "
                                         "or --exporter legacy .exporter='legacy'."):
        export_onnx(model_file, tmp_path / "d.onnx", exporter="dynamo", opset=17)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_an_opset_the_legacy_exporter_cannot_write_is_named(model_file: Path, tmp_path: Path,
                                                            monkeypatch) -> None:
    """torch's TorchScript exporter stops at opset 20 (at 24 it failed with a traceback);
    onnx knows newer ones, which only the dynamo exporter writes."""
    import depthnas.export.onnx_export as ox
    assert ox.LEGACY_MAX_OPSET == 20
    with pytest.raises(ValueError, match="opset 24: the legacy exporter writes opsets up to 20; "
                                         "choose one of those, or --exporter dynamo .exporter='dynamo'."):
        export_onnx(model_file, tmp_path / "m.onnx", exporter="legacy", opset=24)

    def dynamo_fails(*a, **k):
        raise RuntimeError("\x1b[31munsupported op\x1b[0m\n" + "torch's internals\n" * 100)
    monkeypatch.setattr(ox, "_export_dynamo", dynamo_fails)
    with pytest.raises(ox.ExportError, match=r"dynamo ONNX exporter failed \(RuntimeError: "
                                             r"unsupported op\) and the legacy exporter, tried next "
                                             r"otherwise, writes opsets up to 20 \(`depthnas -v export"):
        export_onnx(model_file, tmp_path / "m.onnx", exporter="auto", opset=24)
    assert not list(tmp_path.iterdir())


def test_a_dynamo_failure_is_one_error_line(model_file: Path, tmp_path: Path, capsys,
                                            monkeypatch) -> None:
    """It was a 142-line traceback (a RuntimeError the CLI does not catch)."""
    import depthnas.export.onnx_export as ox

    def dynamo_fails(*a, **k):
        raise RuntimeError("Constraints violated (32*h32)!\n" + "guard\n" * 100)
    monkeypatch.setattr(ox, "_export_dynamo", dynamo_fails)
    out = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(model_file), "--out", str(out),
                 "--exporter", "dynamo"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"error: {model_file}: the dynamo ONNX exporter failed (RuntimeError: Constraints "
        "violated (32*h32)!); --exporter legacy (exporter='legacy') may work (`depthnas -v "
        "export ...` shows torch's whole error)"]
    assert not out.exists()


def test_the_example_input_lets_every_side_stay_dynamic(tmp_path: Path, monkeypatch) -> None:
    """torch.export fixes a dimension whose example size is 1: a model trained at 32 px
    (H / 32 = 1) failed the dynamo export with "Constraints violated (32*h32)!"."""
    import depthnas.export.onnx_export as ox
    from depthnas.checkpoint import save_model
    from depthnas.config import ModelConfig
    from depthnas.models import model_metadata
    from depthnas.spaces import get_space
    from fixtures_models import BACKBONE, FEATURES
    space = get_space("v1-sync")
    arch = space.parse("v1-sync:c3,skip,c1,c1,ap")
    path = save_model(tmp_path / "m.safetensors",
                      space.build_fixed(arch, backbone=BACKBONE, features=FEATURES),
                      model_metadata(space, arch, ModelConfig(backbone=BACKBONE, features=FEATURES),
                                     (32, 96)))
    shapes = []

    def dynamo(model, example, opset):
        shapes.append(tuple(example.shape))
        return ox._export_legacy(model, example, opset)
    monkeypatch.setattr(ox, "_export_dynamo", dynamo)
    export_onnx(path, tmp_path / "m.onnx")
    assert shapes == [(2, 3, 64, 96)]


def test_the_readme_s_onnxruntime_example_runs(onnx_file: Path, photos: Path, monkeypatch) -> None:
    """The README shows how to run the exported file without depthnas; it must work as
    printed (with this model and photo in place of model.onnx and photo.jpg)."""
    import re
    import shutil
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    [code] = [c for c in re.findall(r"```python\n(.*?)```", readme, re.S) if "ort.InferenceSession" in c]
    work = onnx_file.parent / "readme_example"
    work.mkdir(exist_ok=True)
    shutil.copy(onnx_file, work / "model.onnx")
    shutil.copy(photos / "coffee.jpg", work / "photo.jpg")
    monkeypatch.chdir(work)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["depth"].shape == (134, 200) and np.isfinite(scope["depth"]).all()
    assert scope["depth"].std() > 0


def test_out_must_name_an_onnx_file_and_is_checked_before_exporting(model_run: Path, tmp_path: Path,
                                                                     capsys) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    assert main(["export", "--run", str(model_run), "--out", str(folder), "--exporter", "legacy"]) == 2
    assert f"--out {folder} is a folder; name the ONNX file" in capsys.readouterr().err
    assert main(["export", "--run", str(model_run), "--out", str(tmp_path / "m.bin")]) == 2
    assert "must end in .onnx" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exports"] and not any(folder.iterdir())


def _perturbed_copy(model_file: Path, out: Path, eps: float) -> Path:
    """The model with every weight off by about `eps` (relative)."""
    from safetensors.torch import load_file, save_file
    from depthnas.checkpoint import read_metadata
    g = torch.Generator().manual_seed(1)
    weights = {k: v * (1 + eps * torch.randn(v.shape, generator=g))
               if v.is_floating_point() and "running" not in k else v
               for k, v in load_file(str(model_file)).items()}
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in read_metadata(model_file).items()}
    save_file(weights, str(out), metadata=meta)
    return out


def test_parity_flags_an_export_off_by_a_tenth_of_a_percent(onnx_file, model_file, tmp_path):
    """Weights 0.1% off move the outputs by about 8e-4 of their scale (an fp16 path, a
    stale file): --check must not call that a match; a true export is off by ~6e-7."""
    assert all(p.ok for p in check_parity(onnx_file, model_file))
    off = check_parity(onnx_file, _perturbed_copy(model_file, tmp_path / "off.safetensors", 1e-3))
    assert len(off) == 2 and not any(p.ok for p in off), [p.max_rel for p in off]
    for p in off:  # relative to the output's scale, as its name says
        assert p.max_rel == pytest.approx(p.max_abs / p.ref_max)


def test_the_output_s_dynamic_dims_are_named_as_the_input_s():
    """The dynamo exporter names dims after its symbols (`16*TruncToInt(...)`); a user's
    runtime reads batch/height/width on both sides."""
    from onnx import TensorProto, helper
    from depthnas.export.onnx_export import _name_dynamic_dims
    inp = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["s0", 3, "32*h32", "32*w32"])
    out = helper.make_tensor_value_info("inverse_depth", TensorProto.FLOAT,
                                        ["s0", 1, "16*TruncToInt(2.0*ToFloat(s39))", "32*w32"])
    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["inverse_depth"])], "g", [inp], [out])
    proto = helper.make_model(graph)
    _name_dynamic_dims(proto)
    dims = [d.dim_param or d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 1, "height", "width"]


@pytest.fixture
def fake_export(tmp_path, monkeypatch):
    """export_onnx / check_parity stood in for: what cmd_export does with their answers."""
    import depthnas.export.onnx_export as ox
    calls, parity = {}, []

    def export(model_file, out, *, arch, exporter, opset, check):
        calls.update(arch=arch, opset=opset, out=out)
        failed = ox.parity_failure(parity, out, model_file) if check else None
        if failed:  # as export_onnx: the file is checked before it is written
            raise failed
        Path(out).write_bytes(b"onnx")
        return ox.ExportResult(Path(out), "legacy", {"arch": "v1-sync:c3,c3,c3,c3,c3", "opset": str(opset)},
                               parity=tuple(parity) if check else ())
    monkeypatch.setattr(ox, "export_onnx", export)
    monkeypatch.setattr("depthnas.models.check_depth_model", lambda path: None)  # b"weights" below
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"weights")
    return model, calls, parity


@pytest.mark.parametrize("results, code", [
    ([(1e-6, 1.0), (1e-6, 1.0)], 0),
    ([(1e-2, 1.0), (1e-6, 1.0)], 1),   # the first size failed, the second passed
    ([(1e-6, 1.0), (1e-2, 1.0)], 1),
])
def test_export_check_fails_when_any_size_differs(fake_export, tmp_path, capsys, results, code):
    from depthnas.export.onnx_export import Parity
    model, _, parity = fake_export
    parity += [Parity((1, 3, 64, 64), rel, rel, ref) for rel, ref in results]
    assert main(["export", "--checkpoint", str(model), "--out", str(tmp_path / "m.onnx"), "--check"]) == code
    captured = capsys.readouterr()
    assert ("FAIL" in captured.out) == bool(code)
    said = f"differ from {model} by more than 0.0001 relative: not written\n"
    assert (said in captured.err) == bool(code)
    (tmp_path / "m.onnx").write_bytes(b"earlier")  # an earlier export: said kept, and kept
    assert main(["export", "--checkpoint", str(model), "--out", str(tmp_path / "m.onnx"), "--check"]) == code
    kept = "relative: not written (the earlier export there is kept)\n"
    assert (kept in capsys.readouterr().err) == bool(code)


def test_an_export_failing_its_check_leaves_the_earlier_export_in_place(
        model_file: Path, onnx_file: Path, tmp_path: Path, monkeypatch) -> None:
    """The new file took --out's name before --check ran: a failed check exited 1
    with the good export already gone."""
    import shutil

    import depthnas.export.onnx_export as ox
    out = tmp_path / "good.onnx"
    shutil.copy(onnx_file, out)
    good = out.read_bytes()
    monkeypatch.setattr(ox, "check_parity", lambda *a, **k: [ox.Parity((1, 3, 64, 64), 0.5, 0.5, 1.0)])
    with pytest.raises(ox.ParityError, match=r"good.onnx would differ from .* not written"):
        ox.export_onnx(model_file, out, exporter="legacy", check=True)
    assert out.read_bytes() == good and sorted(p.name for p in tmp_path.iterdir()) == ["good.onnx"]
    monkeypatch.undo()
    result = ox.export_onnx(model_file, out, exporter="legacy", check=True)
    assert len(result.parity) == 2 and all(r.ok for r in result.parity)


def test_export_check_with_zeros_everywhere_is_unproven_not_ok(fake_export, tmp_path, capsys):
    """Equal zeros prove nothing of the graph: `--check` said 'ok' and exited 0 for a
    quick-preset model whose output on the random check input was 0 everywhere."""
    from depthnas.export.onnx_export import Parity
    model, _, parity = fake_export
    parity += [Parity((1, 3, 64, 64), 0.0, 0.0, 0.0), Parity((2, 3, 96, 128), 0.0, 0.0, 0.0)]
    assert main(["export", "--checkpoint", str(model), "--out", str(tmp_path / "m.onnx"), "--check"]) == 1
    assert "error: parity unproven: " in capsys.readouterr().err
    parity[1] = Parity((2, 3, 96, 128), 0.0, 0.0, 0.5)  # one input with output compares the graph
    assert main(["export", "--checkpoint", str(model), "--out", str(tmp_path / "m.onnx"), "--check"]) == 0


def test_export_check_feeds_scenes_a_model_gives_depth_for(tmp_path, capsys):
    """On noise alone the model of a brief training outputs 0 everywhere; a rendered
    scene is what it saw in training. A model dead for every input is unproven."""
    import numpy as np
    from depthnas.export.onnx_export import _check_inputs
    x = _check_inputs((2, 3, 64, 96), np.random.default_rng(0))
    assert x.shape == (2, 3, 64, 96) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert not torch.equal(x[0], x[1])
    from fixtures_models import make_model_file
    dead = make_model_file(tmp_path / "dead.safetensors", dead_head=True)
    assert main(["export", "--checkpoint", str(dead), "--out", str(tmp_path / "d.onnx"), "--check",
                 "--exporter", "legacy"]) == 1
    err = capsys.readouterr().err
    assert f"{dead} outputs 0 everywhere for every check input" in err and "d.onnx is written" in err


def test_export_passes_the_opset_and_arch_asked_for_and_takes_an_upper_case_suffix(
        fake_export, tmp_path, capsys):
    model, calls, _ = fake_export
    out = tmp_path / "M.ONNX"  # predict and the demo read the suffix case-blind too
    assert main(["export", "--checkpoint", str(model), "--out", str(out), "--opset", "17",
                 "--arch", "v1-sync:c3,c3,c3,c3,c3"]) == 0
    assert calls == {"arch": "v1-sync:c3,c3,c3,c3,c3", "opset": 17, "out": out}
    assert "opset 17" in capsys.readouterr().out


def test_export_takes_the_model_as_a_positional_as_well(fake_export, tmp_path, capsys):
    """`depthnas export runs/x` stood for nothing: argparse asked for --run or
    --checkpoint. One source still: with either flag as well it is refused."""
    model, calls, _ = fake_export
    out = tmp_path / "m.onnx"
    assert main(["export", str(model), "--out", str(out)]) == 0
    assert calls["out"] == out and out.read_bytes() == b"onnx"
    for argv in (["export", str(model), "--checkpoint", str(model)], ["export", str(model), "--run", str(model)],
                 ["export"]):
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("not allowed with argument") == 2 and "one of the arguments" in err


def test_export_and_evaluate_take_the_model_as_model_as_predict_and_the_demo_do(fake_export,
                                                                               tmp_path, capsys):
    """predict and demo take --model; export and evaluate refused it (unrecognized
    arguments), wanting --checkpoint."""
    from depthnas.cli import build_parser
    model, calls, _ = fake_export
    out = tmp_path / "m.onnx"
    assert main(["export", "--model", str(model), "--out", str(out)]) == 0
    assert calls["out"] == out
    args = build_parser().parse_args(["evaluate", "--model", str(model)])
    assert args.checkpoint == str(model)


def test_export_writes_over_its_own_earlier_file_but_not_over_another(
        model_file: Path, onnx_file: Path, tmp_path: Path, capsys) -> None:
    """A file of the user's named as --out was replaced without a word, as predict
    never replaces a depth map it did not write. Exporting again over an export is
    the usual loop, and is said."""
    import shutil
    mine = tmp_path / "precious.onnx"
    mine.write_text("my precious")
    other = tmp_path / "other.onnx"  # a valid ONNX model, not made by depthnas
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    onnx.save_model(onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])), str(other))
    kept = other.read_bytes()
    for path in (mine, other):
        assert main(["export", str(model_file), "--out", str(path), "--exporter", "legacy"]) == 2
        assert (f"error: --out {path} exists and is not a depthnas export: not overwritten; "
                "delete it, or export to another --out") in capsys.readouterr().err
    assert mine.read_text() == "my precious" and other.read_bytes() == kept
    earlier = Path(shutil.copy(onnx_file, tmp_path / "model.onnx"))
    arch = {p.key: p.value for p in onnx.load(str(earlier)).metadata_props}["arch"]
    assert main(["export", str(model_file), "--out", str(earlier), "--exporter", "legacy"]) == 0
    assert f"note: replaced {earlier}, an earlier export ({arch})" in capsys.readouterr().out


def test_export_refuses_opset_0_as_it_does_16(tmp_path, capsys):
    """`--opset 0` was read as "not given": the default opset was written, exit 0."""
    from fixtures_models import make_model_file
    model = make_model_file(tmp_path / "m.safetensors")
    for opset in (0, 16):
        assert main(["export", "--checkpoint", str(model), "--out", str(tmp_path / "m.onnx"),
                     "--opset", str(opset)]) == 2
        assert f"opset {opset} is too old; use 17 or newer" in capsys.readouterr().err


def test_an_unknown_exporter_is_refused_not_read_as_legacy(model_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown exporter 'Dynamo'; use one of auto, dynamo, legacy"):
        export_onnx(model_file, tmp_path / "m.onnx", exporter="Dynamo")
    assert not (tmp_path / "m.onnx").exists()


def test_an_opset_one_past_what_onnx_knows_is_named(model_file: Path, tmp_path: Path, monkeypatch) -> None:
    """The refusal is at the first opset onnx lacks, not only at a far one (99): one
    past it reached the exporters and came back as an export failure."""
    import depthnas.export.onnx_export as ox

    def dynamo_fails(*a, **k):
        raise RuntimeError("unsupported opset")
    monkeypatch.setattr(ox, "_export_dynamo", dynamo_fails)  # a real one costs ~30 s
    newest = onnx.defs.onnx_opset_version()
    with pytest.raises(ValueError, match=f"opset {newest + 1} is newer than this onnx package knows"):
        export_onnx(model_file, tmp_path / "m.onnx", opset=newest + 1)
    assert not list(tmp_path.iterdir())


def test_the_legacy_exporter_writes_its_newest_opset(model_file: Path, tmp_path: Path) -> None:
    """`--exporter legacy` takes opsets up to LEGACY_MAX_OPSET (20) inclusive."""
    import depthnas.export.onnx_export as ox
    result = export_onnx(model_file, tmp_path / "m.onnx", exporter="legacy", opset=ox.LEGACY_MAX_OPSET)
    assert result.exporter == "legacy" and result.metadata["opset"] == str(ox.LEGACY_MAX_OPSET)
    proto = onnx.load(str(result.path))
    assert [op.version for op in proto.opset_import if op.domain in ("", "ai.onnx")] == [ox.LEGACY_MAX_OPSET]


def test_a_dynamo_failure_at_the_legacy_exporter_s_newest_opset_suggests_it(
        model_file: Path, tmp_path: Path, monkeypatch) -> None:
    """At opset 20 the legacy exporter is an option: the message says so, and does not
    claim it writes opsets only below the one asked for."""
    import depthnas.export.onnx_export as ox

    def dynamo_fails(*a, **k):
        raise RuntimeError("unsupported op")
    monkeypatch.setattr(ox, "_export_dynamo", dynamo_fails)
    with pytest.raises(ox.ExportError, match=r"failed \(RuntimeError: unsupported op\); "
                                             r"--exporter legacy \(exporter='legacy'\) may work"):
        export_onnx(model_file, tmp_path / "m.onnx", exporter="dynamo", opset=ox.LEGACY_MAX_OPSET)


def test_auto_above_the_legacy_opsets_does_not_fall_back_when_dynamo_wrote_another_opset(
        model_file: Path, tmp_path: Path, monkeypatch) -> None:
    """`auto` at an opset only the dynamo exporter writes (21): a conversion that failed
    is named (use --opset 18), not handed to the legacy exporter, which cannot write 21."""
    import depthnas.export.onnx_export as ox
    legacy = []
    real_legacy = ox._export_legacy

    def spy_legacy(model, example, opset):
        legacy.append(opset)
        return real_legacy(model, example, opset)
    monkeypatch.setattr(ox, "_export_dynamo", lambda model, example, opset: real_legacy(model, example, 18))
    monkeypatch.setattr(ox, "_export_legacy", spy_legacy)
    opset = ox.LEGACY_MAX_OPSET + 1
    with pytest.raises(ValueError, match=rf"opset {opset}: the dynamo exporter could not convert this "
                                         r"model to it \(it wrote opset 18\); use --opset 18 \(opset=18\)$"):
        export_onnx(model_file, tmp_path / "m.onnx", exporter="auto", opset=opset)
    assert legacy == [] and not list(tmp_path.iterdir())


def test_a_dynamo_file_is_marked_with_the_lowest_ir_version_its_opset_needs(
        model_file: Path, tmp_path: Path, monkeypatch) -> None:
    """torch's dynamo exporter marks IR 10; an opset-18 graph needs IR 8, what
    onnxruntime 1.14-1.17 reads (the fast stand-in for test_dynamo_exporter's check)."""
    import depthnas.export.onnx_export as ox

    def dynamo_marks_ir_10(model, example, opset):
        proto = ox._export_legacy(model, example, opset)
        proto.ir_version = 10
        return proto
    monkeypatch.setattr(ox, "_export_dynamo", dynamo_marks_ir_10)
    result = export_onnx(model_file, tmp_path / "m.onnx", exporter="dynamo")
    proto = onnx.load(str(result.path))
    assert result.exporter == "dynamo" and not proto.functions
    assert proto.ir_version == 8


def test_parity_checks_another_batch_and_size_by_default(onnx_file: Path, model_file: Path) -> None:
    """--check's second input has another batch and aspect ratio than the first: two
    alike would pass a file whose axes are fixed at the training size."""
    shapes = [r.shape for r in check_parity(onnx_file, model_file)]
    assert len(shapes) == 2
    (b1, _, h1, w1), (b2, _, h2, w2) = shapes
    assert b1 != b2 and (h1, w1) != (h2, w2) and h2 * w1 != h1 * w2
    assert h2 % 32 and w2 % 32  # the graph's pad to multiples of 32, and its crop back


def test_an_all_zero_reference_does_not_match_a_non_zero_export(onnx_file: Path, model_file: Path,
                                                                monkeypatch) -> None:
    """PyTorch all zeros (a head ending in a ReLU) and ONNX not: that is no match."""
    import depthnas.export.onnx_export as ox
    real = ox.load_for_export

    def zero_model(path, arch=None):
        _, meta, p = real(path, arch)
        return (lambda x: torch.zeros(x.shape[0], 1, *x.shape[2:])), meta, p
    monkeypatch.setattr(ox, "load_for_export", zero_model)
    results = check_parity(onnx_file, model_file)
    assert all(r.ref_max == 0 and r.max_abs > 0 for r in results)
    assert not any(r.ok for r in results), results


def test_parity_is_judged_relative_to_the_output_s_scale() -> None:
    """An output of scale 1000 off by 1e-3 is a match (6e-7 is float32 rounding there);
    one of scale 0.01 off by 1e-5 is not."""
    assert Parity((1, 3, 64, 64), max_abs=1e-3, max_rel=1e-6, ref_max=1000.0).ok
    assert not Parity((1, 3, 64, 64), max_abs=1e-5, max_rel=1e-3, ref_max=0.01).ok


def test_a_classification_model_file_without_its_model_settings_is_refused_not_rebuilt_from_defaults(
        tmp_path: Path) -> None:
    """Its cells' settings are not the decoder's fields: rebuilt from ModelConfig's
    defaults, a model trained at them would load as if nothing were missing."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
    from depthnas.checkpoint import save_model
    from depthnas.config import ModelConfig
    from depthnas.models import load_model, model_metadata
    from depthnas.spaces import get_space
    space = get_space("nb201")
    arch = space.make([0] * len(space.gene_choices()))
    meta = model_metadata(space, arch, ModelConfig(), (32, 32), task="classification")
    path = save_model(tmp_path / "cls.safetensors", space.build_fixed(arch, **meta["model"]), meta)
    load_model(path)  # as written: fine
    with safe_open(str(path), "pt") as fh:
        stored = fh.metadata()
    bad = tmp_path / "bad.safetensors"
    save_file(load_file(str(path)), str(bad), metadata={k: v for k, v in stored.items() if k != "model"})
    with pytest.raises(ValueError, match=r"bad.safetensors: a nb201 model file needs its 'model' settings"):
        load_model(bad)


@pytest.mark.parametrize("size, says", [(None, r"metadata image_size None is not \[H, W\]"),
                                        ("[70, 70]", r"metadata image_size \[70, 70\] is not a size "
                                                     r"the network takes")])
def test_a_model_file_without_a_usable_image_size_is_named_by_export(model_file: Path, tmp_path: Path,
                                                                     capsys, size, says) -> None:
    """A file re-saved without image_size: export died in a KeyError traceback (predict
    named it); at 70 x 70 in a torch error about the input's shape."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
    with safe_open(str(model_file), "pt") as fh:
        meta = {k: v for k, v in fh.metadata().items() if k != "image_size"}
    if size is not None:
        meta["image_size"] = size
    bad = tmp_path / "nosize.safetensors"
    save_file(load_file(str(model_file)), str(bad), metadata=meta)
    assert main(["export", str(bad), "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert re.search(says, err) and str(bad) in err and "Traceback" not in err


def test_parity_names_a_model_that_outputs_nan_itself(onnx_file, model_file, tmp_path):
    """A NaN weight: both backends output NaN, and --check said the ONNX file "differs
    from" the model (max abs nan, relative inf), blaming the export."""
    from safetensors.torch import load_file, save_file
    from safetensors import safe_open
    with safe_open(str(model_file), "pt") as fh:
        meta = fh.metadata()
    tensors = load_file(str(model_file))
    head = next(k for k in tensors if k.startswith("head") and k.endswith("weight"))
    tensors[head].view(-1)[0] = float("nan")
    bad = tmp_path / "nan.safetensors"
    save_file(tensors, str(bad), metadata=meta)
    with pytest.raises(ValueError, match=r"nan.safetensors: the model itself outputs NaN or inf"):
        check_parity(onnx_file, bad)
