"""Crash-injection campaign: SIGKILL the host agent or the engine at a random moment of a store update,
then check that the domain always holds a complete, valid store and that the stores converge.

    .venv/bin/python -m tests.campaigns.crash_stores --trials 100 --db sqlite
    .venv/bin/python -m tests.campaigns.crash_stores --trials 100 --db postgresql [--pg-url URL]

Everything is real: an agent process, an engine process (`ovfstore engine serve`) on SQLite or a fresh
PostgreSQL database, a file domain under a temporary directory, the oVirt SDK as the client. Setup builds
`--vms` VMs, each with a disk on the domain. Each trial then:

1. edits one VM (its description becomes the trial's marker) and asks for the domain's OVF update;
2. after a random delay within the measured length of one update, kills the agent or the engine
   (SIGKILL, chosen at random);
3. reads the domain offline (`ovfstore inspect --json`), with both processes dead or dying: a store must
   be chosen, valid and verified, hold every VM, and its generation must not be lower than the last
   generation seen (a failed write never damages the last good store);
4. restarts what it killed, asks for the update again until it succeeds, and checks that the chosen
   store now holds the marker (the stores converge).

It prints one line per trial and a summary `trials N, failures F` and exits non-zero on any failure.
A run is bounded: `--trials` trials, each bounded by `--trial-timeout` seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import ovirtsdk4 as sdk
import ovirtsdk4.types as types

from ovfstore.agent.process import LocalAgent

PASSWORD = "campaign-admin-1"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EngineProcess:
    """`ovfstore engine serve` on a fixed port, so that a restarted engine is found where it was."""

    def __init__(
        self, db_url: str, workdir: Path, secret_file: Path, port: int, name: str = "", config: Path | None = None
    ) -> None:
        self.db_url, self.workdir, self.secret_file, self.port = db_url, workdir, secret_file, port
        self.name, self.config = name, config
        self.url = f"http://127.0.0.1:{port}/ovirt-engine/api"
        log_name = f"engine-{name}.log" if name else "engine.log"
        self.log = open(workdir / log_name, "ab")  # noqa: SIM115 - kept for the life of the campaign
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "ovfstore.cli.main", "engine", "serve", "--db-url", self.db_url,
                   "--data-dir", str(self.workdir), "--port", str(self.port),
                   "--agent-secret-file", str(self.secret_file), "--log-level", "warning"]  # fmt: skip
        command += ["--name", self.name] if self.name else []
        command += ["--config", str(self.config)] if self.config else []
        env = dict(os.environ, OVFSTORE_ADMIN_PASSWORD=PASSWORD)
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the engine exited with {self.process.returncode}; see {self.log.name}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the engine did not listen within 60 s; see {self.log.name}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Site:
    workdir: Path
    storage: Path
    agent: LocalAgent
    engine: EngineProcess
    trial_timeout: float = 120.0
    domain_id: str = ""
    vm_ids: list[str] = field(default_factory=list)

    @property
    def domain_dir(self) -> Path:
        return next(self.storage.rglob(f"{self.domain_id}/dom_md")).parent

    def connect(self) -> sdk.Connection:
        return sdk.Connection(url=self.engine.url, username="admin@internal", password=PASSWORD, timeout=120)

    def restart_agent(self) -> None:
        self.agent.process.kill()
        self.agent.process.wait()
        self.agent.stop()
        self.agent = LocalAgent([self.storage], self.workdir, secret=self.agent.secret, port=self.agent.port)


@contextmanager
def database(kind: str, pg_url: str, workdir: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'engine.db'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    name = f"ovfstore_campaign_{os.getpid()}_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def build_inventory(site: Site, vms: int) -> None:
    conn = site.connect()
    try:
        system = conn.system_service()
        host = system.hosts_service().add(types.Host(name="host1", address=site.agent.url))
        path = site.storage / "data1"
        path.mkdir()
        sd = system.storage_domains_service().add(types.StorageDomain(
            name="data1", type=types.StorageDomainType.DATA, host=types.Host(name=host.name),
            storage=types.HostStorage(type=types.StorageType.LOCALFS, path=str(path)),
        ))  # fmt: skip
        site.domain_id = sd.id
        dc = system.data_centers_service().list(search="name=Default")[0]
        system.data_centers_service().data_center_service(dc.id).storage_domains_service().add(
            types.StorageDomain(id=sd.id)
        )
        cluster = system.clusters_service().list(search="name=Default")[0]
        for i in range(vms):
            vm = system.vms_service().add(types.Vm(
                name=f"vm{i:05d}", cluster=types.Cluster(id=cluster.id), template=types.Template(name="Blank"),
                memory=1024**3, description="created",
            ))  # fmt: skip
            system.vms_service().vm_service(vm.id).disk_attachments_service().add(types.DiskAttachment(
                disk=types.Disk(name=f"vm{i:05d}_disk", provisioned_size=1024**3, format=types.DiskFormat.RAW,
                                storage_domains=[types.StorageDomain(id=sd.id)]),
                interface=types.DiskInterface.VIRTIO_SCSI, bootable=True, active=True,
            ))  # fmt: skip
            site.vm_ids.append(vm.id)
    finally:
        conn.close()


def update_ovf(site: Site, deadline: float) -> None:
    """Ask for the domain's OVF update until it succeeds (the engine may be starting, the agent down)."""
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            conn = site.connect()
            try:
                conn.system_service().storage_domains_service().storage_domain_service(
                    site.domain_id
                ).update_ovf_store()
                return
            finally:
                conn.close()
        except Exception as exc:  # any failure of a service that was just killed: retry until the deadline
            last = exc
            time.sleep(0.5)
    raise TimeoutError(f"the OVF update did not succeed in time: {last}")


