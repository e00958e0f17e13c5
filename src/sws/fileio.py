"""What sws promises about your files, in one module.

- **Atomic writes.** Every artifact (learngene, checkpoint, Des-Net folder, report) is written to a
  temporary name (``*.sws-tmp``) in the destination's folder, flushed, and renamed into place, so a
  reader sees the old file or the new one, never half of one. A full disk is reported as such, and the
  previous file stays.
- **Only regular files and folders are written.** A device, pipe or socket at an output path is
  refused, never replaced.
- **Nothing is deleted to make room.** Writing a folder output into a folder that holds other files,
  or over a file, is refused unless the user asks (``--overwrite``), and then only sws's own files
  are replaced; an input is never an output.
- **One run per folder.** A training run or study holds a lock on its output folder
  (``.sws.lock``, released when the process ends, even by a kill); a second run on the same folder
  is refused with who holds it. Temporary files left by a killed write are removed when the next
  run takes the lock.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from sws.errors import OutputError

LOCK_NAME = ".sws.lock"


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _read_umask()  # read once, at import: setting it later races with other threads' files
TEMPORARY = ".sws-tmp"  # the suffix of every temporary that sws writes
# a temporary's whole name: ``.NAME.PID-RANDOM.sws-tmp`` (mkstemp's 8 random characters); a user's
# file that merely ends in .sws-tmp does not match, and the writer's process id tells a killed
# write's leftovers from a write in progress
_TEMPORARY_NAME = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)-[a-z0-9_]{8}\.sws-tmp$")


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}-"


def _is_stale_temporary(entry: Path, target: str | None = None) -> bool:
    """Whether ``entry`` is a temporary that sws wrote (of ``target``, when given) in a process that
    has ended."""
    match = _TEMPORARY_NAME.match(entry.name)
    if match is None or (target is not None and match["target"] != target):
        return False
    return not _process_alive(int(match["pid"]))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process, or not a pid at all: leave its file alone
    return True


def _new_file_mode(path: Path) -> int:
    """The mode a written file gets: the one it had when it is replaced, else the usual one."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        return 0o666 & ~UMASK


def _check_parents(path: Path) -> None:
    """Refuse a path below a file (``notes.txt/out``): no folder can be made there."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"{parent} is a file, so {path} cannot be written inside it; choose another path")
            return


def check_output_file(path: str | os.PathLike[str], overwrite: bool = True) -> Path:
    """Refuse an output file path that is a folder or a special file (or, unless ``overwrite``, an
    existing file)."""
    path = Path(path)
    _check_parents(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give the name of a file to write (for example {path}/out.safetensors)")
    if path.exists() or path.is_symlink():
        if not path.is_file():
            raise OutputError(f"{path} exists and is not a regular file (a device, pipe or socket); write elsewhere")
        if not overwrite:
            raise OutputError(f"{path} already exists; pass --overwrite to replace it, or choose another name")
    return path


def check_output_dir(
    path: str | os.PathLike[str],
    overwrite: bool = False,
    protect: Iterable[str | os.PathLike[str]] = (),
    names: Iterable[str] = (),
) -> Path:
    """Refuse a folder output path that is a special file, a file (unless ``overwrite``) or a folder
    holding files (unless ``overwrite``), or one whose files ``names`` would replace an input in
    ``protect``."""
    path = Path(path)
    _check_parents(path)
    if path.exists() and not path.is_dir():
        if not path.is_file():
            raise OutputError(f"{path} exists and is not a folder or a regular file; write elsewhere")
        if not overwrite:
            raise OutputError(f"{path} is a file; pass --overwrite to replace it by a folder, or choose another name")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise OutputError(
            f"{path} is a folder that already holds files; choose a new folder, or pass --overwrite to replace "
            "sws's own files in it (other files are kept)"
        )
    targets = {path.resolve(), *((path / name).resolve() for name in names)}
    for protected in protect:
        if Path(protected).resolve() in targets:
            raise OutputError(f"writing {path} would replace the input {protected}; write the output elsewhere")
    return path


def _disk_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < 2**20
    except OSError:
        return False


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is flushed and renamed to ``path``.

    ``path`` must be a regular file or not exist yet. A write that fails on a full disk raises
    ``OSError(ENOSPC)`` whatever the writing library raised, and leaves ``path`` as it was.
    """
    path = check_output_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries_of(path)
    fd, tmp_name = tempfile.mkstemp(prefix=_temporary_prefix(path), suffix=TEMPORARY, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, _new_file_mode(path))  # mkstemp makes files private
        os.replace(tmp, path)
    except Exception as error:
        full = isinstance(error, OSError) and error.errno == errno.ENOSPC
        if not full and _disk_full(path.parent):  # torch.save says "unexpected pos", safetensors other things
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from error
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def write_files_atomic(folder: str | os.PathLike[str], writers: dict[str, Callable[[Path], Any]]) -> Path:
    """Write the files ``name: writer(path)`` as the folder ``folder``.

    A new folder, or one that holds only these files, or a file in the way (the caller was asked to
    replace it), is built whole under a temporary name and swapped in, so readers see the old folder
    or the new one. A folder that also holds other files gets each of these files replaced
    atomically, one at a time, and keeps the rest.
    """
    folder = Path(folder)
    if folder.is_dir() and {entry.name for entry in folder.iterdir()} - set(writers):
        for name, write in writers.items():
            with atomic_path(folder / name) as tmp:
                write(tmp)
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries_of(folder)
    tmp = Path(tempfile.mkdtemp(prefix=_temporary_prefix(folder), suffix=TEMPORARY, dir=folder.parent))
    try:
        for name, write in writers.items():
            write(tmp / name)
            with (tmp / name).open("rb") as handle:
                os.fsync(handle.fileno())
            os.chmod(tmp / name, 0o666 & ~UMASK)
        os.chmod(tmp, 0o777 & ~UMASK)
        _swap_in(tmp, folder)
    except Exception as error:
        if not (isinstance(error, OSError) and error.errno == errno.ENOSPC) and _disk_full(folder.parent):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder)) from error
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _swap_in(new: Path, target: Path) -> None:
    """Rename ``new`` to ``target``; what ``target`` was (a folder of sws's files, or a file) is moved
    aside first and removed only once ``new`` is in place (put back if that fails)."""
    if not (target.exists() or target.is_symlink()):
        os.replace(new, target)
        return
    old = target.with_name(f".{target.name}.{os.getpid()}.sws-old")
    os.replace(target, old)
    try:
        os.replace(new, target)
    except OSError:
        os.replace(old, target)
        raise
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink()


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporaries that killed atomic writes left in ``folder`` or below it: only names of
    sws's own pattern (``.NAME.PID-RANDOM.sws-tmp``) written by processes that have ended."""
    removed = []
    for entry in sorted(Path(folder).rglob(f"*{TEMPORARY}"), reverse=True):
        if _is_stale_temporary(entry):
            _remove(entry)
            removed.append(entry)
    return removed


