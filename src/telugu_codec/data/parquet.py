"""Parquet and Arrow datasets (Hugging Face layouts) read in place, row by row.

Kathbath, Shrutilipi, IndicVoices and Common Voice ship as Hugging Face datasets: Parquet
shards (``data/train-00000-of-00010.parquet``, ``default/train/0000.parquet``) or folders
written by ``Dataset.save_to_disk`` (``state.json`` + ``data-00000-of-00001.arrow``; a
``DatasetDict`` adds ``dataset_dict.json`` and one folder per split). `RecordSource` reads them
with pyarrow:

- the audio column is ``data.audio_column``, else the column the Hugging Face metadata calls
  ``Audio``, else the first ``{bytes, path}`` struct, binary column, or string column named like
  a manifest's path column;
- a row's audio is its bytes (wav, flac, ogg, mp3 where libsndfile reads it) or, when those are
  empty, its ``path``, relative to the Parquet/Arrow file's folder;
- speaker, duration and split columns are read like a manifest's (`corpora.SPEAKER_KEYS`, ...);
  a split also comes from the file or folder name (``train-*``, ``validation/``, ``test-*``);
- start-up reads only the footers and those small columns; audio is read when a crop needs it,
  one Parquet row group at a time (the last few are kept) or straight from the memory-mapped
  Arrow file. Write Parquet with small row groups (``telugu-codec prepare --format parquet``)
  for fast random access.
"""

from __future__ import annotations

import io
import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import CodecError
from .corpora import DURATION_KEYS, PATH_KEYS, SPEAKER_KEYS, SPLIT_KEYS, AudioItem, _as_float
from .sources import AudioSource

SPLIT_NAMES = ("train", "validation", "valid", "val", "dev", "test")
ROW_GROUP_CACHE = 4  # decoded Parquet row groups kept per process
SEARCH_DEPTH = 3  # how deep below a folder Parquet files are looked for


def _pa():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise CodecError(
            "reading Parquet/Arrow data needs pyarrow: pip install 'telugu-codec[data]'"
        ) from e
    return pa, pq


