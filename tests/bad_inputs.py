"""Helpers for ``test_bad_input.py``: a guard against hangs and runaway memory, a runner that reads
what ``sws`` printed, and makers of files that are well formed on the outside and wrong inside
(learngenes with bad metadata, checkpoints with bad entries, official checkpoints of the wrong
shapes, idx files, configs).

Every maker copies or rewrites a valid file that the test module built once, so each bad file
costs milliseconds.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import resource
import shlex
import signal
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from sws.cli import main
from sws.errors import first_line

HANG_SECONDS = 60  # a hang guard, not a speed target: a refusal takes well under a second
MEMORY_MARGIN = 4 * 2**30  # address space a case may add before an allocation fails in-process


class StillRunning(BaseException):
    """Raised by the alarm: a BaseException, so that no ``except Exception`` in sws swallows it."""


def _address_space() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def guarded(seconds: int = HANG_SECONDS) -> Iterator[None]:
    """Raise ``StillRunning`` after ``seconds``, and make an allocation of more than
    ``MEMORY_MARGIN`` fail in this process (``MemoryError`` or torch's ``RuntimeError``) instead of
    taking the machine's memory from everyone else."""

    def ring(signum: int, frame: Any) -> None:
        raise StillRunning(f"still running after {seconds} s")

    previous_handler = signal.signal(signal.SIGALRM, ring)
    previous_limit = resource.getrlimit(resource.RLIMIT_AS)
    current = _address_space()
    if current:
        soft = current + MEMORY_MARGIN
        hard = previous_limit[1]
        resource.setrlimit(resource.RLIMIT_AS, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous_handler)
        resource.setrlimit(resource.RLIMIT_AS, previous_limit)


def _describe(error: BaseException) -> str:
    if isinstance(error, StillRunning):
        return f"hang: {error}"
    return f"traceback {type(error).__name__}: {first_line(error)[:300]}"


@dataclass
class CliResult:
    case: str
    code: int | None
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]

    def assert_refused(self, words: tuple[str, ...], forbid: tuple[str, ...] = ()) -> None:
        """Exit 2, exactly one line on stderr, ``sws: error: ...``, naming one of ``words``."""
        tail = self.err[-1500:]
        if self.code == 0:
            pytest.fail(f"{self.case}: accepted silently (exit 0); stderr: {tail!r}", pytrace=False)
        if self.code != 2:
            pytest.fail(f"{self.case}: exit {self.code}, not 2; stderr: {tail!r}", pytrace=False)
        if "Traceback" in self.err:
            pytest.fail(f"{self.case}: a traceback on stderr: {tail!r}", pytrace=False)
        if len(self.lines) != 1 or not self.lines[0].startswith("sws: error: "):
            pytest.fail(f"{self.case}: {len(self.lines)} lines on stderr, not one 'sws: error:' line: {tail!r}",
                        pytrace=False)  # fmt: skip
        line = self.lines[0]
        if words and not any(word.lower() in line.lower() for word in words):
            pytest.fail(f"{self.case}: the line names none of {list(words)}: {line!r}", pytrace=False)
        for phrase in forbid:
            if phrase.lower() in line.lower():
                pytest.fail(f"{self.case}: the line says {phrase!r}: {line!r}", pytrace=False)

    def assert_succeeded(self) -> None:
        if self.code != 0:
            pytest.fail(f"{self.case}: exit {self.code}, not 0; stderr: {self.err[-1500:]!r}", pytrace=False)


def run_cli(case: str, argv: list[str], capsys: pytest.CaptureFixture[str]) -> CliResult:
    """``sws.cli.main(argv)`` in this process, under the guard; a traceback or a hang fails the
    test with the case's name (the failure is reported outside the ``except`` block, so the frames
    of a runaway allocation are freed at once)."""
    capsys.readouterr()
    failure = None
    code: int | None = None
    try:
        with guarded(), warnings.catch_warnings(record=True):
            code = main(argv)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except (Exception, StillRunning) as error:
        failure = _describe(error)
    out, err = capsys.readouterr()
    if failure is not None:
        pytest.fail(f"{case}: {failure}; stderr: {err[-800:]!r}", pytrace=False)
    return CliResult(case, code, out, err)


def raised_by(case: str, call: Callable[[], Any]) -> BaseException | None:
    """The exception that ``call()`` raises under the guard (``None`` when it returns); a hang fails
    the test with the case's name."""
    failure = None
    try:
        with guarded(), warnings.catch_warnings(record=True):
            call()
    except StillRunning as error:
        failure = _describe(error)
    except Exception as error:
        error.__traceback__ = None  # frames may hold a runaway allocation
        return error
    if failure is not None:
        pytest.fail(f"{case}: {failure}", pytrace=False)
    return None


