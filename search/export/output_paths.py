"""Output paths checked before any work starts: a path a command could not write is refused up front,
with nothing created, instead of failing after minutes of training."""

from __future__ import annotations

import os
from pathlib import Path

from mnist_arch.errors import UsageError


def check_output_folder(path: Path, flag: str, *, force: bool | None = None) -> None:
    """A folder the command will create (with its parents) or write into. `force` given: the command
    refuses a folder that holds anything unless it is True."""
    _check_text(path, flag)
    try:
        if path.exists():
            if not path.is_dir():
                raise UsageError(f"{flag} {path} is a file, not a folder; choose another path")
            _require_writable(path, flag, path)
            if force is False and any(path.iterdir()):
                raise UsageError(
                    f"{flag} {path} exists and is not empty; choose another folder or pass --force"
                )
            return
        _require_writable(_nearest_existing(path, flag), flag, path)
    except OSError as error:
        raise UsageError(f"{flag} {path} cannot be used: {error.strerror or error}") from None


def check_output_file(path: Path, flag: str) -> None:
    """A text file the command appends to (or creates) in a folder that exists already."""
    _check_text(path, flag)
    try:
        if path.exists():
            if not path.is_file():
                raise UsageError(f"{flag} {path} is not a regular file; give a file path")
            if not os.access(path, os.R_OK | os.W_OK):
                raise UsageError(f"{flag} {path} is not readable and writable; check its permissions")
            try:
                path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise UsageError(f"{flag} {path} is not a UTF-8 text file; give another file") from None
            return
        parent = path.parent
        if not parent.is_dir():
            raise UsageError(
                f"{flag} {path}: folder {parent} does not exist; create it or choose another path"
            )
        _require_writable(parent, flag, path)
    except OSError as error:
        raise UsageError(f"{flag} {path} cannot be used: {error.strerror or error}") from None


def _check_text(path: Path, flag: str) -> None:
    if str(path) in ("", "."):
        raise UsageError(f"{flag} needs a path; got an empty one")
    if "\0" in str(path):
        raise UsageError(f"{flag} {str(path)!r} contains a NUL character; choose another path")


def _nearest_existing(path: Path, flag: str) -> Path:
    """The closest ancestor of `path` that exists; it must be a folder, or nothing can be created below it."""
    for ancestor in path.absolute().parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise UsageError(f"{flag} {path}: {ancestor} is a file, not a folder; choose another path")
            return ancestor
    return Path(path.absolute().anchor)


def _require_writable(folder: Path, flag: str, path: Path) -> None:
    if not os.access(folder, os.W_OK | os.X_OK):
        where = "" if folder == path else f" (in {folder})"
        raise UsageError(f"{flag} {path} is not writable{where}; choose another path or fix its permissions")
