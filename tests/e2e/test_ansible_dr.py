"""The `ovirt.ovirt` collection's disaster-recovery role, unmodified (as the PyPI `ansible` package ships it),
against ovfstore engines: the role's own example play (`examples/dr_play.yml`) fails a protected site over
to a fresh engine, runs again to find nothing left to do, then fails back; and the role's mapping generator
writes its var file from a live engine.

The role ignores errors by default, so a task that failed does not stop the play: the test runs it with
Ansible's JSON output and reads every task's result. The NFS export the domain lives on cannot be mounted
here: the agents' shared storage root holds a directory named as VDSM names the mount point of
`10.0.0.1:/exports/prod`, which is what both sites' hosts look like with that export mounted.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import ovirtsdk4 as sdk
import ovirtsdk4.types as types
import pytest
import yaml

from ovfstore.engine.updater.domain import DomainResult
from ovfstore.model import DiskAttachment
from tests.e2e.conftest import ADMIN_PASSWORD, RunningEngine

GIB = 1024**3
MOUNT = "10.0.0.1:_exports_prod"  # VDSM's mount point of 10.0.0.1:/exports/prod
BIN = Path(sys.executable).parent

# The one task of the role that fails whatever the engine, with the fault it fails with: "Update OVF store
# for active storage domain" (tasks/clean/update_ovf_store.yml) names its domain through `iscsi_storage`, a
# variable only the role's iSCSI tasks define, so it fails for every other domain type (the role's clean-up
# goes on; the stores are written when the domain is removed).
ROLE_BUG = (
    "ovirt.ovirt.disaster_recovery : Update OVF store for active storage domain:",
    "'iscsi_storage' is undefined",
)

pytestmark = [
    pytest.mark.slow,
    # Required in CI (`make venv` installs the pinned `ansible`); elsewhere a missing one is a skip.
    pytest.mark.skipif(
        not (BIN / "ansible-playbook").exists() and os.environ.get("CI") != "true",
        reason="ansible is not installed (make venv)",
    ),
]


def _role() -> Path:
    import ansible_collections.ovirt.ovirt as collection  # the collection the `ansible` package bundles

    return Path(collection.__path__[0]) / "roles" / "disaster_recovery"


def _wait(check: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _build_primary(site: RunningEngine) -> dict[str, str]:
    """A protected site: an NFS domain by its connection, a template with a disk, VMs made from it and
    one from Blank, the highly available one and another running."""
    (site.storage / MOUNT).mkdir(parents=True, exist_ok=True)
    conn = site.connect()
    try:
        system = conn.system_service()
        dc = system.data_centers_service().list(search="name=Default")[0]
        system.clusters_service().add(types.Cluster(name="prod", data_center=types.DataCenter(id=dc.id)))
        sd = system.storage_domains_service().add(
            types.StorageDomain(
                name="prod_data", type=types.StorageDomainType.DATA, host=types.Host(name=site.host.name),
                storage=types.HostStorage(type=types.StorageType.NFS, address="10.0.0.1", path="/exports/prod"),
            )
        )  # fmt: skip
        attached = system.data_centers_service().data_center_service(dc.id).storage_domains_service()
        attached.add(types.StorageDomain(id=sd.id))
        status = lambda: attached.storage_domain_service(sd.id).get().status  # noqa: E731
        _wait(lambda: status() == types.StorageDomainStatus.ACTIVE, "the domain to be active")
        vms = system.vms_service()
        template = system.templates_service().add(types.Template(name="rhel9", cluster=types.Cluster(name="prod")))
        # oVirt makes templates from VMs by copying disks, which ovfstore does not do: the template's disk
        # is added through the API and attached through the primary's inventory.
        disk = system.disks_service().add(
            types.Disk(name="rhel9_disk", provisioned_size=GIB, storage_domains=[types.StorageDomain(id=sd.id)])
        )
        site.engine.inventory.attachments.attach(
            DiskAttachment(entity_id=UUID(template.id), disk_id=UUID(disk.id), bootable=True)
        )
        ids = {"sd": sd.id, "template": template.id}
        # The highly available VM is neither the first made nor the first by name: only the role's order
        # can start it first.
        for name, origin, ha in (("db", "rhel9", False), ("web", "rhel9", True), ("batch", "Blank", False)):
            vm = vms.add(
                types.Vm(
                    name=name, cluster=types.Cluster(name="prod"), template=types.Template(name=origin),
                    high_availability=types.HighAvailability(enabled=ha, priority=100 if ha else 1),
                )
            )  # fmt: skip
            _disk(vms.vm_service(vm.id), f"{name}_data", sd.id)
            ids[name] = vm.id
        for name in ("db", "web"):
            vms.vm_service(ids[name]).start()
        system.storage_domains_service().storage_domain_service(sd.id).update_ovf_store()
        return ids
    finally:
        conn.close()


def _disk(vm: sdk.services.VmService, name: str, sd_id: str) -> None:
    vm.disk_attachments_service().add(
        types.DiskAttachment(
            disk=types.Disk(name=name, provisioned_size=GIB, storage_domains=[types.StorageDomain(id=sd_id)]),
            interface=types.DiskInterface.VIRTIO_SCSI, bootable=True, active=True,
        )
    )  # fmt: skip


def _var_file(path: Path, primary_url: str, secondary_url: str, ca_file: Path) -> Path:
    """The role's mapping var file (as its examples/disaster_recovery_vars.yml) filled for ovfstore."""
    site = {"dr_domain_type": "nfs", "dr_storage_domain_type": "data", "dr_wipe_after_delete": False,
            "dr_backup": False, "dr_critical_space_action_blocker": 5, "dr_warning_low_space": 10}  # fmt: skip
    for side in ("primary", "secondary"):
        site.update({
            f"dr_{side}_master_domain": True, f"dr_{side}_name": "prod_data", f"dr_{side}_dc_name": "Default",
            f"dr_{side}_address": "10.0.0.1", f"dr_{side}_path": "/exports/prod",
        })  # fmt: skip
    data: dict[str, Any] = {
        "dr_sites_primary_url": primary_url,
        "dr_sites_primary_username": "admin@internal",
        "dr_sites_primary_ca_file": str(ca_file),
        "dr_sites_secondary_url": secondary_url,
        "dr_sites_secondary_username": "admin@internal",
        "dr_sites_secondary_ca_file": str(ca_file),
        "dr_sites_primary_password": ADMIN_PASSWORD,
        "dr_sites_secondary_password": ADMIN_PASSWORD,
        "dr_import_storages": [site],
        "dr_cluster_mappings": [{"primary_name": "prod", "secondary_name": "Default"}],
        "dr_affinity_group_mappings": [],
        "dr_affinity_label_mappings": [],
        "dr_domain_mappings": [],
        "dr_role_mappings": [],
        "dr_network_mappings": [
            {
                "primary_network_name": "ovirtmgmt",
                "primary_profile_name": "ovirtmgmt",
                "secondary_network_name": "ovirtmgmt",
                "secondary_profile_name": "ovirtmgmt",
            }
        ],
        "dr_lun_mappings": [],
    }
    path.write_text(yaml.safe_dump(data))
    return path