# -- learngenes with bad metadata -----------------------------------------------------------------


def read_learngene(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata())
    return load_file(str(path)), metadata


def rewrite_learngene(source: Path, target: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of the learngene ``source`` whose metadata ``change`` edits: ``architecture`` and
    ``training`` are handed over decoded (and encoded again), every other entry as its string; a
    value of ``None`` removes the entry."""
    tensors, metadata = read_learngene(source)
    decoded: dict[str, Any] = dict(metadata)
    for key in ("architecture", "training"):
        decoded[key] = json.loads(metadata[key])
    change(decoded)
    written = {}
    for key, value in decoded.items():
        if value is None:
            continue
        written[key] = (
            json.dumps(value) if key in ("architecture", "training") and not isinstance(value, str) else value
        )
    save_file(tensors, str(target), metadata=written)
    return target


def architecture(**values: Any) -> Callable[[dict[str, Any]], None]:
    def change(metadata: dict[str, Any]) -> None:
        metadata["architecture"].update(values)

    return change


def training(**values: Any) -> Callable[[dict[str, Any]], None]:
    def change(metadata: dict[str, Any]) -> None:
        metadata["training"].update(values)

    return change


def entries(**values: Any) -> Callable[[dict[str, Any]], None]:
    """Top-level metadata entries as strings (``None`` removes one)."""

    def change(metadata: dict[str, Any]) -> None:
        metadata.update(values)

    return change


# -- checkpoints with bad entries -----------------------------------------------------------------


def rewrite_checkpoint(checkpoint: dict[str, Any], target: Path, change: Callable[[dict[str, Any]], Any]) -> Path:
    """``torch.save`` of a deep copy of ``checkpoint`` that ``change`` edits (or replaces, when it
    returns something)."""
    edited = copy.deepcopy(checkpoint)
    replaced = change(edited)
    torch.save(edited if replaced is None else replaced, target)
    return target


def set_entry(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(checkpoint: dict[str, Any]) -> None:
        checkpoint[key] = value

    return change


def drop_entry(key: str) -> Callable[[dict[str, Any]], None]:
    def change(checkpoint: dict[str, Any]) -> None:
        del checkpoint[key]

    return change


def model_entry(edit: Callable[[dict[str, torch.Tensor]], Any]) -> Callable[[dict[str, Any]], None]:
    def change(checkpoint: dict[str, Any]) -> None:
        checkpoint["model"] = edit(checkpoint["model"])

    return change


def flip_bytes_in_tensor(path: Path, tensor: torch.Tensor, count: int = 64) -> Path:
    """Flip ``count`` bytes in the middle of ``tensor``'s data inside the zip archive that
    ``torch.save`` wrote (stored uncompressed): what a bad disk or a bad copy does."""
    raw = bytearray(path.read_bytes())
    data = tensor.detach().contiguous().numpy().tobytes()
    start = raw.find(data)
    assert start >= 0 and raw.find(data, start + 1) < 0, "the tensor's bytes are not found once in the file"
    middle = start + len(data) // 2 - count // 2
    for i in range(middle, middle + count):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    with zipfile.ZipFile(path) as archive:  # still a well-formed archive, only its contents changed
        assert archive.namelist()
    return path


class TouchOnUnpickle:
    """Pickles as a call of ``os.system('touch MARKER')``: unpickling it runs code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


# -- idx files (the MNIST family's format) --------------------------------------------------------

FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "val_images": "t10k-images-idx3-ubyte",
    "val_labels": "t10k-labels-idx1-ubyte",
}


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Two zero bytes, 0x08 (unsigned bytes), the number of dimensions, each dimension as a
    big-endian int32, then the data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = b"\0\0\x08" + bytes([array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.tobytes())
    return path


def fashion_arrays(train: int = 32, val: int = 10, seed: int = 0) -> dict[str, np.ndarray]:
    """Valid Fashion-MNIST-shaped arrays: 28x28 grey images, labels 0 to 9."""
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (train, 28, 28), dtype=np.uint8),
        "train_labels": np.arange(train, dtype=np.uint8) % 10,
        "val_images": rng.integers(0, 256, (val, 28, 28), dtype=np.uint8),
        "val_labels": np.arange(val, dtype=np.uint8) % 10,
    }


def write_fashion(folder: Path, change: Callable[[dict[str, np.ndarray]], None] | None = None) -> Path:
    arrays = fashion_arrays()
    if change is not None:
        change(arrays)
    folder.mkdir(parents=True, exist_ok=True)
    for key, name in FASHION_FILES.items():
        write_idx(folder / name, arrays[key])
    return folder


# -- configs --------------------------------------------------------------------------------------


def write_yaml(path: Path, value: Any) -> Path:
    path.write_text(yaml.safe_dump(value, sort_keys=False))
    return path
