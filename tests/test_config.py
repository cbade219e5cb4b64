"""Config: dataclass defaults < preset < YAML < CLI flags."""
import pytest

from depthnas import config as C
from depthnas.cli import build_config, build_parser


def test_layering_order(tmp_path):
    yml = tmp_path / "c.yaml"
    yml.write_text("space: v2-sync\nsupernet:\n  epochs: 7\ndata:\n  image_size: [96, 128]\n")
    args = build_parser().parse_args(["search", "--preset", "quick", "--config", str(yml),
                                      "--epochs", "9", "--set", "search.population=11",
                                      "--no-landmarks"])
    cfg = build_config(args)
    assert cfg.model.backbone == "mobilenetv3_small_050"    # preset
    assert cfg.space == "v2-sync" and cfg.data.image_size == (96, 128)  # YAML
    assert cfg.supernet.epochs == 9                          # CLI beats YAML
    assert cfg.search.population == 11 and cfg.landmarks.enabled is False


def test_yaml_round_trip(tmp_path):
    cfg = C.load(preset="quick")
    C.dump(cfg, tmp_path / "config.yaml")
    assert C.load(tmp_path / "config.yaml") == cfg


def test_errors_name_the_key():
    with pytest.raises(C.ConfigError, match="unknown config key 'supernet.epoch'"):
        C.apply_dotted(C.Config(), ["supernet.epoch=3"])
    with pytest.raises(C.ConfigError, match="supernet.epochs: expected int"):
        C.apply_dotted(C.Config(), ["supernet.epochs=many"])
    with pytest.raises(C.ConfigError, match="unknown preset 'huge'"):
        C.load(preset="huge")
    with pytest.raises(C.ConfigError, match="config file not found"):
        C.load("/nonexistent.yaml")


def test_image_size_forms():
    cfg = C.apply_dotted(C.Config(), ["data.image_size=128"])
    assert cfg.data.image_size == (128, 128)
    args = build_parser().parse_args(["search", "--image-size", "96x160"])
    assert build_config(args).data.image_size == (96, 160)
