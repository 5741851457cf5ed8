"""Audio files and settings that the data tests (tests/test_data_*.py) make themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from telugu_codec.config import DataConfig

SR = 16000
ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "data" / "demo-te"
HAS_MP3 = "MP3" in sf.available_formats()


def quiet(_: str) -> None:
    pass


def noise(seconds: float, sr: int = SR, seed: int = 0, level_db: float = -20.0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(int(seconds * sr))
    return (x * 10 ** (level_db / 20)).astype(np.float32)


def tone(seconds: float, freq: float, sr: int = SR, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write(path: Path, x: np.ndarray, sr: int = SR, subtype: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, subtype=subtype)
    return path


def make_folder(root: Path, n: int, seconds: float = 2.0) -> list[Path]:
    return [write(root / f"f{i:02d}.wav", noise(seconds, seed=i)) for i in range(n)]


def small_cfg(**kw) -> DataConfig:
    base = dict(batch_size=4, val_fraction=0.2, segment_seconds=0.5)
    base.update(kw)
    return DataConfig(**base)


def peak_freq(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * sr / len(x))


# ------------------------------------------------------------------ Parquet / Arrow datasets
def audio_rows(files: list[Path], root: Path, embed: bool = True) -> list[dict]:
    """Hugging Face ``Audio`` values ({bytes, path}) for files; bytes None when not `embed`."""
    rows = []
    for f in files:
        rel = f.relative_to(root).as_posix()
        rows.append({"bytes": f.read_bytes() if embed else None, "path": rel})
    return rows


def hf_schema(columns: dict, audio: str = "audio"):
    """A pyarrow schema with Hugging Face metadata that declares `audio` an Audio feature."""
    import json

    import pyarrow as pa

    features = {audio: {"_type": "Audio", "sampling_rate": SR}}
    meta = {"huggingface": json.dumps({"info": {"features": features}})}
    return pa.schema(list(columns.items()), metadata=meta)


def audio_type():
    import pyarrow as pa

    return pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def write_parquet(path: Path, table_dict: dict, row_group_size: int = 3) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    types = {k: (audio_type() if k == "audio" else None) for k in table_dict}
    arrays = {k: pa.array(v, type=types[k]) for k, v in table_dict.items()}
    table = pa.table(arrays)
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def write_arrow_dataset(folder: Path, table_dict: dict, split: str = "train") -> Path:
    """A folder as ``datasets.Dataset.save_to_disk`` writes it: an Arrow IPC stream file,
    state.json and dataset_info.json."""
    import json

    import pyarrow as pa

    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        k: pa.array(v, type=audio_type() if k == "audio" else None) for k, v in table_dict.items()
    }
    table = pa.table(arrays)
    table = table.replace_schema_metadata(hf_schema({}).metadata)
    name = "data-00000-of-00001.arrow"
    with pa.OSFile(str(folder / name), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    state = {
        "_data_files": [{"filename": name}],
        "_fingerprint": "0",
        "_format_columns": None,
        "_format_kwargs": {},
        "_format_type": None,
        "_output_all_columns": False,
        "_split": split,
    }
    (folder / "state.json").write_text(json.dumps(state))
    (folder / "dataset_info.json").write_text(
        json.dumps({"features": {"audio": {"_type": "Audio"}}})
    )
    return folder
