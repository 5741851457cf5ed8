"""`build_datasets`: the data pipeline's entry point, from data arguments to datasets.

For each corpus, by kind:

- files (folder, manifest, corpus layout): discover (`corpora`) -> scan and check (`scan`) ->
  split (`split`) -> `TrainDataset` / `ValDataset` (`datasets`); a manifest that carries
  durations (or ``data.scan=never``) skips the scan: `sources.FileSource`;
- Parquet / Arrow datasets (`parquet.RecordSource`): rows -> split -> `SourceTrainDataset`;
- tar shards (`shards`): listed, never opened except to find validation members.

Several corpora (``--data`` given more than once, or ``data.sources``) are mixed by weight:
`mix.MixedDataset` for map-style corpora, one `shards.ShardStream` for shards. A `DataReport`
says what was found, skipped and converted. `batches.train_batches` draws from any of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from ..config import DataConfig, DataSourceConfig
from ..errors import CodecError, ConfigError
from .corpora import Corpus, discover
from .datasets import TrainDataset, ValDataset
from .duration_sampler import item_seconds
from .mix import InterleavedDataset, MixedDataset, normalized_weights
from .parquet import RecordSource, is_record_dataset
from .report import N_EXAMPLES, DataReport
from .scan import CheckedFiles, ScanEntry, check_files, scan_cache_file, scan_files
from .shards import ShardSet, ShardStream, is_shard_spec, open_shards, validation_members
from .sources import AudioSource, FileSource, SourceTrainDataset, SourceValDataset
from .split import speakers, split_entries, validation_files

SCAN_MODES = ("auto", "always", "never")
DataArg = str | Path | DataSourceConfig


def _load_source(
    source: str | Path,
    cfg: DataConfig,
    sample_rate: int,
    cache_dir: str | Path | None,
    log: Callable[[str], None],
    corpus: Corpus | None = None,
) -> tuple[Corpus, CheckedFiles, Path]:
    corpus = corpus or discover(source)
    cache_file = scan_cache_file(corpus.root, cache_dir)
    entries = scan_files(corpus.items, corpus.root, cache_file, log, workers=cfg.scan_workers)
    checked = check_files(entries, cfg, sample_rate)
    n, n_bad = len(entries), len(entries) - len(checked.usable)
    if not checked.usable or n_bad / n > cfg.max_bad_fraction:
        reasons = ", ".join(f"{len(v)} {k}" for k, v in sorted(checked.skipped.items()))
        first = next(iter(checked.skipped.values()))[0]
        raise CodecError(
            f"{n_bad} of {n} audio files in {source} are unusable ({reasons}; e.g. {first}); "
            f"fix or remove them, or raise data.max_bad_fraction (now {cfg.max_bad_fraction})"
        )
    return corpus, checked, cache_file


@dataclass
class _Loaded:
    """One source after listing (and probing, for files): its usable entries and what was
    skipped or converted. `source` is None for probed files, `shards` set for tar shards."""

    spec: str
    root: Path
    layout: str
    entries: list[ScanEntry]
    n_found: int
    skipped: dict[str, list[str]]
    converted: dict[str, list[str]]
    caches: list[str]
    source: AudioSource | None = None
    shards: ShardSet | None = None


def _load(
    spec: str | Path,
    cfg: DataConfig,
    sample_rate: int,
    cache_dir: str | Path | None,
    log: Callable[[str], None],
) -> _Loaded:
    """List (and, for folders, probe) one data argument, whatever its kind."""
    text = str(spec)
    if is_shard_spec(text):
        shards = open_shards(text)
        return _Loaded(text, Path(shards.shards[0]).parent, "tar", [], -1, {}, {}, [], None, shards)
    path = Path(text).expanduser()
    if is_record_dataset(path):
        rec = RecordSource(path, cfg.audio_column)
        entries = [ScanEntry(it) for it in rec.items()]
        return _Loaded(text, rec.root, rec.layout, entries, len(entries), {}, {}, [], rec)
    if cfg.scan not in SCAN_MODES:
        raise ConfigError(f"data.scan must be one of {', '.join(SCAN_MODES)}, got '{cfg.scan}'")
    corpus = discover(path)
    durations = corpus.layout == "manifest" and all(it.duration is not None for it in corpus.items)
    if cfg.scan == "never" or (cfg.scan == "auto" and durations):
        files = FileSource(corpus.root, corpus.layout, corpus.items)
        entries = [ScanEntry(it) for it in files.items()]
        return _Loaded(text, corpus.root, corpus.layout, entries, len(entries), {}, {}, [], files)
    corpus, checked, cache = _load_source(path, cfg, sample_rate, cache_dir, log, corpus)
    return _Loaded(
        text,
        corpus.root,
        corpus.layout,
        checked.usable,
        len(corpus.items),
        {k: list(v) for k, v in checked.skipped.items()},
        {k: list(v) for k, v in checked.converted.items()},
        [str(cache)],
    )


def _datasets(
    loaded: _Loaded, entries: list[ScanEntry], cfg: DataConfig, sample_rate: int, train: bool
) -> Dataset:
    if loaded.source is None:
        return (TrainDataset if train else ValDataset)(entries, cfg, sample_rate)
    kind = SourceTrainDataset if train else SourceValDataset
    return kind(loaded.source, entries, cfg, sample_rate)


def _name(spec: DataSourceConfig) -> str:
    if spec.name:
        return spec.name
    path = Path(spec.path)
    if any(c in path.name for c in "{*?["):  # shards named by a pattern: their folder
        return path.parent.name or "data"
    return path.stem if path.suffix else path.name or str(path)


def parse_data_arg(text: str) -> DataSourceConfig:
    """``PATH`` or ``PATH@WEIGHT`` (a command line ``--data``) -> `DataSourceConfig`.

    The part after the last ``@`` is a weight only when it is a number and the whole text is not
    an existing path.
    """
    path, sep, weight = text.rpartition("@")
    if sep and path and not Path(text).expanduser().exists():
        try:
            return DataSourceConfig(path=path, weight=float(weight))
        except ValueError:
            pass
    return DataSourceConfig(path=text)


def data_specs(data: DataArg | Sequence[DataArg] | None, cfg: DataConfig) -> list[DataSourceConfig]:
    """The corpora to train on: `data` (one or several paths or `DataSourceConfig`s) if given,
    else ``cfg.sources``; names filled in and made unique.

    Raises:
        CodecError: no data at all.
    """
    if data is None or (isinstance(data, (list, tuple)) and not data):
        items: list[DataArg] = list(cfg.sources)
    elif isinstance(data, (str, Path, DataSourceConfig)):
        items = [data]
    else:
        items = list(data)
    specs = [it if isinstance(it, DataSourceConfig) else parse_data_arg(str(it)) for it in items]
    if not specs or any(not s.path for s in specs):
        raise CodecError("no training data: pass --data PATH (or list data.sources in the config)")
    out, seen = [], set()
    for s in specs:
        name = _name(s)
        unique, k = name, 2
        while unique in seen:
            unique, k = f"{name}-{k}", k + 1
        seen.add(unique)
        out.append(DataSourceConfig(s.path, s.weight, unique))
    normalized_weights([s.weight for s in out], len(out))  # raises for bad weights
    return out


def build_datasets(
    data: DataArg | Sequence[DataArg] | None,
    cfg: DataConfig,
    sample_rate: int,
    val_data: str | Path | None = None,
    cache_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> tuple[Dataset, Dataset, DataReport]:
    """Discover, check and split one corpus or a weighted mix into training and validation sets.

    Validation is chosen per corpus by `split.split_entries` (`val_data` when given, else a
    manifest's or dataset's split labels, else a path or speaker hash with
    ``cfg.val_fraction``) and uses at most ``cfg.val_max_files`` items in all.

    Args:
        data: training data: a folder, manifest, corpus layout, audio file, Parquet/Arrow
            dataset or tar shards; or several of them (paths or `DataSourceConfig` with
            weights) to mix; None: ``cfg.sources``.
        cfg: data settings.
        sample_rate: the model's rate; everything is resampled to it.
        val_data: optional separate validation source (any kind).
        cache_dir: where scan caches go; default: a hidden file in each corpus folder.
        log: receives the summary lines.

    Returns:
        (training set, validation dataset, report). The training set is a `TrainDataset`,
        `SourceTrainDataset`, `MixedDataset` or `ShardStream`: draw from it with
        `batches.train_batches`.

    Raises:
        CodecError: missing or empty data, mostly unusable files, speaker_disjoint without
            speaker ids, no training files left after the split, or a mix of tar shards with
            other kinds of data.
    """
    specs = data_specs(data, cfg)
    val_loaded = None if val_data is None else _load(val_data, cfg, sample_rate, cache_dir, log)
    parts = []
    for spec in specs:
        loaded = _load(spec.path, cfg, sample_rate, cache_dir, log)
        parts.append(_one_corpus(spec, loaded, val_loaded, cfg, sample_rate, log))
    if len({isinstance(p[0], ShardSet) for p in parts}) > 1:
        raise CodecError(
            "tar shards cannot be mixed with other kinds of data; convert the others with "
            "`telugu-codec prepare SRC OUT --format tar`"
        )
    weights = [s.weight for s in specs]
    train: Dataset
    if isinstance(parts[0][0], ShardSet):
        sets = [p[0] for p in parts]
        train = ShardStream(sets, weights, cfg, sample_rate, hold_out=val_loaded is None)
        val = _stream_validation(sets, val_loaded, cfg, sample_rate, parts[0][2], log)
    elif len(parts) == 1:
        train, val = parts[0][0], parts[0][1]  # type: ignore[assignment]
        train.name = specs[0].name  # type: ignore[attr-defined]
    else:
        train = MixedDataset([p[0] for p in parts], weights, [s.name for s in specs])
        # with separate validation data every corpus has the same validation set
        val = parts[0][1] if val_loaded is not None else InterleavedDataset([p[1] for p in parts])
    if len(parts) == 1:
        report = parts[0][2]
        report.n_val = len(val)  # type: ignore[arg-type]
        report.hours_val = float(getattr(val, "hours", math.nan))
    else:
        total = sum(weights)
        for s, p in zip(specs, parts):
            p[2].weight = s.weight / total
        report = _mix_report(specs, [p[2] for p in parts], val)
    report.val_seconds = validation_seconds(val, cfg, sample_rate)
    check_crops_per_file(train, cfg)
    for line in report.summary().splitlines():
        log(line)
    if len(val) == 0:  # type: ignore[arg-type]
        log("  warning: no validation files (data.val_fraction is 0 or there is one file)")
    return train, val, report


def check_crops_per_file(train: Dataset, cfg: DataConfig) -> None:
    """``data.crops_per_file: duration`` applies to files and rows with known durations.

    Raises:
        CodecError: duration weighting asked of tar shards, or of items whose durations are
            unknown.
    """
    if cfg.crops_per_file != "duration":
        return
    if isinstance(train, ShardStream):
        raise CodecError(
            "data.crops_per_file=duration applies to files and rows, not to tar shards (streamed"
            " one sample at a time); use data.crops_per_file=one"
        )
    for part in train.parts if isinstance(train, MixedDataset) else [train]:
        item_seconds(part)  # raises when a duration is unknown


def _stream_validation(
    sets: list[ShardSet],
    val_loaded: _Loaded | None,
    cfg: DataConfig,
    sample_rate: int,
    report: DataReport,
    log: Callable[[str], None] = print,
) -> Dataset:
    """Validation for tar shards: held-out members found at the start of the shards, or all of
    separate validation data (shards or any other kind)."""
    if val_loaded is not None and val_loaded.shards is None:
        chosen = validation_files(val_loaded.entries, val_loaded.root, cfg.val_max_files)
        val = _datasets(val_loaded, chosen, cfg, sample_rate, train=False)
        if isinstance(val, SourceValDataset):
            report.skipped["unreadable"] = len(val.readable_only())
        return val
    if val_loaded is not None:
        sets, everything = [val_loaded.shards], True  # type: ignore[list-item]
    else:
        everything = False
        if cfg.val_hold_out == "validated":  # the stream decides per member, by hash alone
            log(
                "  note: data.val_hold_out=validated does not apply to tar shards: every member "
                "hashed into data.val_fraction is held out; lower data.val_fraction instead"
            )
    val, counts = validation_members(sets, cfg, sample_rate, everything=everything)
    for k, v in counts.items():
        report.skipped[k] = report.skipped.get(k, 0) + v
    if not everything and len(sets) == 1 and report.n_train >= len(val):
        report.n_train -= len(val)  # at least these are held out while streaming
    report.split = "val_data" if everything else "hash (while streaming)"
    return val


def _one_corpus(
    spec: DataSourceConfig,
    loaded: _Loaded,
    val_loaded: _Loaded | None,
    cfg: DataConfig,
    sample_rate: int,
    log: Callable[[str], None],
) -> tuple[object, Dataset | None, DataReport]:
    """(training set or ShardSet, validation dataset, report) of one corpus."""
    if loaded.shards is not None:
        s = loaded.shards
        s.name = spec.name
        files = -1 if s.files is None else s.files
        report = DataReport(
            source=spec.path,
            layout="tar",
            split="",  # set with the validation members
            n_found=files,
            n_usable=files,
            n_train=files,
            n_val=0,
            n_held_out=0,
            hours_train=s.hours,
            hours_val=0.0,
            speakers_train=int((s.index or {}).get("speakers", 0)),
            speakers_val=0,
            name=spec.name,
            weight=spec.weight,
            probed=False,
        )
        return s, None, report
    usable = loaded.entries
    if cfg.speaker_disjoint and not speakers(usable):
        raise CodecError(
            f"data.speaker_disjoint is set but {spec.path} has no speaker ids; use a manifest with "
            "a speaker column or a corpus layout that names speakers (SLR66, Common Voice, "
            "IndicTTS)"
        )
    skipped = {k: list(v) for k, v in loaded.skipped.items()}
    converted = {k: list(v) for k, v in loaded.converted.items()}
    caches = list(loaded.caches)
    n_found, n_usable = loaded.n_found, len(usable)
    val_entries, val_root = None, loaded.root
    if val_loaded is not None:
        n_found += val_loaded.n_found if val_loaded.n_found > 0 else 0
        n_usable += len(val_loaded.entries)
        caches += val_loaded.caches
        for src, dst in ((val_loaded.skipped, skipped), (val_loaded.converted, converted)):
            for k, v in src.items():
                dst.setdefault(k, []).extend(v)
        val_entries, val_root = val_loaded.entries, val_loaded.root
    train, val, method = split_entries(usable, loaded.root, cfg, val_entries, log)
    if not train:
        raise CodecError(
            f"no training files left in {spec.path} after setting validation files aside; "
            "add data, lower data.val_fraction or pass separate validation data"
        )
    if not val:
        method = "none" if method in ("hash", "speaker-hash") else method
    held_out = len(val)
    validated = validation_files(val, val_root, cfg.val_max_files)
    unvalidated = {e.item.path for e in val} - {e.item.path for e in validated}
    hours_unvalidated = sum(_entry_seconds(e) for e in val if e.item.path in unvalidated) / 3600
    val = validated
    train_set = _datasets(loaded, train, cfg, sample_rate, train=True)
    vl = val_loaded if val_loaded is not None else loaded
    val_set = _datasets(vl, val, cfg, sample_rate, train=False)
    if isinstance(val_set, SourceValDataset):
        bad = val_set.readable_only()
        if bad:
            skipped.setdefault("unreadable", []).extend(bad)
    report = DataReport(
        source=spec.path,
        layout=loaded.layout,
        split=method,
        n_found=n_found,
        n_usable=n_usable,
        n_train=len(train_set),  # type: ignore[arg-type]
        n_val=len(val_set),  # type: ignore[arg-type]
        n_held_out=held_out,
        hours_train=train_set.hours,  # type: ignore[attr-defined]
        hours_val=val_set.hours,  # type: ignore[attr-defined]
        speakers_train=len(speakers(train)),
        speakers_val=len(speakers(val)),
        skipped={k: len(v) for k, v in skipped.items()},
        skipped_examples={k: v[:N_EXAMPLES] for k, v in skipped.items()},
        converted={k: len(v) for k, v in converted.items()},
        converted_examples={k: v[:N_EXAMPLES] for k, v in converted.items()},
        cache_files=caches,
        name=spec.name,
        weight=spec.weight,
        probed=loaded.source is None,
        hours_unvalidated=hours_unvalidated,
    )
    return train_set, val_set, report


def _entry_seconds(e: ScanEntry) -> float:
    """A file's duration from its scan (or its listing); NaN when unknown."""
    if e.stats is not None:
        return e.stats.duration
    return math.nan if e.item.duration is None else float(e.item.duration)


