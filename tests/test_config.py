from __future__ import annotations

import pytest

from telugu_codec.config import Config, from_dict, list_presets, load_config, to_dict, to_yaml
from telugu_codec.errors import ConfigError


def test_defaults_roundtrip_through_yaml():
    import yaml

    cfg = Config()
    again = from_dict(yaml.safe_load(to_yaml(cfg)))
    assert again == cfg


def test_dotted_override_sets_nested_value_with_type():
    cfg = load_config(None, ["model.encoder.channels=48", "model.strides=[4,4,5,4]"])
    assert cfg.model.encoder.channels == 48
    assert cfg.model.strides == (4, 4, 5, 4)
    assert cfg.model.decoder.channels == Config().model.decoder.channels


def test_unknown_key_is_an_error_naming_the_key():
    with pytest.raises(ConfigError, match="model.encoder.chanels"):
        load_config(None, ["model.encoder.chanels=3"])


def test_wrong_type_is_an_error():
    with pytest.raises(ConfigError, match="integer"):
        load_config(None, ["model.encoder.channels=abc"])
    with pytest.raises(ConfigError, match="true/false"):
        load_config(None, ["model.causal=maybe"])


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError, match="presets:"):
        load_config("no-such-preset")


def test_every_preset_loads_and_names_itself():
    names = list_presets()
    assert "default" in names
    for name in names:
        cfg = load_config(name)
        assert cfg.name == name


def test_yaml_file_with_base(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("base: default\nmodel:\n  latent_dim: 32\n")
    cfg = load_config(p)
    assert cfg.model.latent_dim == 32
    assert cfg.name == "mine"
    assert to_dict(cfg)["model"]["latent_dim"] == 32
