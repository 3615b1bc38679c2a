"""Opening a recording so that only a regular file inside its folder is ever read.

Whoever can write into an NVR folder (the NVR, an FTP-uploading camera, an SMB share) could
put there a symbolic link to another camera's recording or to /etc/passwd, or a FIFO under a
recording's name. edged reads a path only through `open_regular`: `lstat` says it is a
regular file, the open does not follow a final symlink (O_NOFOLLOW) and does not wait for a
writer (O_NONBLOCK, so a FIFO opens at once and is then refused), `fstat` of the descriptor
says it is the same regular file, and the file the descriptor really names lies inside the
configured folder (a symlinked sub-folder does not lead out of it).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from edged.errors import EdgedError

_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

#: Errors that say nothing about the file: edged is out of descriptors (EMFILE, ENFILE),
#: short of memory, or a share stumbled (EIO, ESTALE, ETIMEDOUT). Such a file is tried
#: again, never judged.
TRANSIENT_ERRNOS = frozenset(
    {
        errno.EMFILE,
        errno.ENFILE,
        errno.ENOMEM,
        errno.EIO,
        errno.ESTALE,
        errno.ETIMEDOUT,
        errno.EAGAIN,
        errno.EINTR,
    }
)


class NotRegularFile(EdgedError):
    """The path is not a regular file inside its folder: it is never read."""


def kind_of(mode: int) -> str:
    """What a non-regular file is, in words for a log line."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _real_path(fd: int, path: str) -> str:
    """The path the open descriptor names (from /proc, so no rename in between can lie)."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.realpath(path)


def _inside(real: str, folder: Path) -> bool:
    root = os.path.realpath(folder)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def open_regular(path: str | Path, *, inside: Path | None = None) -> tuple[int, os.stat_result]:
    """Blocking. A read-only descriptor of `path` and its fstat; the caller closes it.
    Raises NotRegularFile (a link, FIFO, device, folder, or a file outside `inside`) or
    OSError (gone, unreadable)."""
    path = os.fspath(path)
    before = os.lstat(path)
    if not stat.S_ISREG(before.st_mode):
        raise NotRegularFile(f"{kind_of(before.st_mode)}: edged reads only regular files")
    try:
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # replaced by a symlink since the lstat
            raise NotRegularFile("a symbolic link: edged reads only regular files") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(f"{kind_of(st.st_mode)}: edged reads only regular files")
        if (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):
            raise NotRegularFile("replaced while it was opened")
        if inside is not None and not _inside(_real_path(fd, path), inside):
            raise NotRegularFile(f"outside {inside} (through a linked folder)")
        # Reads of a regular file never wait anyway; the flag only kept a FIFO from blocking.
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


@contextlib.contextmanager
def opened_regular(
    path: str | Path, *, inside: Path | None = None
) -> Iterator[tuple[int, os.stat_result]]:
    fd, st = open_regular(path, inside=inside)
    try:
        yield fd, st
    finally:
        os.close(fd)
