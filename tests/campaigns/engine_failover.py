"""Engine failover campaign: several engines on one PostgreSQL, a random one SIGKILLed every few seconds
under API load; no store may be lost and no committed change may miss the stores.

    .venv/bin/python -m tests.campaigns.engine_failover --rounds 20 --engines 3 --seed 7 [--pg-url URL]

Everything is real: `--engines` processes of `ovfstore engine serve` on a fresh PostgreSQL database
(each its own name, a lease of `--lease` seconds), one agent process over a file domain, the oVirt SDK
as the client. Setup builds `--vms` VMs with a disk on the domain. Then, while a load thread edits random
VMs through random live engines (each edit a new description), every `--interval` seconds one engine,
chosen at random, is SIGKILLed and started again a second later. Meanwhile:

- a monitor reads the leadership row every 0.1 s: the failovers (new terms) and the longest time without
  a leader (no live lease, or from the kill of a leader until a new term leads);
- a checker reads the domain's stores from disk every 0.3 s: a newest complete, verified store must
  always exist and its generation never go back (else a store is lost).

After the last round the load stops, every engine is up, and the stores must converge within
`--settle` seconds: every VM's description as the database holds it (the last edit committed) is in
the newest store (else a change is lost). It prints `rounds, failovers, longest time without a leader,
stores lost, changes lost` and exits non-zero if a store or a change was lost. Bounded by `--rounds`;
the same `--seed` kills the same engines in the same order.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import ovirtsdk4 as sdk
import ovirtsdk4.types as types

from ovfstore.agent.process import LocalAgent
from ovfstore.engine.db.database import Database
from ovfstore.engine.leadership import Leader, current
from ovfstore.storage.metadata import parse_volume_meta
from ovfstore.store import description
from ovfstore.store.tarread import StoreReadError, read_store
from tests.campaigns.crash_stores import DEFAULT_PG, PASSWORD, EngineProcess, database, free_port

# --- a proxy that slows what the engines send to the agent ------------------------------------------------


class SlowProxy:
    """A TCP proxy in front of the agent. `rate` (bytes a second, None: full speed) limits what the
    engines send, so a test can catch an upload in the middle; what the agent answers is not slowed."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.rate: float | None = None
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._stop.set()
        self._server.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                continue
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, slowed: bool) -> None:
        try:
            while data := source.recv(16384 if not slowed or self.rate is None else 4096):
                target.sendall(data)
                rate = self.rate
                if slowed and rate:
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        finally:  # one side gone: the other learns it at once (the agent sees a broken upload)
            for s in (source, target):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()


# --- the stores as the disk has them -----------------------------------------------------------------


@dataclass
class StoreView:
    volume: Path
    complete: bool  # LEGAL, Updated:true, its tar verified
    generation: int
    legality: str = ""
    ovfs: dict[str, bytes] = field(default_factory=dict)


def stores_of(domain_dir: Path) -> list[StoreView]:
    """Every OVF store of a file domain, read from its files with no engine or agent involved."""
    found = []
    for meta_path in sorted((domain_dir / "images").glob("*/*.meta")):
        try:
            meta = parse_volume_meta(meta_path.read_bytes()).to_dict()
        except (OSError, ValueError):
            continue  # being replaced right now (an atomic rename): the next look sees it
        if meta.get("DISKTYPE") != "OVFS":
            continue
        volume = meta_path.with_suffix("")
        desc = description.parse(meta["DESCRIPTION"])
        view = StoreView(volume, False, -1, meta["LEGALITY"])
        if desc.complete and meta["LEGALITY"] == "LEGAL" and desc.size is not None:
            try:
                contents = read_store([volume.read_bytes()[: desc.size]], desc.size)
            except (StoreReadError, OSError):
                contents = None
            if contents is not None and contents.verified and contents.manifest is not None:
                ovfs = {str(k): v for k, v in contents.ovfs.items()}
                view = StoreView(volume, True, contents.manifest.generation, "LEGAL", ovfs)
        found.append(view)
    return found


def newest(domain_dir: Path) -> StoreView | None:
    complete = [s for s in stores_of(domain_dir) if s.complete]
    return max(complete, key=lambda s: s.generation) if complete else None


# --- several engines, one agent ----------------------------------------------------------------------


def write_config(path: Path, lease_s: float, debounce_s: float, incremental: bool = True) -> Path:
    path.write_text(
        f"[updater]\ndebounce_s = {debounce_s}\nbackoff_initial_s = 0.5\nbackoff_max_s = 2.0\nsweep_interval_s = 20.0\n"
        f"incremental = {'true' if incremental else 'false'}\n[engine]\nlease_s = {lease_s}\n"
    )
    return path


