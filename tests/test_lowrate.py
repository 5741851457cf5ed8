"""Issue 25: low frame rates, the split quantizer, teacher targets and distillation."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from telugu_codec.config import QuantizerConfig, TeacherConfig, load_config
from telugu_codec.data.teachers import IGNORE, features_at, load_teacher, phones_at
from telugu_codec.errors import CodecError
from telugu_codec.evaluation.tokens import code_stats, phone_probe
from telugu_codec.losses.distill import cosine_distill_loss, phone_distill_loss
from telugu_codec.model.codec import build_codec
from telugu_codec.model.quantizer import SplitQuantizer, build_quantizer

from .conftest import TINY_OVERRIDES, speechlike
from .test_trainer import make_trainer

SR = 16000


# ------------------------------------------------------------------------------ frame rates
@pytest.mark.parametrize(
    "preset, rate", [("tiny-sf", 50.0), ("tiny-25hz", 25.0), ("tiny-12hz", 12.5)]
)
def test_frame_counts_are_right_at_each_rate(preset, rate):
    codec = build_codec(load_config(preset)).eval()
    hop = int(SR / rate)
    assert codec.frame_rate == rate and codec.hop_length == hop
    for t in (1, hop - 1, hop, hop + 1, 3 * hop + 7):
        x = 0.1 * torch.randn(1, 1, t)
        with torch.no_grad():
            out = codec(x)
        codes, _ = codec.encode_codes(x)
        assert codes.shape[-1] == out.codes.shape[-1] == -(-t // hop), (preset, t)
        assert out.audio.shape[-1] == t
    enc = codec.encode(speechlike(0.7), SR)
    assert enc.frames == -(-int(0.7 * SR) // hop)
    assert codec.decode(enc).shape[-1] == int(0.7 * SR)


def test_low_rate_presets_reach_their_bitrates():
    assert build_codec(load_config("tiny-12hz")).bitrate(8) == pytest.approx(1100.0)
    assert build_codec(load_config("tiny-25hz")).bitrate(3) == pytest.approx(950.0)


# ------------------------------------------------------------------------------ split RVQ
def _split(kind: str = "ema") -> SplitQuantizer:
    cfg = QuantizerConfig(kind=kind, n_q=4, codebook_size=16, kmeans_iters=2, init_vectors=1.0)
    q = build_quantizer(8, dataclass_replace(cfg, split_first=True))
    assert isinstance(q, SplitQuantizer)
    return q


def dataclass_replace(cfg, **kw):
    import dataclasses

    return dataclasses.replace(cfg, **kw)


@pytest.mark.parametrize("kind", ["ema", "factorized", "fsq"])
def test_split_quantizer_round_trip(kind):
    q = _split(kind)
    x = torch.randn(3, 8, 40)
    q.train()
    for _ in range(3):  # past the k-means warm-up
        q(x)
    q.eval()
    with torch.no_grad():
        out = q(x)
        codes = q.encode(x)
    assert codes.shape == (3, 4, 40) and torch.equal(codes, out.codes)
    assert torch.allclose(q.decode(codes), out.quantized.float(), atol=1e-5)
    # fewer codebooks decode too: codebook 1 alone is the first part's output
    with torch.no_grad():
        one = q(x, n_q=1)
    assert torch.allclose(q.decode(codes[:, :1]), one.quantized.float(), atol=1e-5)
    assert torch.allclose(one.first, one.quantized)
    assert len(q.num_codes) == 4 and len(q.dead_codes()) == 4


def test_split_quantizer_codebook_one_is_independent_of_the_rest():
    """Mimi's point: codebook 1 is not the first stage of the acoustic residual chain, so the
    acoustic codes do not change when codebook 1's projection does."""
    q = _split()
    x = torch.randn(2, 8, 30)
    q.train()
    for _ in range(3):
        q(x)
    q.eval()
    before = q.encode(x)
    with torch.no_grad():
        q.in_first.weight.mul_(-1.0)
    after = q.encode(x)
    assert torch.equal(before[:, 1:], after[:, 1:])


def test_split_quantizer_training_state_round_trips():
    q = _split()
    q.train()
    q(torch.randn(2, 8, 30))
    state = q.training_state()
    assert state and all(k.startswith(("first.", "rest.")) for k in state)
    fresh = _split()
    fresh.load_training_state(state)
    assert fresh.training_state().keys() == state.keys()


def test_first_codebook_output_passes_gradients_straight_through():
    q = build_quantizer(8, QuantizerConfig(n_q=3, codebook_size=16, init_vectors=0.0))
    x = torch.randn(2, 8, 20, requires_grad=True)
    q.train()
    out = q(x)
    out.first.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))
    assert torch.allclose(out.first, q.decode(out.codes[:, :1]), atol=1e-6)


