"""The engine's settings, one typed object. Every default says why it is what it is.

Each class is a section an operator sets (`[updater]`, `[agent]`) in the file, the environment or the flags
that `engine/settings.py` reads; a field added here is a setting at once (docs/OPERATIONS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class UpdaterConfig:
    # Changes arriving in a burst (a VM created with its disks and NICs is a dozen commands) are written
    # once: the run starts this long after the first change of the burst. 5 s keeps a change's way to the
    # disk within seconds while a burst of a dozen commands costs one run, not twelve.
    debounce_s: float = 5.0
    # The periodic run catches anything an event missed (another engine's change, a host that was down).
    # oVirt runs every 60 minutes; events make that the exception, so 5 minutes costs little.
    sweep_interval_s: float = 300.0
    # After a failed domain update, wait this long before the next attempt, doubling per failure up to the
    # maximum: a dead host is not hammered, and a recovered one is used again within minutes.
    backoff_initial_s: float = 5.0
    backoff_max_s: float = 300.0
    # oVirt's OVF store size, the capacity of a new store: 128 MiB holds ~7,000 VMs of typical OVF size. A
    # store whose domain outgrows it is grown (`store_capacity_max`), and made smaller again, never below
    # this, when the domain shrinks to a quarter of it.
    store_capacity: int = 128 * MIB
    # The most a store grows to; a tar beyond it is refused, never truncated. 2 GiB holds ~110,000 VMs of
    # typical OVF size (18 KB each), far beyond a domain oVirt itself manages (its stores stay at 128 MiB),
    # and stays readable by an oVirt engine, which holds a store's tar in memory whole (a Java byte array,
    # at most 2 GiB). Each domain's stores take up to twice this on its storage.
    store_capacity_max: int = 2048 * MIB
    # OVF stores a domain keeps when it is added or imported without saying (oVirt's engine-wide
    # StorageDomainOvfStoreCount, 2): with two, one complete copy survives any write that fails midway.
    # Each domain may say otherwise (`ovf_store_count`, 0 to 16).
    store_count: int = 2
    # Domains are updated in parallel, each through its own agent connection: the work is streaming and
    # waiting on storage, so a few threads overlap well even on 2 cores; 4 covers a typical data center's
    # domains in one round without piling up connections on one agent.
    parallel_domains: int = 4
    # Written into each store's manifest so a reader can tell who wrote it.
    writer: str = "ovfstore"
    # A domain is "behind" (`ovfstore status` exits 1, the page and the metrics say so) once its recovery
    # point is this old. 0: as soon as any change is not on its stores, the strictest; a monitoring check
    # that must not fire during the debounce sets it above `debounce_s` plus a run (60 s is ample).
    recovery_point_threshold_s: float = 0.0
    # A VM or template locked (a disk being created or copied, a snapshot being taken) keeps its previous
    # OVF on storage and its change waits. Locks normally last seconds to minutes; one held longer than this
    # (a task that died) makes the entity count as unprotected, for someone to look at.
    locked_threshold_s: float = 900.0
    # Incremental writes: a change is appended to the stores as a segment holding only what changed
    # (docs/FORMATS.md section 3), so its cost follows the change, not the domain. Off: every write is whole.
    incremental: bool = True
    # A store is written whole again (compacted) once the bytes appended since its last whole write pass
    # this fraction of that write, or `compact_min`, whichever is larger: oVirt's engine reads every byte of
    # a store and still sees removed VMs until then, so appended history is kept short.
    compact_ratio: float = 0.5
    compact_min: int = 4 * MIB
    # ... or once it holds this many segments (each costs a reader a manifest check).
    max_segments: int = 512


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """The engine's HTTP side ([api])."""

    # `/metrics` computes the per-domain figures (the full status and the unprotected list) at most once in
    # this many seconds, however often it is scraped: a scrape loop cannot keep the database busy. Prometheus
    # scrapes every 15 s or more; 5 s keeps the figures fresh for it. 0: compute at every scrape.
    metrics_cache_s: float = 5.0
    # Empty: `/metrics` needs no login (a scraper has no session). Set: every scrape must carry
    # `Authorization: Bearer <token>` (Prometheus's `authorization: {credentials: ...}`), or gets 401.
    metrics_token: str = ""


@dataclass(frozen=True, slots=True)
class EngineIdentity:
    """Which engine this is among several sharing one database ([engine]), and how they elect the one that
    runs the OVF updater (engine/leadership.py)."""

    # Shown as the leader in `ovfstore status`, the API and the events; must differ between engines.
    # Empty: the host name and the API port (`host:8080`).
    name: str = ""
    # Seconds a leader's lease lasts without renewal. The leader renews it every quarter of this, and stops
    # writing stores before it ends; another engine takes over at most this long (plus a second) after the
    # leader died or lost the database: 8 s keeps a failover under 10 s while a leader may miss three
    # renewals (a database failover, a GC pause) before it has to step down.
    lease_s: float = 8.0


@dataclass(frozen=True, slots=True)
class AgentAccess:
    """How the engine reaches host agents."""

    # The shared secret every agent request carries; agents refuse requests without it.
    secret: str
    # Covers the final fsync of a 128 MiB store on slow NFS, which can take tens of seconds.
    timeout_s: float = 300.0
