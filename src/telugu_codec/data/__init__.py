"""Data pipeline: corpus discovery, a cached validity scan, train/val split, crops and loaders.

`build_datasets` is the entry point (see docs/data.md); the steps, one module each:

- `corpora`: which audio files a folder, manifest or corpus layout (SLR66, IndicTTS, Common
  Voice) holds;
- `scan`: every file read once (rate, channels, length, NaN/Inf, clipping, level), the result
  cached; unusable files skipped and counted by reason, convertible ones converted on the fly;
- `split`: the deterministic train/validation split (manifest column, path or speaker hash);
- `datasets`: training crops as a pure function of (seed, epoch, index), validation items;
- `loaders`: the epoch order per rank (resumable mid-epoch) and the loaders;
- `duration_sampler`: the same, with crops in proportion to each file's duration;
- `report`: `DataReport`, what was found, skipped and converted;
- `build`: `build_datasets`, the steps above in order.

Large corpora, without a start-up probe:

- `sources`: the map-style source interface (`AudioSource`) and its datasets, lengths read
  from headers when first used, unreadable items passed over and counted;
- `parquet`: Parquet files and Arrow (``save_to_disk``) folders, row by row;
- `shards`: WebDataset tar shards, streamed (`ShardStream`), split over ranks and workers;
- `mix`: several map-style corpora mixed by weight;
- `batches`: `train_batches`, how the trainer draws from any of the above;
- `prepare`: a corpus -> tar or Parquet shards at the codec rate, with an index.

Synthetic Telugu corpora (not imported here; `synth_corpus.ensure_corpus` is the entry point):

- `synth_voices`: espeak-ng and Festival's NSK voice, run as processes;
- `synth_render`: the per-sentence draws (seeded) and the parallel render to FLAC;
- `synth_readme`: the corpus README (contents, provenance, licences);
- `synth_corpus`: sentence lists, manifest, completion marker, `build_corpus`, `ensure_corpus`.
"""

from __future__ import annotations

from .batches import Batch, train_batches
from .build import build_datasets, data_specs
from .corpora import AudioItem, Corpus, discover, list_audio_files, read_manifest
from .datasets import TrainDataset, ValDataset, loudness_normalize, read_span
from .loaders import EpochSampler, infinite_batches, make_train_loader, make_val_loader
from .mix import MixedDataset, MixSampler
from .report import DataReport
from .scan import CheckedFiles, FileStats, ScanEntry, check_files, scan_files
from .shards import ShardStream
from .sources import AudioSource, SourceTrainDataset, SourceValDataset
from .split import hash_split, split_entries

__all__ = [
    "AudioItem",
    "AudioSource",
    "Batch",
    "MixSampler",
    "MixedDataset",
    "ShardStream",
    "SourceTrainDataset",
    "SourceValDataset",
    "data_specs",
    "train_batches",
    "CheckedFiles",
    "Corpus",
    "DataReport",
    "EpochSampler",
    "FileStats",
    "ScanEntry",
    "TrainDataset",
    "ValDataset",
    "build_datasets",
    "check_files",
    "discover",
    "hash_split",
    "infinite_batches",
    "list_audio_files",
    "loudness_normalize",
    "make_train_loader",
    "make_val_loader",
    "read_manifest",
    "read_span",
    "scan_files",
    "split_entries",
]
