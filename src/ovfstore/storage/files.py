"""Durable small-file updates and path containment, shared by the domain code."""

from __future__ import annotations

import os

from ovfstore.storage.errors import PathOutsideRoots


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, mode: int = 0o644) -> None:
    """Write `path.new`, fsync, rename over `path`, fsync the directory: readers see old or new, whole."""
    tmp = path + ".new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
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
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
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
        f"{path} is outside the agent's storage roots ({', '.join(roots)}); use a path under one of them"
    )
