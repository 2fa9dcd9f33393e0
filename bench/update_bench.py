"""The OVF store updater at scale: N VMs (2 disks and 2 NICs each) over file domains on the local disk.

    python bench/update_bench.py [--vms 10000] [--domains D] [--dir /var/tmp] [--db-url URL] [--json]
                                 [--profile DIR]

Measured, each from the change until every affected store is durable (the agent answers after fsync):
the full first update, an update after 1 VM changed and after 100 VMs changed. Also the engine's peak
RSS (the engine runs in a process of its own; the agent in another), the bytes each update wrote into
stores (the agent's copies included), the CPU time the engine used for each (all its threads: the
work done, whatever else shares the machine), and, in the same run, `dd` writing each update's bytes with
`conv=fsync` to the same filesystem: the physical limit, given as a ratio (dd's time / the update's
time; 1.0 is the disk's speed).

The domains are 4 (16 from 100,000 VMs on); VM i has a disk on domains i%D and (i+1)%D, so each domain
holds 2N/D VMs. If the engine process fails or dies, the benchmark stops with its exit status and the
tail of its standard error, and exits non-zero. `--profile DIR` samples the engine with py-spy (one
collapsed-stack file per update, `DIR/<update>.txt`, and the agent's over the whole run).

Setting up the inventory is not measured: it is inserted in bulk, not through the inventory commands.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inventory_shape import DOMAINS, open_mac_pool, populate
from ovfstore.agent.client import AgentClient
from ovfstore.agent.process import LocalAgent, exit_status
from ovfstore.engine.config import AgentAccess, UpdaterConfig
from ovfstore.engine.db.database import Database
from ovfstore.engine.hosts import AgentDirectory
from ovfstore.engine.inventory import Inventory, VmChanges
from ovfstore.engine.updater.service import OvfUpdater
from ovfstore.model import (
    DomainStatus,
    Host,
    StorageDomain,
)

MiB = 1 << 20
#: The update phases, in order, and what each JSON key of the result is called.
PHASES = (("full", "full"), ("one_change", "one_change"), ("hundred_changes", "hundred_changes"))


def default_domains(vms: int) -> int:
    return 16 if vms >= 100_000 else DOMAINS


@dataclass
class Setup:
    db_url: str
    agent_url: str
    secret: str
    vm_ids: list[uuid.UUID]
    stderr_path: Path
    agent_pid: int
    profile_dir: Path | None = None


def setup(workdir: Path, db_url: str | None, vms: int, count: int) -> tuple[Setup, LocalAgent]:
    root = workdir / "storage"
    agent = LocalAgent([root], workdir)
    url, secret = agent.url, agent.secret
    db = Database(db_url or f"sqlite:///{workdir / 'engine.db'}")
    db.migrate()
    inv = Inventory(db)
    inv.bootstrap()
    dc = open_mac_pool(inv)
    cluster = inv.clusters.list()[0]
    inv.hosts.add(Host(name="host1", cluster_id=cluster.id, address=url))
    domains = []
    with AgentClient(url, secret) as client:
        for n in range(count):
            domain = StorageDomain(name=f"sd{n}", path=str(root), data_center_id=dc.id, status=DomainStatus.ACTIVE)
            client.create_domain(domain.id, domain.name, parent=str(root))
            client.attach(domain.id, dc.id, master=n == 0)
            domains.append(inv.storage_domains.add(domain))
    ids = populate(db, inv, domains, cluster.id, vms)
    db.dispose()
    engine_db = str(db.url.render_as_string(hide_password=False))
    return Setup(engine_db, url, secret, ids, workdir / "engine.stderr", agent.process.pid), agent


class Profiler:
    """py-spy sampling one process (all its threads, idle ones left out) into a collapsed-stack file."""

    def __init__(self, pid: int, out: Path | None) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        if out is not None:
            beside = Path(sys.executable).parent / "py-spy"  # installed in the same virtualenv
            spy = str(beside) if beside.exists() else shutil.which("py-spy")
            if spy is None:
                raise SystemExit("--profile needs py-spy (pip install py-spy)")
            command = [spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "250", "-o", str(out)]
            self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)  # py-spy attaches

    def stop(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGINT)
            self._process.wait(timeout=60)


def engine_cpu() -> float:
    """CPU seconds the engine process (all its threads) has used: the work, whatever else shares the machine."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def engine_phase(setup: Setup, out: Any) -> None:
    """Runs in its own process, so its peak RSS is the engine's alone; its stderr goes to a file the
    parent shows when it fails."""
    with open(setup.stderr_path, "ab", buffering=0) as stderr:
        os.dup2(stderr.fileno(), 2)
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115 - the process's stderr
    db = Database(setup.db_url)
    inv = Inventory(db)
    agents = AgentDirectory(db, AgentAccess(secret=setup.secret))
    updater = OvfUpdater(db, inv, agents, UpdaterConfig())
    figures: dict[str, float] = {}

    def timed(name: str, started: float) -> None:
        profile = setup.profile_dir / f"{name}.txt" if setup.profile_dir else None
        profiler = Profiler(os.getpid(), profile)
        if profile is not None:
            started = time.monotonic()
        used = engine_cpu()
        report = updater.run_once()
        figures[f"{name}_s"] = time.monotonic() - started
        figures[f"{name}_cpu_s"] = engine_cpu() - used
        profiler.stop()
        failed = [f"{d}: {r.error}" for d, r in report.domains.items() if r.error]
        if failed:
            more = f" (and {len(failed) - 1} more domains)" if len(failed) > 1 else ""
            raise SystemExit(f"the {name} update failed: {failed[0][:2000]}{more}")
        figures[f"{name}_bytes"] = sum(t.size for r in report.domains.values() for t in r.transfers)
        figures[f"{name}_appended"] = sum(1 for r in report.domains.values() if r.appended is not None)

    timed("full", time.monotonic())
    start = time.monotonic()
    inv.vms.update(setup.vm_ids[0], VmChanges(description="changed once"))
    timed("one_change", start)
    start = time.monotonic()
    for vm_id in setup.vm_ids[1:101]:
        inv.vms.update(vm_id, VmChanges(description="changed in a batch of 100"))
    figures["hundred_commands_s"] = time.monotonic() - start
    timed("hundred_changes", time.monotonic())
    figures["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    agents.close()
    db.dispose()
    out.send(figures)


def tail_of(path: Path, limit: int = 4000) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"(its standard error could not be read: {exc})"
    return data[-limit:].decode("utf-8", "replace").strip() or "(nothing on its standard error)"


def run_engine(prepared: Setup) -> dict[str, float]:
    """The engine's figures; `SystemExit` with its exit status and stderr tail if it ends without them."""
    receive, send = multiprocessing.Pipe(duplex=False)
    child = multiprocessing.get_context("spawn").Process(target=engine_phase, args=(prepared, send))
    child.start()
    send.close()  # the child holds the only writing end: its death ends the pipe
    try:
        figures: dict[str, float] = receive.recv()
    except EOFError:
        child.join()
        raise SystemExit(
            f"the engine process ended with {exit_status(child.exitcode or 0)} before reporting; "
            f"the end of its standard error:\n{tail_of(prepared.stderr_path)}"
        ) from None
    child.join()
    return figures


def dd_same_bytes(directory: Path, size: int) -> float:
    target = directory / "dd.out"
    start = time.monotonic()
    # Exactly `size` bytes: in one block below 64 MiB (an appended segment is a few KiB, and a whole MiB
    # would flatter the updater), in MiB blocks above.
    block, count = (max(size, 1), 1) if size < 64 * MiB else ("1M", (size + MiB - 1) // MiB)
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={target}", f"bs={block}", f"count={count}", "conv=fsync", "status=none"],
        check=True,
    )
    elapsed = time.monotonic() - start
    target.unlink()
    return elapsed


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    domains = args.domains or default_domains(args.vms)
    if not args.json:
        print(f"setting up {args.vms} VMs over {domains} domains in {workdir} ...", flush=True)
    prepared, agent = setup(workdir, args.db_url, args.vms, domains)
    try:
        if args.profile:
            prepared.profile_dir = Path(args.profile).resolve()
            prepared.profile_dir.mkdir(parents=True, exist_ok=True)
        agent_profiler = Profiler(agent.process.pid, prepared.profile_dir and prepared.profile_dir / "agent.txt")
        figures = run_engine(prepared)
        agent_profiler.stop()
        result: dict[str, Any] = {"vms": args.vms, "domains": domains}
        for phase, key in PHASES:
            result[f"{key}_s"] = round(figures[f"{phase}_s"], 3)
            result[f"{key}_cpu_s"] = round(figures[f"{phase}_cpu_s"], 3)
            result[f"{key}_domains_appended"] = int(figures[f"{phase}_appended"])
        result["peak_rss_mib"] = round(figures["peak_rss_mib"], 1)
        result["bytes_written"] = int(sum(figures[f"{phase}_bytes"] for phase, _ in PHASES))
        result["dd_same_bytes_s"] = round(dd_same_bytes(workdir, result["bytes_written"]), 3)
        for phase, key in PHASES:
            size = int(figures[f"{phase}_bytes"])
            dd_s = dd_same_bytes(workdir, size)
            result[f"{key}_bytes"] = size
            result[f"dd_{key}_s"] = round(dd_s, 3)
            result[f"{key}_vs_dd"] = round(dd_s / figures[f"{phase}_s"], 3)
        return result
    finally:
        agent.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vms", type=int, default=10_000)
    parser.add_argument("--domains", type=int, default=None, help="file domains (default: 4; 16 from 100,000 VMs)")
    parser.add_argument("--dir", default="/var/tmp", help="a directory on the local disk (not tmpfs)")
    parser.add_argument("--db-url", default=None, help="engine database (default: SQLite in the work directory)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--profile", default=None, help="write py-spy profiles of each update into this directory")
    args = parser.parse_args()
    if args.vms < 101:
        parser.error("--vms must be at least 101 (the benchmark changes 1, then 100 VMs)")

    workdir = Path(tempfile.mkdtemp(prefix="ovfstore-update-bench-", dir=args.dir))
    try:
        result = measure(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
        return
    rows = [("VMs", result["vms"]), ("file domains", result["domains"])]
    rows.append(("full first update (s)", f"{result['full_s']}  ({args.vms / result['full_s']:.0f} VMs/s)"))
    for phase, title in (("full", "full update"), ("one_change", "after 1 VM changed"),
                         ("hundred_changes", "after 100 VMs changed")):  # fmt: skip
        rows.append((f"{title}: s", result[f"{phase}_s"]))
        rows.append((f"{title}: engine CPU s", result[f"{phase}_cpu_s"]))
        rows.append((f"{title}: bytes written", result[f"{phase}_bytes"]))
        rows.append((f"{title}: domains appended to", result[f"{phase}_domains_appended"]))
        rows.append((f"{title}: dd of those bytes (s)", result[f"dd_{phase}_s"]))
        rows.append((f"{title}: x dd", result[f"{phase}_vs_dd"]))
    rows.append(("engine peak RSS (MiB)", result["peak_rss_mib"]))
    for title, value in rows:
        print(f"{title:<40}{value:>24}")


if __name__ == "__main__":
    main()