def _play(work: Path, var_file: Path, tag: str, *extra: str) -> dict[str, Any]:
    """Run the role's example play with `tag`; its JSON results."""
    play = work / "dr_play.yml"
    shutil.copy(_role() / "examples" / "dr_play.yml", play)
    # Only the pinned `ansible` package's collections and no configuration of this machine's: no
    # ansible.cfg, no ANSIBLE_* variable from outside, no collection from ~/.ansible or /usr/share/ansible.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    (work / "ansible.cfg").write_text("[defaults]\n")
    env.update(
        ANSIBLE_CONFIG=str(work / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(_role().parents[4]),
        ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCAL_TEMP=str(work / "tmp"), ANSIBLE_HOME=str(work / "home"), ANSIBLE_RETRY_FILES_ENABLED="False",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="False", PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )  # fmt: skip
    command = [str(BIN / "ansible-playbook"), str(play), "-t", tag, "-e", f"@{var_file}",
               "-e", f"ansible_python_interpreter={sys.executable}", "-e", f"dr_running_vms={work / 'running_vms'}",
               # The role's report is /tmp/<dr_report_file>: this test's own, not /tmp/report.log, which tests
               # running at once would delete under each other (the role deletes it first, then prints it).
               "-e", f"dr_report_file=..{work / 'report.log'}", *extra]  # fmt: skip
    done = subprocess.run(
        command, cwd=work, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL
    )
    runs = len(list(work.glob(f"{tag}*.json")))
    (work / f"{tag}{runs or ''}.json").write_text(done.stdout)  # kept for reading after a failure
    try:
        return dict(json.loads(done.stdout))
    except json.JSONDecodeError:
        raise AssertionError(f"ansible-playbook gave no JSON (exit {done.returncode}): {done.stderr[-3000:]}") from None


def _results(output: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (task["task"]["name"], result)
        for play in output["plays"]
        for task in play["tasks"]
        for result in task["hosts"].values()
    ]


def _failed(output: dict[str, Any]) -> list[str]:
    """Every task that failed, ignored or not, with its message."""
    found = []
    for name, result in _results(output):
        items = result.get("results") if isinstance(result.get("results"), list) else []
        if result.get("failed") or any(i.get("failed") for i in items if isinstance(i, dict)):
            message = result.get("msg") or [i.get("msg") for i in items if isinstance(i, dict) and i.get("failed")]
            found.append(f"{name}: {str(message)[:800]}")
    return found


def _check_stats(output: dict[str, Any], failed: list[str]) -> None:
    """Ansible's own count agrees: no failure that stopped the play, and exactly the failed tasks found
    here were ignored (so none was missed in the results read)."""
    [stats] = output["stats"].values()
    assert (stats["failures"], stats["unreachable"], stats["ignored"]) == (0, 0, len(failed)), stats


def _changed_by_ovirt(output: dict[str, Any]) -> list[str]:
    """The oVirt modules' tasks that changed something (the role's own file and report tasks always do)."""
    return [
        name
        for name, result in _results(output)
        if str(result.get("action", "")).startswith("ovirt.ovirt.")
        and result.get("action") != "ovirt.ovirt.ovirt_auth"
        and result.get("changed")
    ]


def _check_recovered(site: RunningEngine, ids: dict[str, str], up: set[str] | None = None) -> None:
    conn = site.connect()
    try:
        system = conn.system_service()
        sd = system.storage_domains_service().storage_domain_service(ids["sd"])
        dc = system.data_centers_service().list(search="name=Default")[0]
        attached = system.data_centers_service().data_center_service(dc.id).storage_domains_service()
        assert attached.storage_domain_service(ids["sd"]).get().status == types.StorageDomainStatus.ACTIVE
        assert sd.get().storage.path == "/exports/prod"
        assert sd.templates_service().list(unregistered=True) == []
        assert sd.vms_service().list(unregistered=True) == []
        template = system.templates_service().template_service(ids["template"])
        assert len(template.disk_attachments_service().list()) == 1
        vms = system.vms_service()
        for name in ("db", "web", "batch"):
            [attachment] = vms.vm_service(ids[name]).disk_attachments_service().list()
            assert conn.follow_link(attachment.disk).name == f"{name}_data"
        assert {v.name for v in vms.list(search="status=up")} == ({"db", "web"} if up is None else up)
    finally:
        conn.close()


@contextmanager
def _evidence(tmp_path: Path) -> Iterator[None]:
    """Keep what explains a failure: the engines' log (they run in this process) in engines.log, and on
    failure the tails of it, of each agent's log and of each play's JSON output, printed for the report."""
    handler = logging.FileHandler(tmp_path / "engines.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s"))
    logger = logging.getLogger("ovfstore")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    except BaseException:
        for path in [tmp_path / "engines.log", *sorted(tmp_path.glob("agent-*.log"))]:
            print(f"--- the last lines of {path}:\n" + "\n".join(path.read_text(errors="replace").splitlines()[-60:]))
        for path in sorted((tmp_path / "ansible").glob("*.json")):
            print(f"--- the last characters of {path}:\n{path.read_text(errors='replace')[-3000:]}")
        raise
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()


