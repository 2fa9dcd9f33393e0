"""Advisory locks across processes: `flock` on a volume's `.lease` file or on a domain's `dom_md`.

`flock` belongs to the open file description, so two requests in one agent exclude each other as two
agents do, and the kernel drops the lock when its holder dies (a SIGKILLed agent never leaves a volume
locked). Locks are taken without waiting: a busy volume is reported at once, the caller retries.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ovfstore.storage.errors import StorageUnavailable, VolumeBusy
from ovfstore.storage.files import open_regular


@contextmanager
def locked(path: str, exclusive: bool, what: str, directory: bool = False) -> Iterator[None]:
    """Lock `path`, a lease file (opened as every domain file is, `files.open_regular`: a FIFO or a link
    there is refused, never waited on or followed) or, with `directory`, a directory."""
    if directory:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    else:
        fd = open_regular(path, os.O_RDONLY)
    with held(fd, exclusive, what):
        yield


@contextmanager
def held(fd: int, exclusive: bool, what: str) -> Iterator[None]:
    """`flock` the open `fd` without waiting (`VolumeBusy` naming `what` if another holds it), and close
    it at the end: the lock goes with the file description."""
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise VolumeBusy(f"{what} is locked by another transfer or update; retry when that one ends") from e
        yield
    finally:
        os.close(fd)


def wait_exclusive(fd: int, wait_s: float, busy: str) -> None:
    """An exclusive `flock` of `fd`, waited for up to `wait_s` seconds; after that `StorageUnavailable`
    with the message `busy`."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise StorageUnavailable(busy) from None
            time.sleep(0.02)