@dataclass
class Cluster:
    workdir: Path
    db_url: str
    agent: LocalAgent
    proxy: SlowProxy
    engines: list[EngineProcess]
    domain_id: str = ""
    vm_ids: list[str] = field(default_factory=list)
    _db: Database | None = None

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = Database(self.db_url, pool_size=2)
        return self._db

    @property
    def domain_dir(self) -> Path:
        return next((self.workdir / "storage").rglob(f"{self.domain_id}/dom_md")).parent

    def leader(self) -> Leader | None:
        return current(self.db)

    def engine(self, name: str) -> EngineProcess:
        return next(e for e in self.engines if e.name == name)

    def live(self) -> list[EngineProcess]:
        return [e for e in self.engines if e.process is not None and e.process.poll() is None]

    def close(self) -> None:
        for engine in self.engines:
            if engine.process is not None and engine.process.poll() is None:
                engine.process.send_signal(signal.SIGCONT)
            engine.stop()
            engine.log.close()
        self.agent.stop()
        self.proxy.close()
        if self._db is not None:
            self._db.dispose()


@contextmanager
def cluster(
    workdir: Path, db_url: str, count: int, lease_s: float, debounce_s: float, incremental: bool = True
) -> Iterator[Cluster]:
    """`count` engines (e0, e1...) started one after the other: e0 leads first. `incremental` false: every
    write is whole (a test that pauses a leader in the middle of a long upload needs one)."""
    storage = workdir / "storage"
    agent = LocalAgent([storage], workdir)
    proxy = SlowProxy(agent.port)
    secret_file = workdir / "engine.secret"
    secret_file.write_text(agent.secret)
    config = write_config(workdir / "engine.toml", lease_s, debounce_s, incremental)
    engines = [EngineProcess(db_url, workdir, secret_file, free_port(), f"e{i}", config) for i in range(count)]
    site = Cluster(workdir, db_url, agent, proxy, engines)
    try:
        for engine in engines:
            engine.start()
        yield site
    finally:
        site.close()


def connect(engine: EngineProcess) -> sdk.Connection:
    return sdk.Connection(url=engine.url, username="admin@internal", password=PASSWORD, timeout=60)


def build(site: Cluster, vms: int, via: EngineProcess) -> None:
    """Through `via`'s API: the agent (through the proxy) as host, a file domain, `vms` VMs with a disk."""
    conn = connect(via)
    try:
        system = conn.system_service()
        host = system.hosts_service().add(types.Host(name="host1", address=site.proxy.url))
        path = site.workdir / "storage" / "data1"
        path.mkdir(parents=True)
        sd = system.storage_domains_service().add(types.StorageDomain(
            name="data1", type=types.StorageDomainType.DATA, host=types.Host(name=host.name),
            storage=types.HostStorage(type=types.StorageType.LOCALFS, path=str(path)),
        ))  # fmt: skip
        site.domain_id = sd.id
        dc = system.data_centers_service().list(search="name=Default")[0]
        system.data_centers_service().data_center_service(dc.id).storage_domains_service().add(
            types.StorageDomain(id=sd.id)
        )
        for i in range(vms):
            site.vm_ids.append(add_vm(system, f"vm{i:04d}", sd.id))
    finally:
        conn.close()


def add_vm(system: sdk.services.SystemService, name: str, sd_id: str) -> str:
    vm = system.vms_service().add(types.Vm(
        name=name, cluster=types.Cluster(name="Default"), template=types.Template(name="Blank"),
        memory=1024**3, description="created",
    ))  # fmt: skip
    system.vms_service().vm_service(vm.id).disk_attachments_service().add(types.DiskAttachment(
        disk=types.Disk(name=f"{name}_disk", provisioned_size=1024**3, format=types.DiskFormat.RAW,
                        storage_domains=[types.StorageDomain(id=sd_id)]),
        interface=types.DiskInterface.VIRTIO_SCSI, bootable=True, active=True,
    ))  # fmt: skip
    return str(vm.id)


def edit(engine: EngineProcess, vm_id: str, text: str) -> None:
    conn = connect(engine)
    try:
        conn.system_service().vms_service().vm_service(vm_id).update(types.Vm(description=text))
    finally:
        conn.close()


def descriptions(site: Cluster) -> dict[str, str]:
    """Every VM's description as the database holds it (through any engine that answers)."""
    for engine in site.live():
        try:
            conn = connect(engine)
            try:
                return {str(vm.id): vm.description or "" for vm in conn.system_service().vms_service().list()}
            finally:
                conn.close()
        except Exception:  # that engine is being killed: ask another
            continue
    raise RuntimeError("no engine answers")