def _store_writes(site: RunningEngine) -> list[DomainResult]:
    """Every domain update the site's updater makes from now on (an observer: the updater's threads)."""
    results: list[DomainResult] = []
    site.engine.updater.observe(results.append)
    return results


def test_role_fail_over_and_back(engines: Callable[..., RunningEngine], db_url: str, tmp_path: Path) -> None:
    with _evidence(tmp_path):
        _fail_over_and_back(engines, db_url, tmp_path)


def _fail_over_and_back(engines: Callable[..., RunningEngine], db_url: str, tmp_path: Path) -> None:
    work = tmp_path / "ansible"
    work.mkdir()
    ca_file = work / "ca.pem"  # the role needs one; the loopback API is plain HTTP, so curl never reads it
    ca_file.write_text("")
    primary = engines(f"sqlite:///{tmp_path / 'primary.db'}", "primary_host")
    ids = _build_primary(primary)
    primary.shutdown()  # the primary site is lost; its domain stays on storage

    secondary = engines(db_url, "dr_host")
    writes = _store_writes(secondary)
    var_file = _var_file(work / "dr_vars.yml", primary.url, secondary.url, ca_file)
    first = _play(work, var_file, "fail_over")
    assert _failed(first) == []
    _check_stats(first, [])
    _check_recovered(secondary, ids)
    started = [r["vm"]["name"] for name, r in _results(first) if name.endswith(": Run VMs") and "vm" in r]
    assert started == ["web", "db"]  # the highly available VM first
    again = _play(work, var_file, "fail_over")
    assert _failed(again) == []
    _check_stats(again, [])
    assert _changed_by_ovirt(again) == []
    # ... and not because nothing ran: the domain was added again, unchanged (nothing is left unregistered,
    # so the role has no VM to run).
    ran = {name.split(" : ")[-1] for name, r in _results(again) if not r.get("skipped")}
    assert "Add NFS storage domain" in ran

    # Fail back to the rebuilt primary site: a fresh engine where the lost one was. The VMs are shut down
    # first: the role's fail-back cannot record running VMs (its "Map all running VMs in fact" task adds a
    # list to the string "[]" it set just before, which fails on every ansible-core, whatever the engine).
    _shut_down(secondary, [ids[name] for name in ("db", "web")])
    rebuilt = engines(f"sqlite:///{tmp_path / 'rebuilt.db'}", "primary_host2")
    var_file = _var_file(work / "dr_vars.yml", rebuilt.url, secondary.url, ca_file)
    conn = rebuilt.connect()
    try:  # the rebuilt site has its cluster again (the role maps clusters, it does not create them)
        system = conn.system_service()
        dc = system.data_centers_service().list(search="name=Default")[0]
        system.clusters_service().add(types.Cluster(name="prod", data_center=types.DataCenter(id=dc.id)))
    finally:
        conn.close()
    back = _play(work, var_file, "fail_back", "-e", "dr_target_host=primary", "-e", "dr_source_map=secondary")
    # The secondary's last write of the domain's stores, before the role removed the domain, holds the
    # three VMs and the template: what the rebuilt primary imports.
    written = [(r.generation, r.entity_count) for r in writes if r.domain_id == UUID(ids["sd"]) and r.written]
    assert [count for _, count in written[-1:]] == [4], (
        f"the secondary's store writes (generation, entities): {written}"
    )
    failed = _failed(back)
    assert [f for f in failed if not (f.startswith(ROLE_BUG[0]) and ROLE_BUG[1] in f)] == []
    _check_stats(back, failed)
    _check_recovered(rebuilt, ids, up=set())
    conn = secondary.connect()
    try:  # the secondary was cleaned: its domain removed, the VMs left without disks removed
        assert conn.system_service().storage_domains_service().list() == []
        assert conn.system_service().vms_service().list() == []
    finally:
        conn.close()