# ------------------------------------------------------------------------------ teachers
def test_phone_label_frames_match_their_segments():
    ends = np.array([0.10, 0.25, 0.31, 0.60])
    ids = np.array([3, 1, 4, 1])
    hop_s = 0.02
    times = (np.arange(35) + 0.5) * hop_s
    labels = phones_at(ends, ids, times)
    starts = np.concatenate([[0.0], ends[:-1]])
    for t, lab in zip(times, labels):
        inside = [i for i in range(4) if starts[i] <= t < ends[i]]
        assert lab == (ids[inside[0]] if inside else IGNORE), t
    assert phones_at(ends, ids, np.array([-0.01]))[0] == IGNORE


def test_features_are_resampled_to_the_codec_rate():
    rate = 50.0
    feats = np.stack([np.arange(100.0), 2 * np.arange(100.0)], axis=1)  # linear in time
    times = (np.arange(20) + 0.5) / 12.5  # 12.5 Hz frame centres
    out, valid = features_at(feats, rate, times)
    expected = times * rate - 0.5  # teacher frame i is centred at (i + 0.5) / rate
    assert valid.all()
    np.testing.assert_allclose(out[:, 0], expected, atol=1e-4)
    np.testing.assert_allclose(out[:, 1], 2 * expected, atol=1e-4)


def _phone_corpus(tmp_path, end_offset: float = 0.0, missing: bool = False):
    """Three 1 s files and a manifest of phones; file 0's end shifted by `end_offset`."""
    rows = []
    for i in range(3):
        sf.write(tmp_path / f"u{i}.wav", speechlike(1.0, seed=i), SR)
        phones = [[0.2, "pau"], [0.5, "a"], [0.7, "k"], [1.0 + (end_offset if i == 0 else 0), "a"]]
        rows.append([f"u{i}.wav", "" if (missing and i == 1) else json.dumps(phones)])
    with open(tmp_path / "manifest.tsv", "w", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["path", "phones"])
        w.writerows(rows)
    paths = [str((tmp_path / f"u{i}.wav").resolve()) for i in range(3)]
    return paths, [1.0, 1.0, 1.0]


def test_phone_teacher_reads_the_manifest(tmp_path):
    paths, durs = _phone_corpus(tmp_path)
    t = load_teacher(TeacherConfig(path=str(tmp_path / "manifest.tsv"), dim=8), paths, durs)
    assert t.phones == ["a", "k", "pau"]
    ids, valid = t.targets(paths[0], np.array([0.1, 0.3, 0.6, 0.9, 1.2]))
    assert ids.tolist() == [2, 0, 1, 0, IGNORE] and valid.tolist() == [1, 1, 1, 1, 0]


@pytest.mark.parametrize("problem", ["misaligned", "missing"])
def test_bad_phone_teacher_is_one_line_error_or_logged_skip(tmp_path, problem):
    paths, durs = _phone_corpus(
        tmp_path, end_offset=0.5 if problem == "misaligned" else 0.0, missing=problem == "missing"
    )
    bad = paths[0] if problem == "misaligned" else paths[1]
    manifest = str(tmp_path / "manifest.tsv")
    with pytest.raises(CodecError) as e:
        load_teacher(TeacherConfig(path=manifest, dim=8), paths, durs)
    assert "\n" not in str(e.value) and bad in str(e.value) and "on_mismatch=skip" in str(e.value)
    logged = []
    t = load_teacher(
        TeacherConfig(path=manifest, dim=8, on_mismatch="skip"), paths, durs, logged.append
    )
    assert list(t.skipped) == [bad] and len(logged) == 1 and "skipped" in logged[0]
    assert not t.has(bad) and all(t.has(p) for p in paths if p != bad)
    assert not t.targets(bad, np.array([0.5]))[1].any()


def test_too_small_phone_projection_is_an_error(tmp_path):
    paths, durs = _phone_corpus(tmp_path)
    with pytest.raises(CodecError, match="loss.teacher.dim=3"):
        load_teacher(TeacherConfig(path=str(tmp_path / "manifest.tsv"), dim=2), paths, durs)


def _feature_teacher(tmp_path, frames: list[int], dim: int = 4, declared_dim: int = 4):
    folder = tmp_path / "teacher"
    folder.mkdir()
    (folder / "teacher.json").write_text(json.dumps({"frame_rate": 50, "dim": declared_dim}))
    paths = []
    for i, n in enumerate(frames):
        sf.write(tmp_path / f"f{i}.wav", speechlike(1.0, seed=i), SR)
        paths.append(str((tmp_path / f"f{i}.wav").resolve()))
        if n:
            np.save(folder / f"f{i}.npy", np.ones((n, dim), np.float32))
    return folder, paths


@pytest.mark.parametrize(
    "frames, why", [([50, 40], "frames at 50/s"), ([50, 0], "no teacher file")]
)
def test_bad_feature_teacher_is_one_line_error_or_logged_skip(tmp_path, frames, why):
    folder, paths = _feature_teacher(tmp_path, frames)
    cfg = TeacherConfig(kind="features", path=str(folder), dim=4)
    with pytest.raises(CodecError, match=why) as e:
        load_teacher(cfg, paths, [1.0, 1.0])
    assert "\n" not in str(e.value)
    logged = []
    cfg = TeacherConfig(kind="features", path=str(folder), dim=4, on_mismatch="skip")
    t = load_teacher(cfg, paths, [1.0, 1.0], logged.append)
    assert list(t.skipped) == [paths[1]] and t.has(paths[0]) and len(logged) == 1


