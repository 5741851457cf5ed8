"""The run folder as a unit: one trainer at a time, what `--resume` needs, config changes.

- `RunLock`: ``RUN/.lock``, an exclusive `fcntl.flock` held while a trainer works in the folder.
  The kernel drops it when the process dies, however it dies, so a lock left by a SIGKILLed
  run never blocks its resume; a second trainer gets a one-line error naming the holder's PID.
  Under torchrun only rank 0 takes it.
- `resume_config`: the config a resumed run continues with: the run's own ``config.yaml``
  plus explicit overrides, validated before anything is written. A ``--config`` that differs
  from the run's config is refused (it would silently change the run).
- `record_config`: writes ``config.yaml``; on a resume whose overrides change the config it
  first appends the change to ``overrides.log`` (one JSON line: time, step, old and new values).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from ..checkpoint import atomic_write_text
from ..config import Config, load_config, to_dict, to_yaml
from ..errors import CodecError, StorageError, TrainingError
from .checkpoints import list_checkpoints

LOCK_FILE = ".lock"
CONFIG_FILE = "config.yaml"
OVERRIDES_LOG = "overrides.log"


class RunLock:
    """An exclusive lock on a run folder (``RUN/.lock``, holding the holder's PID and host).

    Args:
        run_dir: the run folder (created if needed when the lock is taken).
    """

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or raise a `TrainingError` naming the process that holds it.

        On a file system without flock (some network mounts) the run goes on unlocked.
        """
        import fcntl

        if self._fd is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StorageError.writing(self.path, e) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise TrainingError(
                f"{self.path.parent} is in use by another trainer ({holder}); wait for it to "
                "finish or stop it, or choose another --out folder"
            ) from None
        except OSError:  # no flock here: nothing to lock with
            os.close(fd)
            return
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Let go of the lock (the file stays; its content is rewritten by the next holder)."""
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return f"PID {info['pid']} on {info['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not written its PID yet"


def has_run(run_dir: str | Path) -> bool:
    """Whether `run_dir` holds a run to resume (a checkpoint, or a config of a run killed
    before its first checkpoint)."""
    run_dir = Path(run_dir)
    return bool(list_checkpoints(run_dir)) or (run_dir / CONFIG_FILE).is_file()


def resume_config(
    run_dir: str | Path, preset: str | Path | None, overrides: list[str] | None
) -> Config:
    """The config to resume `run_dir` with: its ``config.yaml`` plus `overrides`, validated.

    Args:
        run_dir: the run folder.
        preset: the ``--config`` given with ``--resume``, or None. It must describe the run's
            config (with the same overrides); a different one is refused.
        overrides: dotted overrides, the only way to change a run's config on resume.

    Raises:
        TrainingError: nothing to resume, or a ``--config`` that differs from the run's.
        ConfigError: an override that is unknown, mistyped or out of range.
    """
    run_dir = Path(run_dir)
    if not has_run(run_dir):
        where = "does not exist" if not run_dir.exists() else "holds no run"
        raise TrainingError(
            f"--resume: {run_dir} {where} (no {CONFIG_FILE}, no checkpoint); "
            "drop --resume to start a new run there, or check the --out path"
        )
    if not (run_dir / CONFIG_FILE).is_file():
        if preset is None:
            raise TrainingError(
                f"--resume: {run_dir / CONFIG_FILE} is missing; pass --config with the run's "
                "preset to resume it"
            )
        return load_config(preset, overrides)
    cfg = load_config(run_dir / CONFIG_FILE, overrides)
    if preset is not None:
        other = load_config(preset, overrides)
        changes = config_changes(cfg, other)
        if changes:
            keys = ", ".join(list(changes)[:4]) + (", ..." if len(changes) > 4 else "")
            raise TrainingError(
                f"--config {preset} differs from the config of the run in {run_dir} ({keys}); "
                "a resumed run keeps its config: drop --config, and pass any change as an "
                "override (key=value), which is recorded in overrides.log"
            )
    return cfg


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else k))
        return out
    return {prefix: d}


def config_changes(old: Config, new: Config) -> dict[str, tuple[Any, Any]]:
    """Dotted key -> (old value, new value) for every value that differs."""
    a, b = _flatten(to_dict(old)), _flatten(to_dict(new))
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def record_config(run_dir: str | Path, cfg: Config, step: int) -> dict[str, tuple[Any, Any]]:
    """Write `cfg` to ``RUN/config.yaml``; a change to an existing one is logged first.

    Returns:
        The changes recorded (empty for a new run or an unchanged config).
    """
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    changes: dict[str, tuple[Any, Any]] = {}
    if path.is_file():
        try:
            changes = config_changes(load_config(path), cfg)
        except CodecError:  # an unreadable old config: record that it was replaced
            changes = {"config": (None, "rewritten")}
        if not changes:
            return {}
        record = {"time": time.time(), "step": step, "changes": changes}
        try:
            with open(run_dir / OVERRIDES_LOG, "a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as e:
            raise StorageError.writing(run_dir / OVERRIDES_LOG, e) from e
    atomic_write_text(path, to_yaml(cfg))
    return changes
