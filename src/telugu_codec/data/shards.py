"""WebDataset tar shards, streamed: no extraction, no random access, no start-up probe.

A shard is a plain tar file whose members are grouped by key (WebDataset layout): ``KEY.flac``
(any audio extension) and optionally ``KEY.json`` with ``speaker``, ``duration``, ``split`` and
``source`` (the original relative path; `prepare` writes it). Shards are named with brace ranges
(``'shards/train-{000000..000099}.tar'``), globs, a folder of ``.tar`` files or one file; an
``index.json`` next to them (`prepare` writes it) gives file counts and hours without reading.

How an epoch is read (`ShardStream`):

- the shard order of each epoch is a permutation drawn from (seed, epoch, source); loader slot
  ``rank * num_workers + worker`` of ``world_size * num_workers`` takes every slots-th shard of
  it, so every member is read by exactly one worker of one rank per epoch (with fewer shards
  than slots, every slot reads every shard and keeps every slots-th member instead);
- each worker reads its shards one after the other, sequentially, and shuffles the members in
  a buffer of ``data.shuffle_buffer``; every worker runs through its own epochs without end;
- members held out for validation (a ``val`` split label, or the same path / speaker hash as a
  folder split, on the ``source`` path when present) are skipped; a shard that cannot be read
  to its end, a member without audio and audio that cannot be decoded are skipped and counted;
- a crop is `TrainDataset.crop` with the member's key hash as its index: a function of
  (seed, epoch, key), whichever worker reads it.

Resume: each sample carries its worker's epoch and how many of that worker's shards of the
epoch were used up (every member taken out of the buffer); the checkpoint keeps that for every
slot. A resumed run with the same processes and workers starts each worker after its used-up
shards, so nothing is skipped and at most a buffer plus a shard per worker is seen twice; with
another process or worker count every worker starts its source's oldest recorded epoch again.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import re
import tarfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..audio import AUDIO_EXTENSIONS
from ..config import DataConfig
from ..errors import CodecError
from .corpora import AudioItem
from .datasets import TrainDataset
from .scan import ScanEntry
from .sources import READ_ERRORS, AudioSource, SourceValDataset, header_length
from .split import EXCLUDED_SPLITS, VAL_SPLITS, _hash01

SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")
INDEX_NAME = "index.json"
AUDIO_EXTS = tuple(e.lstrip(".") for e in AUDIO_EXTENSIONS)
SHARD_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error)
_BRACE = re.compile(r"\{([^{}]*)\}")


# ------------------------------------------------------------------------------ naming shards
def expand_braces(spec: str) -> list[str]:
    """``a-{000..002}.tar`` -> a-000.tar, a-001.tar, a-002.tar; ``{x,y}`` -> x, y (nested:
    left to right). Zero padding follows the range's first bound."""
    m = _BRACE.search(spec)
    if m is None:
        return [spec]
    body = m.group(1)
    rng = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if rng:
        a, b = rng.group(1), rng.group(2)
        width = len(a) if a.startswith("0") else 0
        step = 1 if int(b) >= int(a) else -1
        options = [str(i).zfill(width) for i in range(int(a), int(b) + step, step)]
    else:
        options = body.split(",")
    head, tail = spec[: m.start()], spec[m.end() :]
    return [s for o in options for s in expand_braces(head + o + tail)]


def is_shard_spec(spec: str | Path) -> bool:
    """True for a brace pattern or glob of tar files, a tar file, or a folder holding tars."""
    text = str(spec)
    if text.endswith(SHARD_SUFFIXES) and ("{" in text or any(c in text for c in "*?[")):
        return True
    path = Path(text).expanduser()
    if path.is_file():
        return text.endswith(SHARD_SUFFIXES)
    return path.is_dir() and any(path.glob("*.tar"))


def list_shards(spec: str | Path) -> list[Path]:
    """The shard files a spec names, in order.

    Raises:
        CodecError: nothing matches, or a named shard does not exist.
    """
    text = str(spec)
    text = str(Path(text).expanduser()) if text.startswith("~") else text
    path = Path(text)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.name.endswith(SHARD_SUFFIXES))
    else:
        files = []
        for name in expand_braces(text):
            if any(c in name for c in "*?["):
                files += sorted(Path(p) for p in glob.glob(name))
            else:
                files.append(Path(name))
        missing = [p for p in files if not p.is_file()]
        if missing:
            raise CodecError(
                f"{len(missing)} of {len(files)} shards of {spec} do not exist (e.g. {missing[0]})"
            )
    if not files:
        raise CodecError(f"no tar shards found for {spec}")
    return [p.resolve() for p in files]


