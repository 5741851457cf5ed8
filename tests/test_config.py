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


@pytest.mark.parametrize(
    "override",
    [
        "train.val_every=0",
        "train.ckpt_every=0",
        "model.quantizer.codebook_size=0",
        "model.quantizer.n_q=0",
        "train.g_optim.lr=nan",
        "train.d_optim.lr=inf",
        "train.g_optim.lr=-1e-4",
        "train.grad_accum=0",
        "train.log_every=0",
        "train.keep_last=0",
        "train.seed=-1",
        "data.batch_size=0",
        "data.segment_seconds=0",
        "data.val_max_files=0",  # a validation of nothing looked healthy (issue 14, case 10)
        "data.max_bad_fraction=1.5",
        "model.quantizer.dropout=-0.1",
        "model.quantizer.kind=vq",
        "model.decoder.kind=hifigan",
        "model.strides=[2,0]",
        "model.sample_rate=0",
        "train.g_optim.schedule=linear",
        "train.g_optim.betas=[0.8,1.5]",
        "train.precision=fp8",
        "train.guard.action=explode",
        "train.guard.lr_factor=0",
        "train.best_metric=snr",
        "loss.adversarial=wgan",
        "loss.mel=-1",
        "discriminator.kinds=[mpd,xyz]",
        "discriminator.mrd.bands=[[0.5,0.2]]",
        "loss.mel_loss.n_mels=[5,10]",
        "model.encoder.stage_dilations=[[1],[1]]",
        "train.guard.max_amplitude=0.1",
    ],
)
def test_out_of_range_values_are_refused_at_load_naming_the_key(override):
    key = override.split("=")[0]
    if key == "train.guard.max_amplitude":
        key = "max_amplitude"
    with pytest.raises(ConfigError, match=key.replace(".", r"\.").replace("[", r"\[")):
        load_config(None, [override])


def test_every_config_field_has_a_range_rule():
    """A new config field must say what values it takes (config_checks.RULES)."""
    import dataclasses

    from telugu_codec.config_checks import rule_for

    missing, todo = [], [Config]
    while todo:
        cls = todo.pop()
        for f in dataclasses.fields(cls):
            if rule_for(cls, f.name) is None:
                missing.append(f"{cls.__name__}.{f.name}")
            default = (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            )
            if dataclasses.is_dataclass(default):
                todo.append(type(default))
    assert missing == []


def test_a_config_that_is_not_a_mapping_is_refused():
    for data in ("just a string", [1, 2], 3):
        with pytest.raises(ConfigError, match="mapping"):
            from_dict(data)