# ------------------------------------------------------------------------------ discovery
def _parquet_files(root: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        depth = len(Path(dirpath).relative_to(root).parts)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if depth < 3 else []
        found += [Path(dirpath) / f for f in filenames if f.endswith(".parquet")]
    return sorted(found)


def is_record_dataset(path: Path) -> bool:
    """True for a .parquet/.arrow file, a save_to_disk folder or a folder of Parquet files."""
    if path.is_file():
        return path.suffix.lower() in (".parquet", ".arrow")
    if not path.is_dir():
        return False
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return any(path.glob("*.arrow")) or (path / "dataset_dict.json").is_file()
    return bool(_parquet_files(path))


def _split_of(path: Path, root: Path) -> str | None:
    """A split label from a file name (``train-0000.parquet``) or folder (``validation/``)."""
    stem = path.name.split("-", 1)[0].split("_", 1)[0].split(".", 1)[0].lower()
    if stem in SPLIT_NAMES:
        return stem
    for part in reversed(path.parent.relative_to(root).parts if path != root else ()):
        if part.lower() in SPLIT_NAMES:
            return part.lower()
    return None


def _arrow_files(folder: Path) -> list[Path]:
    """The .arrow files of one save_to_disk folder, in the order its state.json lists them."""
    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        names = [d["filename"] for d in state.get("_data_files", [])]
    except (OSError, ValueError, KeyError, TypeError):
        names = []
    return [folder / n for n in names] if names else sorted(folder.glob("*.arrow"))


def _list_files(path: Path) -> tuple[Path, list[tuple[Path, str | None]]]:
    """(root, [(file, split label)]) of a record dataset."""
    if path.is_file():
        return path.parent, [(path, _split_of(path, path.parent))]
    if (path / "dataset_dict.json").is_file():
        try:
            splits = json.loads((path / "dataset_dict.json").read_text())["splits"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CodecError(f"cannot read {path / 'dataset_dict.json'}: {e}") from e
        return path, [(f, str(s).lower()) for s in splits for f in _arrow_files(path / s)]
    if (path / "state.json").is_file():
        return path, [(f, None) for f in _arrow_files(path)]
    return path, [(f, _split_of(f, path)) for f in _parquet_files(path)]


# ------------------------------------------------------------------------------ columns
def _hf_audio_columns(schema: Any) -> list[str]:
    """Columns that Hugging Face metadata in the schema declares as ``Audio``."""
    meta = (schema.metadata or {}).get(b"huggingface")
    if not meta:
        return []
    try:
        features = json.loads(meta)["info"]["features"]
    except (ValueError, KeyError, TypeError):
        return []
    return [k for k, v in features.items() if isinstance(v, dict) and v.get("_type") == "Audio"]


def _audio_column(schema: Any, wanted: str, file: Path) -> tuple[str, str]:
    """(column name, kind) with kind ``struct`` ({bytes, path}), ``binary`` or ``path``."""
    pa, _ = _pa()
    names = list(schema.names)

    def kind(name: str) -> str | None:
        t = schema.field(name).type
        if pa.types.is_struct(t):
            fields = {t.field(i).name for i in range(t.num_fields)}
            return "struct" if fields & {"bytes", "path"} else None
        if pa.types.is_binary(t) or pa.types.is_large_binary(t):
            return "binary"
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            return "path"
        return None

    if wanted:
        if wanted not in names or kind(wanted) is None:
            raise CodecError(
                f"{file} has no audio column '{wanted}' (bytes, a {{bytes, path}} struct or "
                f"paths); its columns: {', '.join(names)}"
            )
        return wanted, kind(wanted)  # type: ignore[return-value]
    candidates = _hf_audio_columns(schema)
    candidates += [n for n in names if kind(n) == "struct"]
    candidates += [n for n in names if kind(n) == "binary"]
    candidates += [n for n in names if n.lower() in PATH_KEYS and kind(n) == "path"]
    for name in candidates:
        if name in names and kind(name) is not None:
            return name, kind(name)  # type: ignore[return-value]
    raise CodecError(
        f"no audio column found in {file} (columns: {', '.join(names)}); name it with "
        "data.audio_column=NAME"
    )


def _column(names: list[str], keys: tuple[str, ...], exclude: str) -> str | None:
    lower = {n.lower(): n for n in names if n != exclude}
    return next((lower[k] for k in keys if k in lower), None)


# ------------------------------------------------------------------------------ the source
class RecordSource(AudioSource):
    """The rows of a Parquet or Arrow dataset as an `AudioSource` (see the module docstring).

    Args:
        path: a .parquet or .arrow file, a save_to_disk folder (Dataset or DatasetDict) or a
            folder holding Parquet files (searched `SEARCH_DEPTH` levels deep).
        audio_column: the column holding the audio ("" = found by its type).
    """

    def __init__(self, path: str | Path, audio_column: str = ""):
        path = Path(path).expanduser().resolve()
        self.root, files = _list_files(path)
        if not files:
            raise CodecError(f"no Parquet or Arrow files found in {path}")
        self.files = [str(f) for f, _ in files]
        self.kinds = ["parquet" if f.suffix == ".parquet" else "arrow" for f, _ in files]
        self.layout = "parquet" if "parquet" in self.kinds else "arrow"
        self._split_labels = [s for _, s in files]
        counts, groups = [], []
        self.columns: list[tuple[str, str]] = []
        for f, kind in zip(self.files, self.kinds):
            schema, n, rg = self._footer(Path(f), kind)
            self.columns.append(_audio_column(schema, audio_column, Path(f)))
            counts.append(n)
            groups.append(rg)
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.row_groups = groups  # per file: first row of each row group (Parquet), else None
        self._cache: OrderedDict = OrderedDict()
        self._open: dict[int, Any] = {}

    # ---------------------------------------------------------------- start-up (metadata only)
    @staticmethod
    def _footer(file: Path, kind: str) -> tuple[Any, int, np.ndarray | None]:
        pa, pq = _pa()
        try:
            if kind == "parquet":
                meta = pq.ParquetFile(str(file)).metadata
                sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
                starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
                return meta.schema.to_arrow_schema(), meta.num_rows, starts
            table = _read_arrow(file)
            return table.schema, table.num_rows, None
        except (OSError, pa.ArrowException) as e:
            raise CodecError(f"cannot read {file}: {e}") from e

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _arrow(self, i: int) -> Any:
        table = self._open.get(i)
        if table is None:
            table = self._open[i] = _read_arrow(Path(self.files[i]))
        return table

    def _schema(self, i: int) -> Any:
        if self.kinds[i] == "arrow":
            return self._arrow(i).schema
        return _pa()[1].ParquetFile(self.files[i]).schema_arrow

    def _read_columns(self, i: int, columns: list[str]) -> dict[str, list]:
        """Columns of file `i` as Python lists; ``col.path`` is a struct column's path field."""
        pa, pq = _pa()
        import pyarrow.compute as pc

        if not columns:
            return {}
        try:
            if self.kinds[i] == "parquet":
                table = pq.ParquetFile(self.files[i]).read(columns=columns)
            else:
                table = self._arrow(i)
        except (OSError, pa.ArrowException) as e:
            raise CodecError(f"cannot read {self.files[i]}: {e}") from e
        out = {}
        for c in columns:
            top, _, field = c.partition(".")
            col = table.column(top)
            out[c] = (pc.struct_field(col, field) if field else col).to_pylist()
        return out

    def items(self) -> list[AudioItem]:
        """One item per row from the small columns (key, speaker, duration, split); no audio."""
        out: list[AudioItem] = []
        for i in range(len(self.files)):
            audio, kind = self.columns[i]
            schema = self._schema(i)
            spk = _column(schema.names, SPEAKER_KEYS, audio)
            dur = _column(schema.names, DURATION_KEYS, audio)
            split = _column(schema.names, SPLIT_KEYS, audio)
            path = None
            if kind == "path":
                path = audio
            elif kind == "struct" and _has_path_field(schema, audio):
                path = f"{audio}.path"
            cols = self._read_columns(i, [c for c in (spk, dur, split, path) if c])
            n = int(self.offsets[i + 1] - self.offsets[i])
            none = [None] * n
            paths = cols.get(path, none) if path else none
            if all(paths):
                keys = [str(p) for p in paths]
            else:
                rel = Path(self.files[i]).relative_to(self.root).as_posix()
                keys = [f"{rel}#{r}" for r in range(n)]
            speakers, durations = cols.get(spk, none), cols.get(dur, none)
            splits, label = cols.get(split, none), self._split_labels[i]
            base = int(self.offsets[i])
            for r in range(n):
                out.append(
                    AudioItem(
                        self.root / keys[r],
                        _as_float(durations[r]),
                        None if speakers[r] in (None, "") else str(speakers[r]),
                        str(splits[r]).strip().lower() if splits[r] not in (None, "") else label,
                        base + r,
                    )
                )
        if len({it.path for it in out}) < len(out):  # stored paths repeat: keys are file#row
            for it in out:
                it.path = self.root / self.label(it.row)  # type: ignore[arg-type]
        return out

    # ---------------------------------------------------------------- reading one row
    def _locate(self, row: int) -> tuple[int, int]:
        i = int(np.searchsorted(self.offsets, row, side="right") - 1)
        return i, row - int(self.offsets[i])

    def _value(self, row: int) -> Any:
        i, local = self._locate(row)
        audio, _ = self.columns[i]
        if self.kinds[i] == "arrow":
            return self._arrow(i).column(audio)[local].as_py()
        starts = self.row_groups[i]
        g = int(np.searchsorted(starts, local, side="right") - 1)
        key = (i, g)
        column = self._cache.get(key)
        if column is None:
            _, pq = _pa()
            pf = self._open.get(i)
            if pf is None:
                pf = self._open[i] = pq.ParquetFile(self.files[i], memory_map=True)
            # one small read: pyarrow's thread pool costs more than it saves (3 ms -> 0.8 ms)
            table = pf.read_row_group(g, columns=[audio], use_threads=False)
            column = table.column(0).combine_chunks()
            self._cache[key] = column
            while len(self._cache) > ROW_GROUP_CACHE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return column[local - int(starts[g])].as_py()

    def open(self, row: int) -> str | BinaryIO:
        i, local = self._locate(row)
        value = self._value(row)
        _, kind = self.columns[i]
        data, path = None, None
        if kind == "struct" and isinstance(value, dict):
            data, path = value.get("bytes"), value.get("path")
        elif kind == "binary":
            data = value
        else:
            path = value
        if data:
            return io.BytesIO(data)
        if path:
            p = Path(path).expanduser()
            return str(p if p.is_absolute() else Path(self.files[i]).parent / p)
        raise ValueError(f"{self.label(row)} has no audio")

    def label(self, row: int) -> str:
        i, local = self._locate(row)
        return f"{Path(self.files[i]).relative_to(self.root).as_posix()}#{local}"

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_cache"], state["_open"] = OrderedDict(), {}  # reopened lazily in each worker
        return state


def _has_path_field(schema: Any, column: str) -> bool:
    t = schema.field(column).type
    return any(t.field(i).name == "path" for i in range(t.num_fields))


def _read_arrow(file: Path) -> Any:
    """A memory-mapped Arrow table (IPC stream, as save_to_disk writes, or IPC file)."""
    pa, _ = _pa()
    source = pa.memory_map(str(file), "r")
    try:
        return pa.ipc.open_stream(source).read_all()
    except pa.ArrowInvalid:
        return pa.ipc.open_file(pa.memory_map(str(file), "r")).read_all()
