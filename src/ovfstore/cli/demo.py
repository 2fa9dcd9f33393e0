"""`ovfstore demo`: protect, lose the engine, recover, and check, on this machine, in a temporary directory.

1. Start a host agent (a real process) and an engine (SQLite); create a data center's two storage domains.
2. Build an inventory: templates and VMs with disks (created on storage), NICs, snapshots, some running.
3. Wait until every domain's OVF stores are up to date, and show their status.
4. Lose the engine: stop it and delete its database. Only the storage domains remain.
5. Start a fresh engine, import both domains, register every template and VM, restart what was running.
6. Compare the recovered inventory with the original, field by field. Exit 0 only if they match.

With `--storage block` the two domains are iSCSI-style block domains (an LVM volume group each) on loop
devices over sparse image files, created and imported by their LUNs; that needs root, lvm2 and loop
devices, and without them the demo says which is missing and exits 77 (skipped).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import click
from rich.console import Console
from rich.table import Table

from ovfstore.agent.process import LocalAgent
from ovfstore.engine.config import AgentAccess, UpdaterConfig
from ovfstore.engine.ovfsource import load_ovf_data
from ovfstore.engine.recovery import RegistrationOptions
from ovfstore.engine.recovery.compare import NOT_SURVIVING, compare_inventories
from ovfstore.engine.runtime import Engine, EngineConfig
from ovfstore.engine.updater.status import domains_status, entities_pending
from ovfstore.model import (
    GIB,
    Disk,
    DiskAttachment,
    Host,
    LogicalUnit,
    Nic,
    OvfData,
    Snapshot,
    StorageDomain,
    StorageType,
    Template,
    Vm,
    VmStatus,
    Volume,
    VolumeType,
)

console = Console(highlight=False)


#: The exit status of a demo that could not run here (automake's "skipped").
SKIPPED = 77


@click.command()
@click.option("--vms", default=8, show_default=True, help="How many VMs to protect.")
@click.option("--dir", "workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Work here instead of a temporary directory (kept afterwards).")  # fmt: skip
@click.option("--storage", type=click.Choice(["file", "block"]), default="file", show_default=True,
              help="File domains (directories), or block domains (LVM on loop devices: root and lvm2).")  # fmt: skip
def demo(vms: int, workdir: Path | None, storage: str) -> None:
    """Protect an inventory, lose the engine, recover it from the storage domains alone, and check."""
    if storage == "block":
        missing = block_unavailable()
        if missing:
            console.print(f"[yellow]SKIPPED[/]: the block demo cannot run here: {missing}")
            raise SystemExit(SKIPPED)
    keep = workdir is not None
    base = workdir or Path(tempfile.mkdtemp(prefix="ovfstore-demo-"))
    try:
        ok = _run(base, vms, storage == "block")
    finally:
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
    raise SystemExit(0 if ok else 1)


def block_unavailable() -> str:
    """Why block domains on loop devices cannot be made here ("" when they can)."""
    if os.geteuid() != 0:
        return "it needs root (loop devices and LVM), run it as root"
    if shutil.which("lvm") is None:
        return "lvm2 is not installed (apt-get install lvm2)"
    if shutil.which("losetup") is None:
        return "losetup is not installed (apt-get install mount)"
    if not Path("/dev/loop-control").exists():
        return "this machine has no loop devices (/dev/loop-control is missing)"
    return ""


#: Each LUN is a sparse image: a domain's special LVs take about 4.6 GiB and its disks are preallocated
#: LVs, but nothing is written into them, so the image costs only what the stores and LVM metadata use.
LUN_SIZE = 64 * GIB


@dataclass(frozen=True, slots=True)
class _Luns:
    devices: tuple[str, ...]  # /dev/loopN, one per domain
    lvm_system_dir: Path

    def agent_args(self) -> list[str]:
        args = [arg for device in self.devices for arg in ("--device", device)]
        return [*args, "--lvm-system-dir", str(self.lvm_system_dir)]


@contextmanager
def _loop_luns(base: Path, count: int) -> Iterator[_Luns]:
    """`count` loop devices over sparse images in `base/luns`, and an LVM configuration of their own that
    sees only them (the host's LVM state is never touched). Detached on the way out; the images stay
    with `--dir`, for `ovfstore inspect`."""
    luns = base / "luns"
    luns.mkdir(parents=True, exist_ok=True)
    devices: list[str] = []
    try:
        for i in range(count):
            image = luns / f"lun{i}.img"
            with image.open("wb") as file:
                file.truncate(LUN_SIZE)
            done = subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True, text=True)
            if done.returncode:
                raise click.ClickException(f"losetup could not attach {image}: {done.stderr.strip()[:300]}")
            devices.append(done.stdout.strip())
        etc = luns / "lvm"
        etc.mkdir(exist_ok=True)
        accept = ", ".join(f'"a|^{device}$|"' for device in devices)
        (etc / "lvm.conf").write_text(
            f'devices {{\nfilter = [ {accept}, "r|.*|" ]\nglobal_filter = [ {accept}, "r|.*|" ]\n'
            'obtain_device_list_from_udev = 0\nexternal_device_info_source = "none"\nuse_devicesfile = 0\n}\n'
            "activation {\nudev_sync = 0\nudev_rules = 0\n}\nbackup {\nbackup = 0\narchive = 0\n}\n"
        )
        yield _Luns(tuple(devices), etc)
    finally:
        for device in devices:
            subprocess.run(["losetup", "-d", device], capture_output=True, check=False)


def _step(text: str) -> float:
    console.print(f"\n[bold cyan]==>[/] [bold]{text}[/]")
    return time.monotonic()


def _done(started: float, text: str = "") -> None:
    console.print(f"    [green]done[/] in {time.monotonic() - started:.2f} s{(': ' + text) if text else ''}")


def _engine(base: Path, name: str, agent: LocalAgent) -> Engine:
    (base / name).mkdir(parents=True, exist_ok=True)
    config = EngineConfig(
        db_url=f"sqlite:///{base / name / 'engine.db'}",
        agent=AgentAccess(secret=agent.secret, timeout_s=60),
        # A short debounce so the demo shows protection within about a second of a change.
        updater=UpdaterConfig(debounce_s=0.5),
    )
    engine = Engine(config)
    engine.start()
    return engine


@dataclass(frozen=True, slots=True)
class _Protected:
    """What engine A leaves behind for engine B to recover: the domains and what they must bring back."""

    domains: tuple[tuple[str, UUID], ...]  # name and id, the master first
    luns: tuple[str, ...]  # block domains: a LUN of each domain, in the same order; () for file domains
    original: dict[UUID, OvfData]
    running: set[UUID]


def _run(base: Path, vm_count: int, block: bool) -> bool:
    storage = base / "storage"
    console.print(f"[bold]ovfstore demo[/] in {base}" + (" (block domains on loop devices)" if block else ""))
    if not block:
        t = _step("Starting a host agent and engine A")
        agent = LocalAgent([storage], base / "agent")
        try:
            protected = _protect(base, storage, agent, vm_count, t, None)
            return _recover(base, storage, agent, protected)
        finally:
            agent.stop()
    t = _step("Attaching two loop devices (the LUNs) and starting a host agent that may use them, and engine A")
    with _loop_luns(base, 2) as luns:
        agent = LocalAgent([storage], base / "agent", extra_args=luns.agent_args())
        try:
            protected = _protect(base, storage, agent, vm_count, t, luns)
            return _recover(base, storage, agent, protected)
        finally:
            agent.stop()


def _protect(
    base: Path, storage: Path, agent: LocalAgent, vm_count: int, started: float, luns: _Luns | None
) -> _Protected:
    """Engine A: two domains, an inventory, every store up to date; then the engine is lost."""
    engine = _engine(base, "engine-a", agent)
    try:
        inv = engine.inventory
        cluster = inv.clusters.list()[0]
        dc = inv.data_centers.get(cluster.data_center_id)
        host = inv.hosts.add(Host(name="host1", cluster_id=cluster.id, address=agent.url))
        _done(started, f"agent at {agent.url}, data center {dc.name!r}")

        lun_ids: tuple[str, ...] = ()
        if luns is None:
            t = _step("Creating two storage domains and attaching them")
            gold = engine.domains.create(StorageDomain(name="gold", path=str(storage), data_center_id=dc.id), host)
            silver = engine.domains.create(StorageDomain(name="silver", path=str(storage), data_center_id=dc.id), host)
            _done(t, f"gold {gold.id} (master), silver {silver.id}")
        else:
            t = _step("Creating two iSCSI storage domains, one on each LUN, and attaching them")
            offered = {d.path: d.id for d in engine.domains.host_devices(host)}
            lun_ids = tuple(offered[device] for device in luns.devices)
            gold, silver = (
                engine.domains.create(
                    StorageDomain(
                        name=name,
                        storage_type=StorageType.ISCSI,
                        data_center_id=dc.id,
                        logical_units=[LogicalUnit(id=lun)],
                    ),
                    host,
                )
                for name, lun in zip(("gold", "silver"), lun_ids, strict=True)
            )
            _done(t, f"gold {gold.id} on LUN {lun_ids[0]} (master), silver {silver.id} on LUN {lun_ids[1]}")

        t = _step(f"Building an inventory: 2 templates, {vm_count} VMs with disks, NICs and snapshots")
        ids = _build(engine, [gold, silver], vm_count, block=luns is not None)
        _done(t, f"{len(ids)} entities")

        t = _step("Waiting until every domain's OVF stores are up to date")
        _wait_protected(engine)
        _done(t)
        _status_table(engine)
        with engine.db.read() as conn:
            original = load_ovf_data(conn, ids)
        running = {i for i, d in original.items() if isinstance(d.entity, Vm) and d.entity.status is VmStatus.UP}
    finally:
        t = _step("Losing engine A: stopping it and deleting its database")
        engine.stop()
    shutil.rmtree(base / "engine-a")
    _done(t, "only the storage domains remain")
    return _Protected((("gold", gold.id), ("silver", silver.id)), lun_ids, original, running)


def _recover(base: Path, storage: Path, agent: LocalAgent, protected: _Protected) -> bool:
    """Engine B, fresh: import the domains, register everything, restart what ran, compare."""
    how = "by their LUNs" if protected.luns else "by their paths"
    t = _step(f"Starting a fresh engine B and importing both domains {how}")
    engine = _engine(base, "engine-b", agent)
    try:
        inv = engine.inventory
        cluster = inv.clusters.list()[0]
        host = inv.hosts.add(Host(name="host1", cluster_id=cluster.id, address=agent.url))
        domains = []
        for i, (name, domain_id) in enumerate(protected.domains):
            if protected.luns:
                [found_id] = engine.domains.unknown_on_luns(host, [protected.luns[i]])
                imported = engine.recovery.import_block_domain(found_id, host=host, name=name, force_detach=True)
            else:
                imported = engine.recovery.import_domain(
                    str(storage / str(domain_id)), host=host, name=name, force_detach=True
                )
            domains.append(engine.domains.attach(imported.id, cluster.data_center_id))
        found = [e for d in domains for e in engine.recovery.unregistered_entities(d.id)]
        _done(t, f"{len({e.id for e in found})} unregistered VMs and templates found")

        t = _step("Registering everything (templates first), then starting the VMs that were running")
        refused = _register_everything(engine, [d.id for d in domains])
        for entity in sorted(found, key=lambda e: (not e.high_availability, e.name)):
            if entity.vm_status is VmStatus.UP and entity.id in protected.original:
                inv.vms.set_status(entity.id, VmStatus.UP)
        _done(t, f"{len(refused)} refused" if refused else "all registered")
        for line in refused:
            console.print(f"    [red]refused[/] {line}")

        t = _step("Comparing the recovered inventory with the original")
        with engine.db.read() as conn:
            recovered = load_ovf_data(conn, list(protected.original))
        problems = compare_inventories(protected.original, recovered)
        _done(t)
        _wait_protected(engine)
        return _summary(protected.original, recovered, problems, protected.running)
    finally:
        engine.stop()


def _build(engine: Engine, domains: list[StorageDomain], vm_count: int, *, block: bool = False) -> list[UUID]:
    """Templates and VMs with disks created on storage. On block domains a raw disk is a preallocated LV,
    and the disks are a tenth of the size (the LUNs are sparse images; nothing is written into them)."""
    inv = engine.inventory
    scale = 10 if block else 1

    def new_disk(alias: str, gib: int, domain: StorageDomain) -> Disk:
        disk = Disk(alias=alias, provisioned_size=gib * GIB // scale, domain_ids=[domain.id])
        if block:
            disk.volumes = [
                Volume(disk_id=disk.id, capacity=disk.provisioned_size, volume_type=VolumeType.PREALLOCATED)
            ]
        return engine.domains.create_disk(disk)

    cluster = inv.clusters.list()[0]
    profile = inv.vnic_profiles.list()[0]
    templates = []
    for i, domain in enumerate(domains):
        template = inv.templates.add(
            Template(name=f"{('rhel9', 'win2022')[i]}-template", cluster_id=cluster.id,
                     os_type=("rhel_9x64", "windows_2022")[i], memory_mb=2048, max_memory_mb=8192)
        )  # fmt: skip
        disk = new_disk(f"{template.name}_root", 10, domain)
        inv.attachments.attach(DiskAttachment(entity_id=template.id, disk_id=disk.id, bootable=True))
        inv.nics.add(Nic(entity_id=template.id, name="nic1", vnic_profile_id=profile.id))
        templates.append(template)
    ids = [t.id for t in templates]
    for i in range(vm_count):
        home, other = domains[i % 2], domains[(i + 1) % 2]
        vm = inv.vms.add(
            Vm(name=f"vm{i:02d}", cluster_id=cluster.id, template_id=templates[i % 2].id, memory_mb=1024 * (1 + i % 4),
               max_memory_mb=16384, cpu_sockets=1 + i % 2, cpu_cores=2, high_availability=i % 3 == 0,
               priority=100 if i % 3 == 0 else 1, description=f"demo VM {i}")
        )  # fmt: skip
        boot = new_disk(f"vm{i:02d}_root", 20, home)
        inv.attachments.attach(DiskAttachment(entity_id=vm.id, disk_id=boot.id, bootable=True))
        if i % 2 == 0:  # every other VM also has a data disk on the other domain
            data = new_disk(f"vm{i:02d}_data", 50, other)
            inv.attachments.attach(DiskAttachment(entity_id=vm.id, disk_id=data.id))
        inv.nics.add(Nic(entity_id=vm.id, name="nic1", vnic_profile_id=profile.id))
        if i % 4 == 1:
            inv.snapshots.add(Snapshot(vm_id=vm.id, description="before patching"))
        if i % 2 == 1:
            inv.vms.set_status(vm.id, VmStatus.UP)
        ids.append(vm.id)
    return ids


def _wait_protected(engine: Engine, timeout: float = 120) -> None:
    """Until every change is in the OVF cache and every store holds the cache: the updater runs on its own
    (debounced events), this only watches."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = domains_status(engine.db)
        if statuses and all(s.up_to_date for s in statuses) and entities_pending(engine.db) == 0:
            return
        time.sleep(0.1)
    raise click.ClickException("the OVF stores did not become up to date within 2 minutes; see the events")


def _status_table(engine: Engine) -> None:
    table = Table(title="OVF store status", title_justify="left")
    for column in ("domain", "stores", "entities", "generation", "bytes", "last updated", "up to date"):
        table.add_column(column)
    for status in domains_status(engine.db):
        newest = max(status.stores, key=lambda s: s.generation) if status.stores else None
        table.add_row(
            status.name, str(len(status.stores)), str(status.entity_count), str(newest.generation if newest else "-"),
            str(newest.size if newest else "-"),
            status.last_updated.strftime("%H:%M:%S") if status.last_updated else "-",
            "[green]yes[/]" if status.up_to_date else "[red]no[/]",
        )  # fmt: skip
    console.print(table)


def _register_everything(engine: Engine, domain_ids: list[UUID]) -> list[str]:
    """Register domain after domain; a VM whose template lives on a later domain is tried again after."""
    refused: dict[UUID, str] = {}
    for _ in range(len(domain_ids) + 1):
        progress = False
        refused.clear()
        for domain_id in domain_ids:
            for report in engine.recovery.register_all(domain_id, RegistrationOptions()):
                if report.outcome == "registered":
                    progress = True
                else:
                    refused[report.entity_id] = f"{report.name}: {report.reason}"
        if not progress:
            break
    return sorted(refused.values())


def _summary(
    original: dict[UUID, OvfData], recovered: dict[UUID, OvfData], problems: dict[UUID, list[str]], running: set[UUID]
) -> bool:
    table = Table(title="Recovered inventory", title_justify="left")
    for column in ("name", "type", "disks", "NICs", "was running", "recovered"):
        table.add_column(column)
    for entity_id, data in sorted(original.items(), key=lambda kv: (kv[1].entity_type.value, kv[1].entity.name)):
        ok = entity_id in recovered and not problems[entity_id]
        table.add_row(
            data.entity.name, data.entity_type.value, str(len(data.disks)), str(len(data.nics)),
            "yes" if entity_id in running else "", "[green]identical[/]" if ok else "[red]DIFFERENT[/]",
        )  # fmt: skip
    console.print(table)
    console.print("    fields that cannot survive by design (compared by name instead):")
    for field, why in NOT_SURVIVING.items():
        console.print(f"      [dim]{field}: {why}[/]")
    bad = {k: v for k, v in problems.items() if v}
    if bad:
        console.print(f"\n[bold red]FAILED[/]: {len(bad)} of {len(original)} entities came back different:")
        for entity_id, lines in bad.items():
            for line in lines:
                console.print(f"    {original[entity_id].entity.name}: {line}")
        return False
    console.print(
        f"\n[bold green]OK[/]: all {len(original)} VMs and templates came back from the storage domains alone, "
        "identical to the original."
    )
    return True
