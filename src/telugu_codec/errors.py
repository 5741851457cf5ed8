"""The one exception type for errors a user can cause.

The CLI prints these as a single line and exits non-zero; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class CodecError(Exception):
    """A user-caused error (bad path, wrong format, mismatched checkpoint, ...).

    The message must say what went wrong and, where possible, what to do about it.
    """


class ConfigError(CodecError):
    """Unknown config key, wrong value type, or a preset that does not exist."""


class BitstreamError(CodecError):
    """A `.tcc` file that is truncated, corrupt, of a newer version, or for another model."""


class AudioError(CodecError):
    """Audio that cannot be read or used (missing, empty, corrupt, NaN)."""


class CheckpointError(CodecError):
    """A checkpoint that is missing, corrupt, or does not match the model."""


class TrainingError(CodecError):
    """Training stopped for a reason the user must act on (guard, NaN, bad data)."""


class StorageError(CodecError):
    """A file could not be written: disk full, read-only, no permission, a path that is a folder."""

    @classmethod
    def writing(cls, path: object, err: BaseException) -> StorageError:
        """The one-line error for a failed write of `path` (nothing partial is left behind)."""
        import errno
        import shutil
        from pathlib import Path

        code = getattr(err, "errno", None)
        if code is None and "No space left" in str(err):
            code = errno.ENOSPC
        if code is None:  # libsndfile says only "System error."
            try:
                if shutil.disk_usage(Path(str(path)).parent).free < 1 << 20:
                    code = errno.ENOSPC
            except OSError:
                pass
        why = {
            errno.ENOSPC: "the disk is full; free some space and try again",
            errno.EDQUOT: "the disk quota is exceeded; free some space and try again",
            errno.EROFS: "the file system is read-only",
            errno.EACCES: "permission denied",
        }.get(code, str(err).splitlines()[0] if str(err) else type(err).__name__)
        return cls(f"cannot write {path}: {why}")
