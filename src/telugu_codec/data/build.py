"""`build_datasets`: the data pipeline's entry point, from a data argument to datasets.

discover (`corpora`) -> scan and check (`scan`) -> split (`split`) -> datasets (`datasets`),
with a `DataReport` of what was found, skipped and converted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..config import DataConfig
from ..errors import CodecError
from .corpora import Corpus, discover
from .datasets import TrainDataset, ValDataset
from .report import N_EXAMPLES, DataReport
from .scan import CheckedFiles, check_files, scan_cache_file, scan_files
from .split import speakers, split_entries, validation_files


def _load_source(
    source: str | Path,
    cfg: DataConfig,
    sample_rate: int,
    cache_dir: str | Path | None,
    log: Callable[[str], None],
) -> tuple[Corpus, CheckedFiles, Path]:
    corpus = discover(source)
    cache_file = scan_cache_file(corpus.root, cache_dir)
    entries = scan_files(corpus.items, corpus.root, cache_file, log)
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


def build_datasets(
    data: str | Path,
    cfg: DataConfig,
    sample_rate: int,
    val_data: str | Path | None = None,
    cache_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> tuple[TrainDataset, ValDataset, DataReport]:
    """Discover, scan, check and split a corpus into training and validation datasets.

    Validation is chosen by `split.split_entries` (`val_data` when given, else the manifest's
    split column, else a path or speaker hash with ``cfg.val_fraction``) and uses at most
    ``cfg.val_max_files`` files, chosen by path hash.

    Args:
        data: training folder, manifest, corpus layout or audio file.
        cfg: data settings.
        sample_rate: the model's rate; everything is resampled to it.
        val_data: optional separate validation source.
        cache_dir: where scan caches go; default: a hidden file in each corpus folder.
        log: receives the summary lines.

    Returns:
        (train dataset, validation dataset, report).

    Raises:
        CodecError: missing or empty data, mostly unusable files, speaker_disjoint without
            speaker ids, or no training files left after the split.
    """
    corpus, checked, cache_file = _load_source(data, cfg, sample_rate, cache_dir, log)
    skipped = {k: list(v) for k, v in checked.skipped.items()}
    converted = {k: list(v) for k, v in checked.converted.items()}
    caches = [str(cache_file)]
    n_found = len(corpus.items)
    usable = checked.usable
    n_usable = len(usable)
    if cfg.speaker_disjoint and not speakers(usable):
        raise CodecError(
            f"data.speaker_disjoint is set but {data} has no speaker ids; use a manifest with a "
            "speaker column or a corpus layout that names speakers (SLR66, Common Voice, IndicTTS)"
        )
    val_entries, val_root = None, corpus.root
    if val_data is not None:
        vcorpus, vchecked, vcache = _load_source(val_data, cfg, sample_rate, cache_dir, log)
        n_found += len(vcorpus.items)
        n_usable += len(vchecked.usable)
        caches.append(str(vcache))
        for src, dst in ((vchecked.skipped, skipped), (vchecked.converted, converted)):
            for k, v in src.items():
                dst.setdefault(k, []).extend(v)
        val_entries, val_root = vchecked.usable, vcorpus.root
    train, val, method = split_entries(usable, corpus.root, cfg, val_entries, log)
    if not train:
        raise CodecError(
            f"no training files left in {data} after setting validation files aside; "
            "add data, lower data.val_fraction or pass separate validation data"
        )
    if not val:
        method = "none" if method in ("hash", "speaker-hash") else method
        log("  warning: no validation files (data.val_fraction is 0 or there is one file)")
    held_out = len(val)
    val = validation_files(val, val_root, cfg.val_max_files)
    train_set = TrainDataset(train, cfg, sample_rate)
    val_set = ValDataset(val, cfg, sample_rate)
    report = DataReport(
        source=str(data),
        layout=corpus.layout,
        split=method,
        n_found=n_found,
        n_usable=n_usable,
        n_train=len(train_set),
        n_val=len(val_set),
        n_held_out=held_out,
        hours_train=train_set.hours,
        hours_val=val_set.hours,
        speakers_train=len(speakers(train)),
        speakers_val=len(speakers(val)),
        skipped={k: len(v) for k, v in skipped.items()},
        skipped_examples={k: v[:N_EXAMPLES] for k, v in skipped.items()},
        converted={k: len(v) for k, v in converted.items()},
        converted_examples={k: v[:N_EXAMPLES] for k, v in converted.items()},
        cache_files=caches,
    )
    for line in report.summary().splitlines():
        log(line)
    return train_set, val_set, report