def edit(site: Site, vm_id: str, marker: str) -> None:
    conn = site.connect()
    try:
        conn.system_service().vms_service().vm_service(vm_id).update(types.Vm(description=marker))
    finally:
        conn.close()


def inspect(site: Site, export: Path | None = None) -> dict[str, object]:
    command = [sys.executable, "-m", "ovfstore.cli.main", "inspect", "--json", str(site.domain_dir)]
    if export is not None:
        command += ["--export", str(export)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise AssertionError(f"inspect exited {result.returncode}: {result.stderr.strip()[-500:]}")
    report: dict[str, object] = json.loads(result.stdout)
    return report


def check_store(site: Site, floor: int) -> tuple[int, list[str]]:
    """The chosen store's generation, and what is wrong with the domain right now."""
    report = inspect(site)
    stores = report["stores"]
    assert isinstance(stores, list)
    chosen = [s for s in stores if s["chosen"]]
    if not chosen:
        return floor, [f"no store chosen: {[(s['updated'], s['error']) for s in stores]}"]
    store = chosen[0]
    problems = []
    if not (store["valid"] and store["verified"]):
        problems.append(f"chosen store not valid and verified: {store}")
    if store["generation"] < floor:
        problems.append(f"store generation went back from {floor} to {store['generation']}")
    entities = report["entities"]
    assert isinstance(entities, list)
    missing = set(site.vm_ids) - {e["id"] for e in entities}
    if missing:
        problems.append(f"{len(missing)} VMs missing from the chosen store")
    return int(store["generation"]), problems


def holds_marker(site: Site, vm_id: str, marker: str, scratch: Path) -> bool:
    export = scratch / secrets.token_hex(4)
    inspect(site, export)
    return marker.encode() in (export / f"{vm_id}.ovf").read_bytes()


def measure_update(site: Site) -> float:
    started = time.monotonic()
    update_ovf(site, started + 120)
    return time.monotonic() - started


def trial(site: Site, rng: random.Random, number: int, window: float, floor: int) -> tuple[int, list[str]]:
    """One kill and its checks; returns the chosen store's generation afterwards and what went wrong."""
    victim = rng.choice(["agent", "engine"])
    vm_id = rng.choice(site.vm_ids)
    marker = f"trial-{number}-{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + site.trial_timeout
    edit(site, vm_id, marker)
    worker = threading.Thread(target=background_update, args=(site,), daemon=True)
    worker.start()
    time.sleep(rng.uniform(0, window))
    if victim == "agent":
        site.agent.process.send_signal(signal.SIGKILL)
        site.agent.process.wait()
    else:
        site.engine.kill()
    floor, problems = check_store(site, floor)
    if victim == "agent":
        site.restart_agent()
    else:
        site.engine.start()
    worker.join(10)
    update_ovf(site, deadline)
    generation, after = check_store(site, floor)
    problems += after
    if not holds_marker(site, vm_id, marker, site.workdir):
        problems.append(f"the stores did not converge: VM {vm_id} lacks {marker}")
    print(f"trial {number}: killed the {victim}; store generation {floor} -> {generation}; "
          + ("ok" if not problems else "FAILED: " + "; ".join(problems)), flush=True)  # fmt: skip
    return generation, problems


def background_update(site: Site) -> None:
    with contextlib.suppress(Exception):  # it is expected to fail when its engine or agent is killed
        update_ovf(site, time.monotonic() + 5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pg-url", default=os.environ.get("OVFSTORE_TEST_PG_URL", DEFAULT_PG))
    parser.add_argument("--vms", type=int, default=100, help="VMs in the domain (bigger stores, longer writes)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--trial-timeout", type=float, default=120.0)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    print(f"crash campaign: {args.trials} trials on {args.db}, {args.vms} VMs, seed {seed}", flush=True)
    with tempfile.TemporaryDirectory(prefix="ovfstore-crash-") as tmp:
        workdir = Path(tmp)
        with database(args.db, args.pg_url, workdir) as db_url:
            return run(args, rng, workdir, db_url)


def run(args: argparse.Namespace, rng: random.Random, workdir: Path, db_url: str) -> int:
    storage = workdir / "storage"
    agent = LocalAgent([storage], workdir)
    secret_file = workdir / "engine.secret"
    secret_file.write_text(agent.secret)
    engine = EngineProcess(db_url, workdir, secret_file, free_port())
    site = Site(workdir, storage, agent, engine, trial_timeout=args.trial_timeout)
    failures = 0
    try:
        engine.start()
        build_inventory(site, args.vms)
        window = measure_update(site)
        floor, problems = check_store(site, 0)
        if problems:
            print(f"setup: {problems}")
            return 1
        print(f"setup done: one update takes {window:.2f} s; kills land within {1.5 * window:.2f} s", flush=True)
        for number in range(1, args.trials + 1):
            try:
                floor, problems = trial(site, rng, number, 1.5 * window, floor)
            except Exception as exc:  # a trial that cannot finish is a failure, reported, not a crash
                problems = [f"{type(exc).__name__}: {exc}"]
                print(f"trial {number}: FAILED: {problems[0]}", flush=True)
            failures += bool(problems)
    finally:
        engine.stop()
        site.agent.stop()
    print(f"trials {args.trials}, failures {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