def read_index(shards: list[Path]) -> dict | None:
    """The `prepare` index (``index.json`` in the shards' folder) if it covers these shards."""
    file = shards[0].parent / INDEX_NAME
    try:
        index = json.loads(file.read_text(encoding="utf-8"))
        listed = {s["name"] for s in index["shards"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return index if all(p.name in listed for p in shards) else None


# ------------------------------------------------------------------------------ reading a shard
@dataclass
class Member:
    """One sample of a shard: its key, audio bytes and JSON metadata."""

    key: str
    audio: bytes
    meta: dict = field(default_factory=dict)

    @property
    def split_key(self) -> str:
        """What the validation hash is taken of: the original path when known, else the key."""
        return str(self.meta.get("source") or self.key)

    @property
    def speaker(self) -> str | None:
        s = self.meta.get("speaker")
        return None if s in (None, "") else str(s)

    @property
    def split(self) -> str | None:
        s = self.meta.get("split")
        return None if s in (None, "") else str(s).strip().lower()


def _split_name(name: str) -> tuple[str, str]:
    """WebDataset naming: the key is the path up to the first dot of the file name."""
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


def _assemble(key: str, parts: dict[str, bytes], counts: Counter) -> Member | None:
    ext = next((e for e in AUDIO_EXTS if e in parts), None)
    if ext is None:
        counts["no_audio"] += 1
        return None
    meta: dict = {}
    if "json" in parts:
        try:
            meta = json.loads(parts["json"])
            meta = meta if isinstance(meta, dict) else {}
        except ValueError:
            counts["bad_metadata"] += 1
    return Member(key, parts[ext], meta)


def read_shard(path: str | Path, counts: Counter | None = None) -> Iterator[Member]:
    """Stream the members of one shard in order; never raises for bad data.

    A shard that ends early or is not a tar counts one ``corrupt_shard`` (the members before
    the damage are still yielded); a key without audio counts ``no_audio``.
    """
    counts = Counter() if counts is None else counts
    key: str | None = None
    parts: dict[str, bytes] = {}
    try:
        with open(path, "rb") as f, tarfile.open(fileobj=f, mode="r|*") as tar:
            for m in tar:
                if not m.isfile():
                    continue
                k, ext = _split_name(m.name)
                if k != key:
                    if key is not None and (member := _assemble(key, parts, counts)):
                        yield member
                    key, parts = k, {}
                data = tar.extractfile(m)
                parts[ext] = data.read() if data is not None else b""
    except SHARD_ERRORS:
        counts["corrupt_shard"] += 1
        return
    if key is not None and (member := _assemble(key, parts, counts)):
        yield member


def held_out(member: Member, cfg: DataConfig) -> bool:
    """Whether a member belongs to validation (or to neither set): the folder split's rule."""
    if member.split is not None and member.split in VAL_SPLITS | EXCLUDED_SPLITS:
        return True
    if member.split is not None:
        return False
    if cfg.speaker_disjoint and member.speaker is not None:
        return _hash01("speaker:" + member.speaker) < cfg.val_fraction
    return _hash01("file:" + member.split_key) < cfg.val_fraction


def key_index(key: str) -> int:
    """A member's crop index: 63 bits of the SHA-1 of its key."""
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") >> 1


# ------------------------------------------------------------------------------ shard sets
@dataclass
class ShardSet:
    """The shards of one corpus, and what their index says (counts and hours, if any)."""

    spec: str
    name: str
    shards: list[str]
    index: dict | None = None

    @property
    def files(self) -> int | None:
        return None if self.index is None else int(self.index.get("files", 0))

    @property
    def hours(self) -> float:
        return float("nan") if self.index is None else float(self.index.get("hours", "nan"))


def open_shards(spec: str | Path, name: str = "") -> ShardSet:
    """List the shards of `spec` and read their index; nothing else is read."""
    files = list_shards(spec)
    shards = [str(p) for p in files]
    return ShardSet(str(spec), name or files[0].parent.name, shards, read_index(files))


class _MemoryAudio(AudioSource):
    """Validation members kept in memory (their bytes), as an `AudioSource`."""

    def __init__(self, root: Path, members: list[Member]):
        self.root, self.layout = root, "tar"
        self.data = [m.audio for m in members]
        self.keys = [m.key for m in members]

    def __len__(self) -> int:
        return len(self.data)

    def open(self, row: int) -> io.BytesIO:
        return io.BytesIO(self.data[row])

    def label(self, row: int) -> str:
        return self.keys[row]


def validation_members(
    sets: list[ShardSet], cfg: DataConfig, sample_rate: int, everything: bool = False
) -> tuple[SourceValDataset, Counter]:
    """The first held-out members of each set (``data.val_max_files`` in all), in shard order.

    Reads shards from the first until enough are found (usually one shard); members that do
    not decode are left out. With `everything` (separate validation shards) every member counts
    as held out. Returns (validation dataset, skip counts).
    """
    counts: Counter = Counter()
    chosen: list[Member] = []
    want = max(cfg.val_max_files, 0) if cfg.val_fraction > 0 or everything else 0
    per_set = -(-want // len(sets))
    for s in sets:
        found: list[Member] = []
        for shard in s.shards:
            if len(found) >= per_set:
                break
            for m in read_shard(shard, counts):
                if everything or (held_out(m, cfg) and m.split not in EXCLUDED_SPLITS):
                    try:
                        header_length(io.BytesIO(m.audio), sample_rate)
                    except READ_ERRORS:
                        counts["unreadable"] += 1
                        continue
                    found.append(m)
                    if len(found) >= per_set:
                        break
        chosen += found
    chosen = chosen[:want]
    source = _MemoryAudio(Path(sets[0].shards[0]).parent, chosen)
    entries = [
        ScanEntry(AudioItem(source.root / m.key, m.meta.get("duration"), m.speaker, None, i))
        for i, m in enumerate(chosen)
    ]
    return SourceValDataset(source, entries, cfg, sample_rate), counts


# ------------------------------------------------------------------------------ the stream
class _MemberCrops(TrainDataset):
    """`TrainDataset.crop` over one member's bytes: `crop(key_index(key), epoch, seed)`."""

    def __init__(self, cfg: DataConfig, sample_rate: int):
        self.cfg, self.sample_rate = cfg, sample_rate
        self.max_gain_db = max(cfg.normalize_db - cfg.silence_db, 0.0)
        self.segment = int(round(cfg.segment_seconds * sample_rate))
        self.audio = b""

    def _length(self, index: int) -> int:
        return header_length(io.BytesIO(self.audio), self.sample_rate)

    def _read(self, index: int, start: int, length: int) -> np.ndarray:
        from .datasets import read_span

        return read_span(io.BytesIO(self.audio), start, length, self.sample_rate)

    def member_crop(self, member: Member, epoch: int, seed: int) -> torch.Tensor:
        self.audio = member.audio
        return self.crop(key_index(member.key), epoch, seed)


def fresh_position(n_sources: int, world: int, workers: int) -> dict:
    """The position at the start of training: every slot at epoch 0, no shard used up."""
    slots = world * max(workers, 1)
    return {
        "world": world,
        "workers": max(workers, 1),
        "slots": [[[0, 0] for _ in range(slots)] for _ in range(n_sources)],
    }


def resume_position(saved: dict | None, n_sources: int, world: int, workers: int) -> dict:
    """`saved` if it was made with the same processes and workers, else every slot at its
    source's oldest recorded epoch with no shard used up."""
    fresh = fresh_position(n_sources, world, workers)
    if not saved or len(saved.get("slots", [])) != n_sources:
        return fresh
    if saved.get("world") == world and saved.get("workers") == max(workers, 1):
        return saved
    for j, slots in enumerate(saved["slots"]):
        oldest = min(e for e, _ in slots)
        fresh["slots"][j] = [[oldest, 0] for _ in fresh["slots"][j]]
    return fresh


class ShardStream(IterableDataset):
    """Endless crops from the tar shards of one or more corpora (mixed by weight).

    Each item is a dict: ``audio`` (1, T) float32, ``source`` (index into `sets`), ``key``,
    ``epoch`` and ``done`` (the worker's epoch and used-up shards), ``slot`` and ``skipped``
    (a Counter of what the worker passed over since its previous item). Set the rank, world
    size, seed and start position with `configure` before iterating. With `hold_out` (no
    separate validation data) the members `held_out` names are not trained on.
    """

    def __init__(
        self,
        sets: list[ShardSet],
        weights: list[float],
        cfg: DataConfig,
        sample_rate: int,
        hold_out: bool = True,
    ):
        if not sets:
            raise ValueError("no shard sets")
        w = np.asarray(weights, dtype=np.float64)
        if len(w) != len(sets) or not np.all(w > 0):
            raise CodecError(f"data source weights must be positive, got {list(weights)}")
        self.sets, self.weights = sets, w / w.sum()
        self.names = [s.name for s in sets]
        self.cfg, self.sample_rate, self.hold_out = cfg, sample_rate, hold_out
        self.segment = int(round(cfg.segment_seconds * sample_rate))
        self.rank, self.world, self.seed = 0, 1, 0
        self.position = fresh_position(len(sets), 1, 0)  # `configure` sets the real one

    def __len__(self) -> int:  # nominal: files of the index, for the report
        return sum(s.files or 0 for s in self.sets)

    @property
    def hours(self) -> float:
        return float(sum(s.hours for s in self.sets))

    def configure(self, rank: int, world: int, seed: int, position: dict) -> None:
        self.rank, self.world, self.seed, self.position = rank, world, seed, position

    def _slot(self) -> tuple[int, int]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        return self.rank * workers + worker, self.world * workers

    def __iter__(self) -> Iterator[dict]:
        slot, slots = self._slot()
        crops = _MemberCrops(self.cfg, self.sample_rate)
        skipped: Counter = Counter()
        starts = [self.position["slots"][j][slot] for j in range(len(self.sets))]
        streams = [self._source(j, slot, slots, *starts[j], skipped) for j in range(len(self.sets))]
        flat = [v for st in starts for v in st]
        rng = np.random.default_rng([8, self.seed, slot, slots, *flat])
        while True:
            j = int(rng.choice(len(self.sets), p=self.weights)) if len(self.sets) > 1 else 0
            epoch, done, member = next(streams[j])
            try:
                x = crops.member_crop(member, epoch, self.seed)
            except READ_ERRORS:
                skipped["unreadable"] += 1
                continue
            if not bool(torch.isfinite(x).all()):
                skipped["nonfinite"] += 1
                continue
            item = {
                "audio": x,
                "source": j,
                "key": member.key,
                "epoch": epoch,
                "done": done,
                "slot": slot,
                "skipped": dict(skipped),
            }
            skipped.clear()
            yield item

    def epoch_shards(self, j: int, epoch: int, slot: int, slots: int) -> tuple[list[str], bool]:
        """(this slot's shards of source j in `epoch`, whether members are split instead)."""
        shards = self.sets[j].shards
        order = np.random.default_rng([6, self.seed, epoch, j]).permutation(len(shards))
        if len(shards) >= slots:
            return [shards[i] for i in order[slot::slots]], False
        return [shards[i] for i in order], True

    def _source(
        self, j: int, slot: int, slots: int, epoch: int, done: int, skipped: Counter
    ) -> Iterator[tuple[int, int, Member]]:
        """Endless (epoch, used-up shards, member) of source j for this slot."""
        while True:
            n = 0
            for item in self._epoch(j, slot, slots, epoch, done, skipped):
                n += 1
                yield item
            if n == 0 and done == 0:
                raise CodecError(
                    f"an epoch of {self.sets[j].spec} gave loader slot {slot} of {slots} no "
                    f"training sample (passed over: {dict(skipped) or 'nothing'}); check the "
                    "shards, or use fewer loader workers or processes than training samples"
                )
            epoch, done = epoch + 1, 0

    def _epoch(
        self, j: int, slot: int, slots: int, epoch: int, skip: int, skipped: Counter
    ) -> Iterator[tuple[int, int, Member]]:
        """One epoch of this slot's members of source j, shuffled in a buffer."""
        mine, split_members = self.epoch_shards(j, epoch, slot, slots)
        rng = np.random.default_rng([7, self.seed, epoch, j, slot, slots, skip])
        size = max(1, self.cfg.shuffle_buffer)
        buffer: list[tuple[int, Member]] = []
        pending = [0] * len(mine)
        finished = [k < skip for k in range(len(mine))]
        done = skip

        def advance() -> int:
            d = done
            while d < len(mine) and finished[d] and pending[d] == 0:
                d += 1
            return d

        def pop() -> tuple[int, Member]:
            i = int(rng.integers(len(buffer)))
            buffer[i], buffer[-1] = buffer[-1], buffer[i]
            return buffer.pop()

        for k in range(skip, len(mine)):
            for n, member in enumerate(read_shard(mine[k], skipped)):
                if split_members and (n + k) % slots != slot:
                    continue
                if self.hold_out and held_out(member, self.cfg):
                    continue
                buffer.append((k, member))
                pending[k] += 1
                if len(buffer) >= size:
                    kk, m = pop()
                    pending[kk] -= 1
                    done = advance()
                    yield epoch, done, m
            finished[k] = True
            done = advance()
        while buffer:
            kk, m = pop()
            pending[kk] -= 1
            done = advance()
            yield epoch, done, m