def _item_seconds(ds: Dataset, index: int, sample_rate: int) -> float:
    durations = getattr(ds, "durations", None)
    if durations is not None:
        return float(durations[index])
    lengths = getattr(ds, "lengths", None)
    return math.nan if lengths is None else float(lengths[index]) / sample_rate


def validation_seconds(val: Dataset, cfg: DataConfig, sample_rate: int) -> float:
    """Audio one validation runs on: the centre ``data.val_max_seconds`` of each of the first
    ``data.val_max_files`` items (as `train.validation.validate` reads them); NaN when an
    item's length is not known before it is read."""
    n = min(len(val), cfg.val_max_files)  # type: ignore[arg-type]
    if isinstance(val, InterleavedDataset):
        items = [(val.parts[j], i) for j, i in val.order[:n]]
    else:
        items = [(val, i) for i in range(n)]
    seconds = [min(_item_seconds(ds, i, sample_rate), cfg.val_max_seconds) for ds, i in items]
    return float(sum(seconds))


def _mix_report(specs: list[DataSourceConfig], parts: list[DataReport], val: Dataset) -> DataReport:
    def total(attr: str) -> int:
        values = [getattr(p, attr) for p in parts]
        return -1 if any(v < 0 for v in values) else sum(values)

    skipped: dict[str, int] = {}
    for p in parts:
        for k, v in p.skipped.items():
            skipped[k] = skipped.get(k, 0) + v
    return DataReport(
        source=" + ".join(s.path for s in specs),
        layout="mix",
        split="+".join(sorted({p.split for p in parts})),
        n_found=total("n_found"),
        n_usable=total("n_usable"),
        n_train=total("n_train"),
        n_val=len(val),  # type: ignore[arg-type]
        n_held_out=sum(p.n_held_out for p in parts),
        hours_train=float(sum(p.hours_train for p in parts)),
        hours_val=float(getattr(val, "hours", math.nan)),
        speakers_train=sum(p.speakers_train for p in parts),
        speakers_val=sum(p.speakers_val for p in parts),
        skipped=skipped,
        cache_files=[c for p in parts for c in p.cache_files],
        name="mix",
        parts=parts,
        probed=all(p.probed for p in parts),
    )