def test_feature_teacher_dimension_must_match(tmp_path):
    folder, paths = _feature_teacher(tmp_path, [50, 50], declared_dim=6)
    with pytest.raises(CodecError, match="loss.teacher.dim=6"):
        load_teacher(TeacherConfig(kind="features", path=str(folder), dim=4), paths, [1, 1])


# ------------------------------------------------------------------------------ losses
def test_cosine_distillation_is_zero_when_the_student_equals_the_teacher():
    target = torch.randn(2, 7, 5)  # (B, F, C)
    pred = target.transpose(1, 2).clone()  # (B, C, F)
    assert float(cosine_distill_loss(pred, target)) == pytest.approx(0.0, abs=1e-6)
    assert float(cosine_distill_loss(-pred, target)) == pytest.approx(2.0, abs=1e-5)
    valid = torch.zeros(2, 7, dtype=torch.bool)
    valid[:, :3] = True
    pred2 = pred.clone()
    pred2[..., 3:] = -pred2[..., 3:]  # wrong only where there is no teacher
    assert float(cosine_distill_loss(pred2, target, valid)) == pytest.approx(0.0, abs=1e-6)


def test_phone_distillation_is_minimal_on_the_right_phones():
    target = torch.tensor([[0, 2, 1, IGNORE]])
    right = torch.nn.functional.one_hot(target.clamp_min(0), 3).float().transpose(1, 2) * 50
    wrong = right.roll(1, dims=1)
    assert float(phone_distill_loss(right, target)) < 1e-6
    assert float(phone_distill_loss(wrong, target)) > 10
    none = torch.full((1, 4), IGNORE)
    logits = torch.randn(1, 3, 4, requires_grad=True)
    loss = phone_distill_loss(logits, none)
    loss.backward()
    assert float(loss) == 0.0 and logits.grad is not None


# ------------------------------------------------------------------------------ training
def _train_manifest(data_dir, tmp_path, shift: float = 0.0):
    rows = []
    for p in sorted(data_dir.glob("*.wav")):
        dur = sf.info(str(p)).duration
        phones = [[0.3, "a"], [0.6, "b"], [round(dur + shift, 3), "c"]]
        rows.append([str(p), json.dumps(phones)])
    path = tmp_path / "phones.tsv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["path", "phones"])
        w.writerows(rows)
    return path


def test_training_with_distillation_logs_and_lowers_the_teacher_loss(tmp_path, data_dir):
    manifest = _train_manifest(data_dir, tmp_path)
    t = make_trainer(
        tmp_path / "run",
        data_dir,
        "model.quantizer.split_first=true",
        "loss.distill=5.0",
        f"loss.teacher.path={manifest}",
        "loss.teacher.dim=4",
        "model.quantizer.init_vectors=0.0",
        "discriminator.kinds=[]",
    )
    assert t.codec.distill_head is not None
    losses = [t.train_step([t_batch])["loss/distill"] for t_batch in _batches(t, 12)]
    assert all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < np.mean(losses[:3])


def _batches(trainer, n):
    it = trainer.feed.batches()
    return [next(it) for _ in range(n)]


def test_training_refuses_a_misaligned_teacher_in_one_line(tmp_path, data_dir):
    manifest = _train_manifest(data_dir, tmp_path, shift=0.5)
    with pytest.raises(CodecError) as e:
        make_trainer(
            tmp_path / "run", data_dir, "loss.distill=1.0", f"loss.teacher.path={manifest}"
        )
    assert "\n" not in str(e.value) and "phones end at" in str(e.value)


def test_distillation_off_by_default_adds_nothing(tiny_config):
    codec = build_codec(tiny_config)
    assert codec.distill_head is None
    assert not any(k.startswith("distill_head") for k in codec.state_dict())
    cfg = load_config(None, TINY_OVERRIDES + ["loss.distill=1", "loss.teacher.path=x.tsv"])
    assert build_codec(cfg).distill_head is not None


# ------------------------------------------------------------------------------ measures
def test_phone_probe_reads_phones_from_informative_ids_only():
    rng = np.random.default_rng(0)
    phones = [rng.integers(0, 5, 200) for _ in range(4)]
    informative = [p * 3 + rng.integers(0, 3, 200) for p in phones]  # id determines phone
    good = phone_probe(informative[:2], phones[:2], informative[2:], phones[2:], 16, 5)
    assert good.accuracy == 1.0 and good.chance < 0.4
    noise = [rng.integers(0, 16, 200) for _ in range(4)]
    bad = phone_probe(noise[:2], phones[:2], noise[2:], phones[2:], 16, 5)
    assert bad.accuracy < 0.45


def test_code_stats_entropy_and_usage():
    s = code_stats(np.arange(8).repeat(3), 16)
    assert s.usage == 0.5 and s.entropy_bits == pytest.approx(3.0) and s.perplexity == 8.0
