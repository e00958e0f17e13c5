"""Errors that sws raises for bad input.

Every error names the problem and what to do about it in one message, so that the command line can
print it as one line without a traceback (``sws --traceback ...`` shows the traceback).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_PACKAGE_DIR = str(Path(__file__).resolve().parent) + os.sep  # the separator: not a sibling sws_* folder


def first_line(error: BaseException) -> str:
    """The first line of an error's message (its type's name when it has none), for one-line errors
    that quote what a library said."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def caller_stacklevel() -> int:
    """The ``stacklevel`` for a ``warnings.warn`` in the calling function that names the first line
    outside sws: the user's call, however deep in sws the warning starts (``expand`` warns from a
    helper of ``initialize_from_learngene``, ``sws train`` from the whole CLI)."""
    frame = sys._getframe(1)  # the function that warns: stacklevel 1
    level = 1
    while frame.f_back is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return level


class SWSError(Exception):
    """Base class for every error that sws reports to users."""


class LayoutError(SWSError, ValueError):
    """A stage layout or a layer mapping is malformed or out of range."""


class LearngeneFileError(SWSError, ValueError):
    """A file is not a learngene, is truncated, or disagrees with its own metadata."""


class IncompatibleModelError(SWSError, ValueError):
    """A learngene or checkpoint does not fit the model it is asked to initialize."""


class CheckpointError(SWSError, ValueError):
    """A checkpoint is missing, unreadable, or lacks what the command needs."""


class DataError(SWSError, ValueError):
    """A data set is missing, empty, or malformed."""


class TrainingError(SWSError, RuntimeError):
    """Training cannot go on (for example, the loss became NaN)."""


class ConfigError(SWSError, ValueError):
    """A command-line flag or configuration value is invalid."""


class UnknownModelArgument(ConfigError):
    """A model was given a keyword argument its constructor does not take."""

    def __init__(self, message: str, argument: str) -> None:
        super().__init__(message)
        self.argument = argument


class OutputError(SWSError, ValueError):
    """An output path cannot be written as asked (a special file, a folder in the way, a folder that
    holds other files, or one that another run is using)."""