def _shut_down(site: RunningEngine, vm_ids: list[str]) -> None:
    conn = site.connect()
    try:
        vms = conn.system_service().vms_service()
        for vm_id in vm_ids:
            vms.vm_service(vm_id).stop()
        _wait(lambda: all(vms.vm_service(i).get().status == types.VmStatus.DOWN for i in vm_ids), "VMs down")
    finally:
        conn.close()


def test_role_generates_its_mapping_from_ovfstore(running: RunningEngine, tmp_path: Path) -> None:
    (running.storage / MOUNT).mkdir(parents=True)
    conn = running.connect()
    try:
        system = conn.system_service()
        sd = system.storage_domains_service().add(
            types.StorageDomain(
                name="prod_data", type=types.StorageDomainType.DATA, host=types.Host(name=running.host.name),
                backup=True, critical_space_action_blocker=7, warning_low_space_indicator=12,
                storage=types.HostStorage(type=types.StorageType.NFS, address="10.0.0.1", path="/exports/prod"),
            )
        )  # fmt: skip
        dc = system.data_centers_service().list(search="name=Default")[0]
        system.data_centers_service().data_center_service(dc.id).storage_domains_service().add(
            types.StorageDomain(id=sd.id)
        )
    finally:
        conn.close()
    work = tmp_path / "ansible"
    work.mkdir()
    (work / "ca.pem").write_text("")
    mapping = work / "mapping.yml"
    settings = work / "generator.yml"
    settings.write_text(
        yaml.safe_dump(
            {
                "site": running.url,
                "username": "admin@internal",
                "password": ADMIN_PASSWORD,
                "ca": str(work / "ca.pem"),
                "var_file": str(mapping),
            }
        )
    )
    output = _play(work, settings, "generate_mapping")
    assert _failed(output) == []
    written = yaml.safe_load(mapping.read_text())
    [storage] = written["dr_import_storages"]
    assert storage == {
        "dr_domain_type": "nfs", "dr_wipe_after_delete": False, "dr_backup": True,
        "dr_critical_space_action_blocker": 7, "dr_storage_domain_type": "data", "dr_warning_low_space": 12,
        "dr_primary_name": "prod_data", "dr_primary_master_domain": True, "dr_primary_dc_name": "Default",
        "dr_primary_path": "/exports/prod", "dr_primary_address": "10.0.0.1",
        # The generator leaves the secondary site's side for the operator (written as comments).
        "dr_secondary_name": None, "dr_secondary_master_domain": None, "dr_secondary_dc_name": None,
        "dr_secondary_path": None, "dr_secondary_address": None,
    }  # fmt: skip
    assert written["dr_sites_primary_url"] == running.url
    # Every section the generator writes is there, the ones ovfstore has nothing for empty.
    assert set(written) == {
        "dr_sites_primary_url", "dr_sites_primary_username", "dr_sites_primary_ca_file", "dr_sites_secondary_url",
        "dr_sites_secondary_username", "dr_sites_secondary_ca_file", "dr_import_storages", "dr_cluster_mappings",
        "dr_affinity_group_mappings", "dr_affinity_label_mappings", "dr_domain_mappings", "dr_role_mappings",
        "dr_network_mappings", "dr_lun_mappings",
    }  # fmt: skip
    assert [d["primary_name"] for d in written["dr_domain_mappings"]] == ["internal-authz"]
    assert written["dr_affinity_group_mappings"] is None
    assert written["dr_lun_mappings"] is None
    assert [c["primary_name"] for c in written["dr_cluster_mappings"]] == ["Default"]
    profiles = written["dr_network_mappings"]
    assert [(p["primary_network_name"], p["primary_profile_name"]) for p in profiles] == [("ovirtmgmt", "ovirtmgmt")]
    conn = running.connect()
    try:
        [profile] = conn.system_service().vnic_profiles_service().list()
        assert profiles[0]["primary_profile_id"] == profile.id
    finally:
        conn.close()