def _remove_stale_temporaries_of(path: Path) -> None:
    """Before writing ``path``: the temporaries a killed write of the same name left beside it (a
    killed ``sws expand`` holds no run lock, so nothing else would remove them)."""
    if path.parent.is_dir():
        for entry in path.parent.glob(f".{glob.escape(path.name)}.*{TEMPORARY}"):
            if _is_stale_temporary(entry, path.name):
                _remove(entry)


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    elif entry.exists() or entry.is_symlink():
        entry.unlink()


class RunLock:
    """An exclusive lock on an output folder for the life of a run (``fcntl.flock`` on
    ``folder/.sws.lock``: the system releases it when the process ends, even by SIGKILL).

    Example:
        >>> with RunLock("runs/aux"):
        ...     train_for_a_while()
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.handle: Any = None

    def __enter__(self) -> RunLock:
        import fcntl

        while True:
            # any file name and argv the system allows, even bytes that are not UTF-8
            handle = self.path.open("a+", encoding="utf-8", errors="backslashreplace")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                handle.close()
                raise OutputError(
                    f"{self.folder} is in use by another sws run ({holder}); wait for it to finish or use "
                    "another output folder"
                ) from None
            if self.path.exists() and os.fstat(handle.fileno()).st_ino == self.path.stat().st_ino:
                break
            handle.close()  # the previous holder removed the file between our open and our lock: retry
        handle.seek(0)
        handle.truncate()
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {started}: {' '.join(sys.argv)[:300]}")
        handle.flush()
        self.handle = handle
        return self

    def __exit__(self, *exc: object) -> None:
        import fcntl

        if self.handle is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()
        self.handle = None


@contextlib.contextmanager
def run_folder(folder: str | os.PathLike[str] | None, enabled: bool = True) -> Iterator[Path | None]:
    """The output folder of a run: checked, created, locked and cleared of stale temporary files;
    removed again if the run fails before writing anything into it. ``None`` (or ``enabled=False``,
    for processes other than rank 0) does nothing."""
    if folder is None or not enabled:
        yield Path(folder) if folder is not None else None
        return
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"output folder {folder} is a file; give a folder (a new one, or an earlier run's)")
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with RunLock(folder):
            remove_stale_temporaries(folder)
            yield folder
    finally:
        if created and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", errors="surrogateescape")  # a non-UTF-8 path, written as it is
    return Path(path)


def write_json_atomic(path: str | os.PathLike[str], value: Any) -> Path:
    return write_text_atomic(path, json.dumps(value, indent=2, default=str) + "\n")


def sniff_format(path: str | os.PathLike[str]) -> str:
    """What a weights file is, from its first bytes and never by unpickling it: ``'safetensors'``
    (an 8-byte little-endian header length that fits the file, then a JSON object),
    ``'torch-zip'`` (``torch.save``'s zip archive), ``'pickle'`` (a bare pickle, protocol 2 or
    later) or ``'unknown'``.

    The safetensors test comes first and checks the whole header shape: a header length of 128
    modulo 256 makes the first byte 0x80, which a one-byte pickle test mistakes for a pickle.
    """
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(9)
    if len(head) == 9:
        header_length = int.from_bytes(head[:8], "little")
        if 2 <= header_length <= size - 8 and head[8:9] == b"{":
            return "safetensors"
    if head.startswith(b"PK\x03\x04"):
        return "torch-zip"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "pickle"
    return "unknown"
