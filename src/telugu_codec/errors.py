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
