"""Host-local locks of block domains, in place of VDSM's sanlock leases (docs/AGENT.md, "Locks").

VDSM serialises a domain's LVM metadata changes on the SPM (a cluster lease on the `leases` LV) and
within one host with an operation lock per VG, and holds a volume's lease while it writes it. The agent
is not part of a sanlock cluster: the engine sends the changes of one domain through one host at a time.
On that host, `flock` on files in the lock directory excludes concurrent requests and agents: the VG
lock around every metadata change (waited for: changes are short), a volume lock for the write
protocol (not waited for: a busy volume is reported at once, as on file domains). The kernel drops a
lock when its holder dies, so a SIGKILLed agent leaves nothing locked.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ovfstore.storage.locking import held, wait_exclusive

#: How long a metadata change waits for another one of the same domain.
VG_WAIT_S = 60.0


def lock_dir() -> str:
    """`$OVFSTORE_LOCK_DIR`, else /run/lock/ovfstore (where /run/lock is writable), else under the temp dir."""
    configured = os.environ.get("OVFSTORE_LOCK_DIR")
    if configured:
        return configured
    if os.access("/run/lock", os.W_OK):
        return "/run/lock/ovfstore"
    return os.path.join(tempfile.gettempdir(), f"ovfstore-locks-{os.getuid()}")


def lock_file(name: str) -> int:
    """A descriptor of lock file `name` in the lock directory (created if missing), to `flock`."""
    directory = lock_dir()
    os.makedirs(directory, 0o700, exist_ok=True)
    return os.open(os.path.join(directory, name), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


_held = threading.local()


@contextmanager
def vg_locked(sd_id: str) -> Iterator[None]:
    """The operation lock of domain `sd_id`'s VG, waited for up to `VG_WAIT_S`; a thread that holds it
    already takes it again at once (a change calls another)."""
    held: set[str] = _held.__dict__.setdefault("vgs", set())
    if sd_id in held:
        yield
        return
    fd = lock_file(f"{sd_id}.vg.lock")
    try:
        wait_exclusive(
            fd,
            VG_WAIT_S,
            f"another change of storage domain {sd_id} has held its lock for {VG_WAIT_S:.0f} s; retry later",
        )
        held.add(sd_id)
        try:
            yield
        finally:
            held.discard(sd_id)
    finally:
        os.close(fd)


@contextmanager
def volume_lock(sd_id: str, vol_id: str, exclusive: bool) -> Iterator[None]:
    """The lease of volume `vol_id`: exclusive for a writer, shared for readers; never waited for."""
    with held(lock_file(f"{sd_id}.{vol_id}.lock"), exclusive, f"volume {vol_id}"):
        yield
