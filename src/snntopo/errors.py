"""Error classes for user mistakes and bad artifacts.

Every error a user can cause (a bad config, a missing data set, a corrupt artifact) is one of these,
so the command-line entry points can print a single clear line instead of a traceback. Messages always
name the file or config key at fault.
"""

from __future__ import annotations


class SnntopoError(Exception):
    """Base class: an expected failure with a message meant for the user."""


class ConfigError(SnntopoError):
    """The configuration is invalid (unknown key, bad value, missing key)."""


class ArtifactError(SnntopoError):
    """An artifact on disk is missing, truncated, corrupt or inconsistent with its metadata."""


class MaskError(ArtifactError):
    """A mask does not fit the architecture it is applied to."""


class GraphError(ArtifactError):
    """A stored graph's arrays disagree with its metadata."""


class TableError(ArtifactError):
    """A table lacks required columns or has NaNs where none are allowed."""


class CheckpointError(ArtifactError):
    """A checkpoint or trained-model artifact cannot be used."""


class OutputError(ArtifactError):
    """An output cannot be written: its directory is not writable, or the disk is full."""


class NonFiniteError(ArtifactError):
    """Weights or metrics that must be finite hold NaN or Inf."""


class DataError(SnntopoError):
    """A data set is missing or malformed."""


class DeviceError(SnntopoError):
    """A device was requested that this machine does not have."""


class MemoryLimitError(SnntopoError):
    """A job's estimated peak memory exceeds the memory this process may use (checked before
    the job starts, :mod:`snntopo.memcheck`)."""
