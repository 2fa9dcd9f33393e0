"""Opening domain files safely, durable small-file updates, and path containment.

A domain may come from anywhere (a replicated LUN, another site, an attacker), so every file the agent
or an offline tool reads or writes in it goes through `open_regular`: opened without following a
symbolic link, without blocking on a FIFO, and refused unless the open descriptor is a regular file of
exactly one link. A hard link or a device could otherwise make a store write land outside the domain.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from ovfstore.storage.errors import InvalidMetadata, PathOutsideRoots, UnsafeFile, from_os_error
from ovfstore.store.quoting import cut, quoted

_KINDS = (
    (stat.S_ISLNK, "is a symbolic link"),
    (stat.S_ISDIR, "is a directory"),
    (stat.S_ISCHR, "is a character device"),
    (stat.S_ISBLK, "is a block device"),
    (stat.S_ISFIFO, "is a FIFO"),
    (stat.S_ISSOCK, "is a socket"),
)


def check_regular(st: os.stat_result, path: str) -> os.stat_result:
    """`st` if it is a regular file of one link, else `UnsafeFile` naming `path` and what it is."""
    if stat.S_ISREG(st.st_mode):
        if st.st_nlink == 1:
            return st
        what = f"has {st.st_nlink} hard links"
    else:
        what = next((text for test, text in _KINDS if test(st.st_mode)), "is not a regular file")
    raise UnsafeFile(
        f"{quoted(path)} {what}; a domain's files must be regular files of one link, so it is neither read nor "
        "written (replace it with a regular file, or remove it)"
    )


def open_regular(path: str, flags: int, mode: int = 0o660) -> int:
    """A descriptor of domain file `path`, opened with `flags`, only if it is a regular file of one link.

    An `lstat` first refuses what is plainly not a regular file without opening it: opening some
    devices acts (a watchdog arms, a tape rewinds). Then `O_NOFOLLOW` refuses a symbolic link (`ELOOP`),
    `O_NONBLOCK` makes a FIFO open at once instead of waiting for a writer, `O_NOCTTY` keeps a terminal
    from becoming the agent's; the `fstat` of the open descriptor judges what was actually opened, so
    nothing swapped in after the `lstat` gets through. O_NONBLOCK does nothing to regular files.
    OSErrors pass through (`FileNotFoundError` included), unless they come from a file of another kind."""
    if not flags & os.O_CREAT:
        stat_regular(path)
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, mode)
    except OSError as e:
        if e.errno == errno.ELOOP:
            check_regular(os.lstat(path), path)
        elif e.errno in (errno.ENXIO, errno.ENODEV, errno.EISDIR, errno.ETXTBSY):
            # A FIFO opened for writing without a reader, a socket, a device without a driver...
            with contextlib.suppress(OSError):
                check_regular(os.lstat(path), path)
        raise
    try:
        check_regular(os.fstat(fd), path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def stat_regular(path: str) -> os.stat_result:
    """The `lstat` of domain file `path`, only if it is a regular file of one link (nothing opened)."""
    return check_regular(os.lstat(path), path)


def read_small(path: str, limit: int, what: str) -> bytes:
    """All of domain file `path` (`open_regular`), refused as damaged if it holds more than `limit` bytes:
    metadata files are small, and a huge one must not be read into memory. OSErrors become storage
    errors, transient or not (`from_os_error`), but for `FileNotFoundError`, which the caller names."""
    try:
        fd = open_regular(path, os.O_RDONLY)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise from_os_error(e, f"{what} {quoted(path)}") from e
    try:
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise from_os_error(e, f"{what} {quoted(path)}") from e
    finally:
        os.close(fd)
    if len(data) > limit:
        raise InvalidMetadata(f"{what} {quoted(path)} holds more than {limit} bytes; it is damaged, not read")
    return data


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, mode: int = 0o644) -> None:
    """Write `path.new`, fsync, rename over `path`, fsync the directory: readers see old or new, whole.

    A leftover `path.new` is removed first and the new one created exclusively: one placed there as a
    link would otherwise have its target truncated and written. The rename replaces a link at `path`
    itself, never its target."""
    tmp = path + ".new"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)  # the mode VDSM uses, whatever the agent's umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    fsync_dir(os.path.dirname(path) or ".")


def create_empty(path: str, mode: int) -> None:
    # O_EXCL never follows a link: an existing name of any kind is FileExistsError.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def contained(path: str, roots: tuple[str, ...]) -> str:
    """The real path of `path` if it lies under one of `roots` (symlinks resolved), else refuse."""
    real = os.path.realpath(path)
    for root in roots:
        real_root = os.path.realpath(root)
        if real == real_root or real.startswith(real_root.rstrip("/") + "/"):
            return real
    raise PathOutsideRoots(
        f"{cut(path)} is outside the agent's storage roots ({', '.join(roots)}); use a path under one of them"
    )