def wait_for(condition: object, timeout: float, what: str, step: float = 0.1) -> float:
    """Seconds until `condition()` held; AssertionError after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(step)
    raise AssertionError(f"{what}: not within {timeout} s")


def converged(site: Cluster) -> bool:
    """The newest store holds every VM with its description as the database has it now."""
    store = newest(site.domain_dir)
    if store is None:
        return False
    wanted = descriptions(site)
    return all(
        vm in store.ovfs and f"<Description>{text}</Description>".encode() in store.ovfs[vm]
        for vm, text in wanted.items()
    )


# --- the campaign -------------------------------------------------------------------------------------


@dataclass
class Watch:
    """What the monitor and the checker saw."""

    failovers: int = 0
    longest_gap: float = 0.0
    stores_lost: list[str] = field(default_factory=list)
    killed_leader_at: dict[int, float] = field(default_factory=dict)  # term -> when its engine was killed


def monitor(site: Cluster, watch: Watch, stop: threading.Event) -> None:
    last_term, gap_since = 0, None
    while not stop.wait(0.1):
        try:
            leader = site.leader()
        except Exception:
            continue
        now = time.monotonic()
        if leader is None or not leader.alive:
            gap_since = gap_since or now
            continue
        if gap_since is not None:
            watch.longest_gap = max(watch.longest_gap, now - gap_since)
            gap_since = None
        if leader.term != last_term:
            if last_term:
                watch.failovers += 1
            killed = [t for t in watch.killed_leader_at if t < leader.term]
            for term in killed:
                watch.longest_gap = max(watch.longest_gap, now - watch.killed_leader_at.pop(term))
            last_term = leader.term


def checker(site: Cluster, watch: Watch, stop: threading.Event) -> None:
    floor = -1
    while not stop.wait(0.3):
        store = newest(site.domain_dir)
        if store is None:
            watch.stores_lost.append("no complete, verified store on the domain")
        elif store.generation < floor:
            watch.stores_lost.append(f"the newest store went back from generation {floor} to {store.generation}")
        else:
            floor = store.generation


def load(site: Cluster, rng: random.Random, stop: threading.Event) -> None:
    counter = 0
    while not stop.is_set():
        engines = site.live()
        if not engines:
            time.sleep(0.1)
            continue
        counter += 1
        try:
            edit(rng.choice(engines), rng.choice(site.vm_ids), f"edit-{counter}")
        except Exception:  # its engine was killed meanwhile; the database says whether it committed
            time.sleep(0.05)


def rounds(site: Cluster, rng: random.Random, count: int, interval: float, watch: Watch) -> None:
    for number in range(1, count + 1):
        time.sleep(interval)
        victim = rng.choice(site.engines)
        leader = site.leader()
        if leader is not None and leader.alive and leader.engine == victim.name:
            watch.killed_leader_at[leader.term] = time.monotonic()
        victim.kill()
        print(
            f"round {number}: killed {victim.name}"
            + (" (the leader)" if victim.name == getattr(leader, "engine", None) else ""),
            flush=True,
        )
        time.sleep(1.0)
        victim.start()


def campaign(site: Cluster, args: argparse.Namespace, rng: random.Random) -> tuple[Watch, int]:
    build(site, args.vms, site.engines[0])
    wait_for(lambda: converged(site), 60, "the first write of the stores")
    watch, stop, load_stop = Watch(), threading.Event(), threading.Event()
    threads = [threading.Thread(target=f, args=(site, watch, stop), daemon=True) for f in (monitor, checker)]
    threads.append(threading.Thread(target=load, args=(site, random.Random(rng.random()), load_stop), daemon=True))
    for t in threads:
        t.start()
    try:
        rounds(site, rng, args.rounds, args.interval, watch)
    finally:
        load_stop.set()
        threads[-1].join(30)
    lost = 0
    try:
        wait_for(lambda: converged(site), args.settle, "the stores converging", step=0.5)
    except AssertionError:
        store = newest(site.domain_dir)
        wanted = descriptions(site)
        lost = sum(
            1 for vm, text in wanted.items()
            if store is None or f"<Description>{text}</Description>".encode() not in store.ovfs.get(vm, b"")
        )  # fmt: skip
    stop.set()
    for t in threads[:-1]:
        t.join(5)
    return watch, lost


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--engines", type=int, default=3)
    parser.add_argument("--interval", type=float, default=4.0, help="seconds between kills")
    parser.add_argument("--lease", type=float, default=3.0, help="the engines' lease_s")
    parser.add_argument("--vms", type=int, default=10)
    parser.add_argument("--settle", type=float, default=60.0, help="seconds the stores may take to converge")
    parser.add_argument("--pg-url", default=os.environ.get("OVFSTORE_TEST_PG_URL", DEFAULT_PG))
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    print(
        f"failover campaign: {args.rounds} rounds, {args.engines} engines, lease {args.lease} s, seed {seed}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="ovfstore-failover-") as tmp:
        workdir = Path(tmp)
        with (
            database("postgresql", args.pg_url, workdir) as db_url,
            cluster(workdir, db_url, args.engines, args.lease, 0.5) as site,
        ):
            watch, lost = campaign(site, args, rng)
    print(
        f"rounds {args.rounds}, failovers {watch.failovers}, longest time without a leader {watch.longest_gap:.1f} s, "
        f"stores lost {len(watch.stores_lost)}, changes lost {lost}",
        flush=True,
    )
    for problem in watch.stores_lost[:10]:
        print(f"  {problem}")
    return 1 if watch.stores_lost or lost else 0


if __name__ == "__main__":
    sys.exit(main())
