"""Reading the files a user names: regular files only, and never more bytes than stated.

A FIFO would block the reader forever, a device file (/dev/zero, /dev/urandom) never ends, and a big file
given by mistake would be read whole into memory. Every reader of a user's file (the IDX files, the space
TOML, config.json) opens it through `open_regular`, which refuses anything but a regular file without
blocking, and reads at most a stated number of bytes with `read_at_most`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from mnist_arch.errors import UsageError

_CHUNK = 1 << 22
_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def kind_of(mode: int) -> str:
    """'a FIFO (named pipe)', 'a folder', ... for a st_mode that is not a regular file's."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def not_regular_reason(path: str | os.PathLike[str]) -> str | None:
    """Why `path` (followed through links) is not a regular file, or None when it is one or is missing."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # missing or unreadable: the reader says so in its own words
    return None if stat.S_ISREG(mode) else kind_of(mode)


def require_regular(path: str | os.PathLike[str], what: str) -> None:
    """A UsageError when `path` exists and is a FIFO, a device or a socket (a folder is left to the
    reader, which names it in its own words)."""
    reason = not_regular_reason(path)
    if reason is not None and reason != "a folder":
        raise UsageError(f"{what} {path} is {reason}, not a regular file; give the path of a file")


def open_regular(path: Path, what: str) -> BinaryIO:
    """`path` opened for reading in binary, or a UsageError when it is not a regular file.

    The file is opened without blocking (a FIFO without a writer would block open() itself), checked
    with fstat on the open descriptor (no race with a rename), then switched back to blocking reads."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UsageError(f"{what} {path} is {kind_of(mode)}, not a regular file; give the path of a file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_at_most(file: BinaryIO, limit: int) -> bytes:
    """Up to `limit` + 1 bytes of `file`: a result longer than `limit` means the file is over it.

    Read in chunks: file.read(n) would reserve n bytes up front however short the file is."""
    chunks, left = [], limit + 1
    while left > 0:
        chunk = file.read(min(left, _CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def file_size(file: BinaryIO) -> int:
    return os.fstat(file.fileno()).st_size
