"""Fencing: the highest leadership term that has written a domain, kept on the domain's own storage.

Several engines may share one database; one of them, the leader, writes the OVF stores, and every store
write it asks of an agent carries its term (a number that grows with each new leader). The domain keeps
the highest term that has written it: a file domain in the file `dom_md/ovfstore_term`, a block domain
in the VG tag `OVFSTORE_TERM_<n>`. A write with a lower term is refused (`StaleTerm`): an engine that was
paused and lost the leadership meanwhile can never overwrite what a newer leader wrote. Because the term
lives on the domain, it survives agent restarts and is the same for every host that writes the domain.

`fenced` checks and raises the term under a lock of its own (the term file's `flock` on file domains,
which NFS carries between hosts; a host-local lock on block domains, as their other locks), and holds that
lock while the caller changes the volume's metadata: no newer leader can raise the term between the
check and the change. Writes without a term (0: the command line, older engines) are not fenced and
leave the recorded term as it is (docs/AGENT.md, "Fencing").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Protocol

from ovfstore.storage.errors import InvalidMetadata, StaleTerm
from ovfstore.storage.locking import wait_exclusive
from ovfstore.store.quoting import quoted

#: The file of a file domain's `dom_md` that holds its term (VDSM opens the files of `dom_md` by name
#: and does not look at others).
TERM_FILE = "ovfstore_term"
#: The VG tag of a block domain that holds its term: `OVFSTORE_TERM_<n>`.
TERM_TAG_PREFIX = "OVFSTORE_TERM_"
#: How long a fenced change waits for another one of the same domain (each holds the lock for a
#: metadata write, milliseconds; an LVM tag change, a second or two).
LOCK_WAIT_S = 30.0
#: Terms are below 2**63 (PostgreSQL's bigint).
MAX_DIGITS = 19


def parse_term(text: str, where: str) -> int:
    """A term as written on storage or sent in a request: decimal digits, at most 19."""
    text = text.strip()
    if not text:
        return 0
    if not text.isascii() or not text.isdigit() or len(text) > MAX_DIGITS:
        raise InvalidMetadata(f"{where} holds {quoted(text)}, not a term (a whole number of at most 19 digits)")
    return int(text)


def term_of_tags(tags: Iterable[str], sd_id: str) -> int:
    """The term a block domain's VG tags record, 0 when none (the highest, should there be several)."""
    terms = [parse_term(t[len(TERM_TAG_PREFIX) :], f"the VG tag {t}") for t in tags if t.startswith(TERM_TAG_PREFIX)]
    return max(terms, default=0)


def wait_lock(fd: int, what: str, wait_s: float = LOCK_WAIT_S) -> None:
    """An exclusive `flock` of `fd`, waited for up to `wait_s` (`StorageUnavailable` after that)."""
    wait_exclusive(fd, wait_s, f"{what} has been locked for {wait_s:.0f} s by another writer; retry later")


@contextmanager
def fenced(
    lock_fd: int, sd_id: str, term: int, read: Callable[[], int], record: Callable[[int], None]
) -> Iterator[None]:
    """Under the exclusive lock of `lock_fd` (closed at the end): refuse `term` if it is lower than the
    recorded one (`read`), record it (`record`) if it is higher, then run the caller's block."""
    try:
        wait_lock(lock_fd, f"the leadership term of storage domain {sd_id}")
        recorded = read()
        if term < recorded:
            raise StaleTerm(
                f"storage domain {sd_id} has been written under leadership term {recorded}; a write of term {term} "
                "comes from an engine that is no longer the leader and is refused"
            )
        if term > recorded:
            record(term)
        yield
    finally:
        os.close(lock_fd)


class Fenceable(Protocol):
    """What a domain offers for fencing: `term_fenced(term)`, a context manager (see `fenced`)."""

    def term_fenced(self, term: int) -> AbstractContextManager[None]: ...


def fence(domain: Fenceable, term: int | None) -> AbstractContextManager[None]:
    """`domain.term_fenced(term)`, or nothing for a write without a term (None or 0)."""
    return domain.term_fenced(term) if term else nullcontext()
