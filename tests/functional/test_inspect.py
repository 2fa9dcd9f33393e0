"""`ovfstore inspect` on real domain directories: written by ovfstore, by oVirt, damaged and hostile."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import tarfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from click.testing import CliRunner, Result

from ovfstore.cli.main import cli
from ovfstore.model import Template, Vm
from ovfstore.offline import inspect_domain
from ovfstore.ovf import read_ovf, write_ovf
from ovfstore.storage.domain import FileDomain
from ovfstore.store import description
from ovfstore.store.tarstream import EntityRef, StoreTar
from tests.fixtures.ovirt_domain import (
    OVIRT_33_VM,
    V2V_VM,
    OvirtStore,
    build_ovirt_domain,
    disks_of,
    java_date,
    ovirt_tar,
    sample_ovfs,
    store_members,
)
from tests.fixtures.segments import RENAMED_V2V, sample_segmented_store
from tests.unit.test_ovf_samples import fixed_sample

POOL = "5c80c932-20ef-4c55-9e06-383c6152a0dc"
TEMPLATE_ID = "22222222-3333-4444-5555-666666666666"
OVIRT_33_DISK = "8c634412-1e8b-4ef3-bc40-b67a456e9d2f"
V2V_DISK = "752b9199-8083-4e60-9be2-b2f13f54790f"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["inspect", *args])


def inspect_json(path: Path, *args: str) -> dict[str, Any]:
    result = run("--json", str(path), *args)
    assert result.exit_code == 0, result.output
    value: dict[str, Any] = json.loads(result.stdout)
    return value


def store_of(report: dict[str, Any], disk_id: str) -> dict[str, Any]:
    matching: list[dict[str, Any]] = [s for s in report["stores"] if s["disk_id"] == disk_id]
    (store,) = matching
    return store


def entities(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["id"]: e for e in report["entities"]}


def template_ovf() -> bytes:
    data = fixed_sample("template")
    data.entity = dataclasses.replace(data.entity, id=UUID(TEMPLATE_ID), name="golden")
    return write_ovf(data)


# --- a domain written by ovfstore's own writer --------------------------------------------------------


def write_ovfstore_store(
    domain: FileDomain, generation: int, created: datetime, ovfs: Mapping[UUID, bytes], vm_status: Mapping[UUID, int]
) -> str:
    """A store as the engine's updater writes it through an agent: volume, tar with manifest, description."""
    disk_id, volume_id = str(uuid4()), str(uuid4())
    domain.create_volume(disk_id, volume_id, 128 << 20, disk_type="OVFS", description=description.never_written())
    tar = StoreTar(
        domain_id=UUID(domain.sd_id), generation=generation, writer="engine-test", created=created,
        entities=[EntityRef(i, len(d)) for i, d in ovfs.items()], unregistered=[], vm_status=vm_status,
        fetch=lambda ids: [(i, ovfs[i]) for i in ids],
    )  # fmt: skip
    data = b"".join(tar.chunks())
    with open(domain.volume_path(disk_id, volume_id), "r+b") as f:
        f.write(data)
    domain.set_description(disk_id, volume_id, description.after_write(UUID(domain.sd_id), len(data), created))
    return disk_id


@pytest.fixture
def ovfstore_domain(tmp_path: Path) -> tuple[Path, FileDomain]:
    roots = (str(tmp_path),)
    domain = FileDomain.create(roots, str(tmp_path), str(uuid4()), "ours", storage_type="LOCALFS")
    base = domain.create_volume("00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-000000000014", 1 << 30)
    domain.create_volume(base.image, "00000000-0000-0000-0000-000000000015", 1 << 30, "COW", parent=base.volume)
    return Path(domain.path), domain


def test_ovfstore_domain_newest_generation_wins_over_a_later_date(ovfstore_domain: tuple[Path, FileDomain]) -> None:
    path, domain = ovfstore_domain
    vm = fixed_sample("vm")
    ovfs = {vm.id: write_ovf(vm), UUID(TEMPLATE_ID): template_ovf()}
    newer = write_ovfstore_store(domain, 5, datetime(2024, 1, 1, tzinfo=UTC), ovfs, {vm.id: 4})
    older = write_ovfstore_store(domain, 4, datetime(2024, 6, 1, tzinfo=UTC), {}, {})

    report = inspect_json(path)
    chosen = store_of(report, newer)
    assert (chosen["chosen"], chosen["valid"], chosen["verified"], chosen["generation"]) == (True, True, True, 5)
    assert chosen["last_updated"] == "2024-01-01T00:00:00+00:00"
    assert (store_of(report, older)["chosen"], store_of(report, older)["generation"]) == (False, 4)
    found = entities(report)
    assert found[str(vm.id)]["status"] == "paused"
    assert found[str(vm.id)]["type"] == "vm"
    assert found[TEMPLATE_ID] == {
        "id": TEMPLATE_ID,
        "name": "golden",
        "type": "template",
        "status": "ok",
        "disks": [
            {
                "disk_id": "00000000-0000-0000-0000-00000000000a",
                "volume_ids": ["00000000-0000-0000-0000-000000000014", "00000000-0000-0000-0000-000000000015"],
                "present": True,
            }
        ],  # the direct LUN disk is on no domain: listed apart, with its paths
        "luns": [
            {
                "disk_id": "00000000-0000-0000-0000-00000000000b", "lun_id": "36001405bb1b5071cfb44a4e9576aef7c",
                "size": 5 * 1024**3, "vendor": "LIO-ORG", "product": "lun1",
                "serial": "SLIO-ORG_lun1_bb1b5071-cfb4-4a4e-9576-aef7c",
                "connections": [
                    {"address": "10.35.1.2", "port": "3260", "target": "iqn.2003-01.org.linux-iscsi.storage:t1",
                     "portal": "1", "storage_type": "ISCSI"}
                ],
            }
        ],
        "errors": [],
    }  # fmt: skip


def test_a_damaged_manifest_store_is_passed_over(ovfstore_domain: tuple[Path, FileDomain]) -> None:
    path, domain = ovfstore_domain
    vm = fixed_sample("vm")
    good = write_ovfstore_store(domain, 1, datetime(2024, 1, 1, tzinfo=UTC), {vm.id: write_ovf(vm)}, {})
    bad = write_ovfstore_store(domain, 2, datetime(2024, 2, 1, tzinfo=UTC), {vm.id: write_ovf(vm)}, {})
    volume = domain.volumes(bad)[0]
    with open(domain.volume_path(bad, volume.volume), "r+b") as f:
        f.seek(1536 + 100)  # inside the data of the OVF, the second member
        f.write(b"X")
    report = inspect_json(path)
    assert "does not match its manifest" in store_of(report, bad)["error"]
    assert store_of(report, good)["chosen"]
    assert list(entities(report)) == [str(vm.id)]


# --- a domain written by oVirt --------------------------------------------------------------------------


def test_ovirt_domain(tmp_path: Path) -> None:
    ovfs = {**sample_ovfs(), TEMPLATE_ID: template_ovf()}
    store = OvirtStore(ovfs=ovfs, last_updated="Sun Jul 02 10:00:00 IDT 2023")
    path = build_ovirt_domain(tmp_path, pool_id=POOL, stores=[store])
    report = inspect_json(path)

    assert report["domain"] == {"id": path.name, "pool_id": POOL, "role": "Master", "class": "Data"}
    (only,) = report["stores"]
    assert only == {
        "disk_id": store.disk_id,
        "volume_id": store.volume_id,
        "updated": True,
        "size": only["size"],
        "last_updated": "2023-07-02T07:00:00+00:00",  # IDT is UTC+3
        "generation": None,
        "segments": 1,
        "verified": False,
        "valid": True,
        "chosen": True,
        "error": None,
    }
    assert only["size"] % 512 == 0
    found = entities(report)
    assert list(found) == [OVIRT_33_VM, V2V_VM, TEMPLATE_ID]
    assert (found[OVIRT_33_VM]["name"], found[OVIRT_33_VM]["status"]) == ("exporttedVM", "up")
    assert found[OVIRT_33_VM]["disks"] == [
        {"disk_id": OVIRT_33_DISK, "volume_ids": ["f934b12c-1e22-4ad8-bbce-ec0b2a5defa4"], "present": True}
    ]
    assert (found[V2V_VM]["name"], found[V2V_VM]["status"], found[V2V_VM]["type"]) == ("sevenofnine", "down", "vm")
    assert found[V2V_VM]["disks"][0]["disk_id"] == V2V_DISK
    assert (found[TEMPLATE_ID]["status"], found[TEMPLATE_ID]["disks"][0]["present"]) == ("ok", True)
    assert all(e["errors"] == [] for e in found.values())


def test_export_writes_each_ovf_of_the_chosen_store(tmp_path: Path) -> None:
    ovfs = {**sample_ovfs(), TEMPLATE_ID: template_ovf()}
    path = build_ovirt_domain(tmp_path / "sd", stores=[OvirtStore(ovfs=ovfs)])
    out = tmp_path / "out" / "ovfs"
    inspect_json(path, "--export", str(out))
    assert sorted(os.listdir(out)) == sorted(f"{i}.ovf" for i in ovfs)
    assert {name[:-4]: (out / name).read_bytes() for name in os.listdir(out)} == ovfs
    # What was exported is what oVirt stored: names, memory, MACs.
    old, v2v, template = (read_ovf((out / f"{i}.ovf").read_bytes()).data for i in (OVIRT_33_VM, V2V_VM, TEMPLATE_ID))
    assert isinstance(old.entity, Vm)
    assert (old.entity.name, old.entity.memory_mb, old.nics) == ("exporttedVM", 1024, [])
    assert (v2v.entity.name, v2v.entity.memory_mb) == ("sevenofnine", 16384)
    assert [(n.nic.name, n.nic.mac, n.network_name) for n in v2v.nics] == [("eth0", None, "DPG_VMNetwork")]
    assert isinstance(template.entity, Template)
    assert (template.entity.memory_mb, [n.nic.mac for n in template.nics]) == (2048, ["56:6f:00:00:00:01"])


def test_newest_ovirt_store_by_date_across_zones(tmp_path: Path) -> None:
    # 01:00 IST on the 18th is 23:00 UTC on the 17th: earlier than 23:30 UTC, though it reads later.
    ist = OvirtStore(last_updated="Thu Feb 18 01:00:00 IST 2016")
    utc = OvirtStore(ovfs={V2V_VM: sample_ovfs()[V2V_VM]}, last_updated="Wed Feb 17 23:30:00 UTC 2016")
    old = OvirtStore(disk_type="2", last_updated=java_date(datetime(2015, 1, 1, tzinfo=UTC), "IST"))
    report = inspect_json(build_ovirt_domain(tmp_path, stores=[ist, utc, old]))
    assert store_of(report, ist.disk_id)["last_updated"] == "2016-02-17T23:00:00+00:00"
    assert [s["disk_id"] for s in report["stores"] if s["chosen"]] == [utc.disk_id]
    assert list(entities(report)) == [V2V_VM]
    assert store_of(report, old.disk_id)["valid"]


def test_pre_4_2_store_with_disktype_2_is_recognised(tmp_path: Path) -> None:
    store = OvirtStore(disk_type="2")
    report = inspect_json(build_ovirt_domain(tmp_path, stores=[store]))
    assert store_of(report, store.disk_id)["chosen"]
    assert list(entities(report)) == [OVIRT_33_VM, V2V_VM]


def test_a_missing_disk_is_reported_not_present(tmp_path: Path) -> None:
    samples = sample_ovfs()
    present = [d for d in disks_of(samples) if d.disk_id == V2V_DISK]
    report = inspect_json(build_ovirt_domain(tmp_path, stores=[OvirtStore()], disks=present))
    found = entities(report)
    assert [d["present"] for d in found[OVIRT_33_VM]["disks"]] == [False]
    assert [d["present"] for d in found[V2V_VM]["disks"]] == [True]


# --- hostile and damaged stores: each refused with its reason, the next good one read ------------------


def _tar_with(info: tarfile.TarInfo, data: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(data) if data else None)
    return buffer.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, size
    return info


def _past_the_end() -> bytes:
    tar = ovirt_tar([("info.json", b"{}"), (f"{V2V_VM}.ovf", b"x" * 4096)])
    return tar[: 1024 + 512 + 100]  # the OVF's header promises 4096 bytes; the store ends 100 in


def _gigantic() -> bytes:
    forged = tarfile.TarInfo(f"{V2V_VM}.ovf")
    forged.size = 1 << 40  # 1 TiB: beyond a ustar size field, written in GNU's base-256 as tar does
    return forged.tobuf(format=tarfile.GNU_FORMAT)[:512] + b"\0" * 4096


HOSTILE: dict[str, tuple[OvirtStore, str]] = {
    "slash": (OvirtStore(raw_tar=_tar_with(_member("a/b.ovf", size=1), b"x")), "not a flat file name"),
    "dotdot": (OvirtStore(raw_tar=_tar_with(_member("..", size=1), b"x")), "not a flat file name"),
    "symlink": (OvirtStore(raw_tar=_tar_with(_member("x.ovf", tarfile.SYMTYPE, "/etc/passwd"))), "symbolic link"),
    "hardlink": (OvirtStore(raw_tar=_tar_with(_member("x.ovf", tarfile.LNKTYPE, "/etc/passwd"))), "hard link"),
    "past the end": (OvirtStore(raw_tar=_past_the_end()), "runs past the end of the store"),
    "gigantic member": (OvirtStore(raw_tar=_gigantic()), "no store member is over"),
    "size beyond capacity": (OvirtStore(size=(128 << 20) + 512), "more than the volume's"),
    "being written": (OvirtStore(state="writing"), "did not finish (Updated is false)"),
    "never written": (OvirtStore(state="never"), "never written"),
    "not a tar": (OvirtStore(raw_tar=b"\x7fELF" + b"\1" * 2000), "bad tar header"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_store_is_refused_and_the_next_one_read(tmp_path: Path, case: str) -> None:
    hostile, reason = HOSTILE[case]
    good = OvirtStore(last_updated="Thu Feb 18 00:23:07 IST 2000")  # older, so the hostile one is tried first
    hostile = dataclasses.replace(hostile, last_updated="Thu Feb 18 00:23:07 IST 2026")
    result = run("--json", str(build_ovirt_domain(tmp_path, stores=[hostile, good])))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    refused = store_of(report, hostile.disk_id)
    assert (refused["valid"], refused["chosen"]) == (False, False)
    assert reason in refused["error"]
    assert store_of(report, good.disk_id)["chosen"]
    assert list(entities(report)) == [OVIRT_33_VM, V2V_VM]


def test_a_store_file_shorter_than_its_size_is_truncated(tmp_path: Path) -> None:
    cut, good = OvirtStore(last_updated="Thu Feb 18 00:23:07 IST 2026"), OvirtStore()
    path = build_ovirt_domain(tmp_path, stores=[cut, good])
    os.truncate(path / "images" / cut.disk_id / cut.volume_id, 5000)
    report = inspect_json(path)
    assert "the store is truncated" in store_of(report, cut.disk_id)["error"]
    assert store_of(report, good.disk_id)["chosen"]


def test_a_store_cut_short_inside_a_sparse_volume_is_not_valid(tmp_path: Path) -> None:
    # A write that stopped early leaves zeros (the sparse volume) where the rest of the tar should be;
    # the zeros read as an end of archive, so the store looks complete but has lost its later members.
    members = store_members("dfe7c94d-f724-4bbc-9156-d47761f417c6", sample_ovfs(), {}, "Thu Feb 18 00:23:07 IST 2016")
    full = ovirt_tar(members)
    cut = OvirtStore(raw_tar=full[: 1024 + 512 + 9216], size=len(full))  # info.json and the first OVF only
    good = OvirtStore(last_updated="Wed Feb 17 00:23:07 IST 2016")  # older, but whole
    report = inspect_json(build_ovirt_domain(tmp_path, stores=[cut, good]))
    assert not store_of(report, cut.disk_id)["valid"]
    assert "cut short" in store_of(report, cut.disk_id)["error"]
    assert store_of(report, good.disk_id)["chosen"]


# --- entities, metadata, legacy, exit statuses ---------------------------------------------------------


def test_an_unreadable_ovf_is_reported_for_that_entity_alone(tmp_path: Path) -> None:
    broken, misnamed = str(uuid4()), str(uuid4())
    samples = sample_ovfs()
    ovfs = {**samples, broken: b"<ovf:Envelope not xml", misnamed: samples[V2V_VM]}
    store = OvirtStore(ovfs=ovfs, vm_status={broken: 1})
    report = inspect_json(build_ovirt_domain(tmp_path, stores=[store]))
    found = entities(report)
    assert found[broken]["name"] is None
    assert found[broken]["type"] is None
    assert found[broken]["status"] == "up"  # the status map still says it is a running VM
    assert found[broken]["errors"][0].startswith("its OVF cannot be read: not well-formed XML")
    assert found[misnamed]["errors"] == [f"its OVF describes entity {V2V_VM}, yet it is stored as {misnamed}.ovf"]
    assert found[OVIRT_33_VM]["errors"] == found[V2V_VM]["errors"] == []


def test_an_oversized_member_is_skipped_and_every_other_entity_shown(tmp_path: Path) -> None:
    huge = str(uuid4())
    samples = sample_ovfs()
    store = OvirtStore(ovfs={**samples, huge: b"<ovf>" + b"&gt;" * 3_000_000 + b"</ovf>"}, vm_status={huge: 1})
    report = inspect_json(build_ovirt_domain(tmp_path, stores=[store]))
    found = entities(report)
    assert set(found) == {*samples, huge}
    assert found[huge]["name"] is None
    assert found[huge]["status"] == "up"
    assert found[huge]["errors"][0].startswith(f"its OVF was not read: member '{huge}.ovf' declares 12000011 bytes")
    assert all(found[e]["errors"] == [] and found[e]["name"] for e in samples)


def test_broken_metadata_checksum_is_an_error_yet_the_domain_is_shown(tmp_path: Path) -> None:
    path = build_ovirt_domain(tmp_path, pool_id=POOL)
    metadata = path / "dom_md" / "metadata"
    metadata.write_bytes(metadata.read_bytes().replace(b"ROLE=Master", b"ROLE=Regular"))
    result = run("--json", str(path))
    assert result.exit_code == 0
    assert "error: dom_md/metadata of domain" in result.stderr
    assert "sums to" in result.stderr
    assert "not trusted" in result.stderr
    report = json.loads(result.stdout)
    assert report["domain"]["role"] == "Regular"
    assert len(report["entities"]) == 2

    text = run(str(path))
    assert "Regular" in text.stdout
    assert "not trusted" in text.stderr


def test_missing_metadata_checksum_is_a_warning(tmp_path: Path) -> None:
    path = build_ovirt_domain(tmp_path)
    metadata = path / "dom_md" / "metadata"
    metadata.write_bytes(b"\n".join(x for x in metadata.read_bytes().split(b"\n") if not x.startswith(b"_SHA")))
    result = run("--json", str(path))
    assert result.exit_code == 0
    assert result.stderr == "warning: dom_md/metadata has no _SHA_CKSUM; accepted unverified, as VDSM does\n"


def test_legacy_fallback_when_no_store_is_usable(tmp_path: Path) -> None:
    samples = sample_ovfs()
    path = build_ovirt_domain(tmp_path, stores=[OvirtStore(state="never")], legacy_ovfs=samples)
    out = tmp_path / "export"
    result = run("--json", str(path), "--export", str(out))
    assert result.exit_code == 0, result.output
    assert "legacy master/vms OVFs" in result.stderr
    report = json.loads(result.stdout)
    assert report["stores"][0]["error"] == "never written"
    found = entities(report)
    assert sorted(found) == sorted(samples)
    assert found[OVIRT_33_VM]["name"] == "exporttedVM"
    assert found[OVIRT_33_VM]["status"] is None  # only stores carry the running VMs
    assert found[V2V_VM]["disks"][0]["present"]
    assert sorted(os.listdir(out)) == sorted(f"{i}.ovf" for i in samples)

    text = run(str(path))
    assert "entities of the legacy master/vms OVFs (2):" in text.stdout


def test_text_report(tmp_path: Path) -> None:
    chosen, writing = OvirtStore(), OvirtStore(state="writing")
    result = run(str(build_ovirt_domain(tmp_path, pool_id=POOL, stores=[chosen, writing])))
    assert result.exit_code == 0
    out = result.stdout
    assert f"domain {tmp_path.name}" not in out  # the domain's id, not its parent's name
    assert f"Data, Master, attached to data center {POOL}, format 5" in out
    assert f"[chosen] {chosen.disk_id}/{chosen.volume_id}: written Thu Feb 18 00:23:07 IST 2016" in out
    assert "unverified (no manifest: oVirt's)" in out
    assert f"[unusable] {writing.disk_id}/{writing.volume_id}: a write into it did not finish" in out
    assert f"vm exporttedVM {OVIRT_33_VM} (up)" in out
    assert f"disk {V2V_DISK}: 1 volume(s), present" in out


def test_json_shape_key_by_key(tmp_path: Path) -> None:
    report = inspect_json(build_ovirt_domain(tmp_path, stores=[OvirtStore(), OvirtStore(state="never")]))
    assert list(report) == ["domain", "stores", "entities"]
    assert list(report["domain"]) == ["id", "pool_id", "role", "class"]
    assert report["domain"]["pool_id"] is None  # detached
    store_keys = ["disk_id", "volume_id", "updated", "size", "last_updated", "generation", "segments", "verified"]
    store_keys.append("valid")
    for store in report["stores"]:
        assert list(store) == [*store_keys, "chosen", "error"]
    for entity in report["entities"]:
        assert list(entity) == ["id", "name", "type", "status", "disks", "luns", "errors"]
        for disk in entity["disks"]:
            assert list(disk) == ["disk_id", "volume_ids", "present"]


def test_exit_status_when_nothing_is_readable(tmp_path: Path) -> None:
    path = build_ovirt_domain(tmp_path, stores=[OvirtStore(state="never")])
    result = run("--json", str(path))
    assert result.exit_code == 1
    assert json.loads(result.stdout)["stores"][0]["error"] == "never written"  # the report still shows why
    last = result.stderr.splitlines()[-1]
    assert last.startswith("error: no OVF store of this domain could be read and it has no legacy")


@pytest.mark.parametrize("name", ["not-a-uuid", "0a9c3b55-4b1e-4d1a-9b84-3f0c0b9b2a11"])
def test_exit_status_when_not_a_domain(tmp_path: Path, name: str) -> None:
    (tmp_path / name).mkdir()
    result = run(str(tmp_path / name))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"error: {tmp_path / name}: ")
    assert "give the <sdUUID> directory of a file storage domain" in result.stderr


def test_library_report_keeps_unregistered_entities_apart(tmp_path: Path) -> None:
    samples = sample_ovfs()
    store = OvirtStore(ovfs={OVIRT_33_VM: samples[OVIRT_33_VM]}, unregistered={V2V_VM: samples[V2V_VM]})
    report = inspect_domain(str(build_ovirt_domain(tmp_path, stores=[store])))
    assert report.source == "store"
    assert [(str(e.id), e.unregistered) for e in report.entities] == [(OVIRT_33_VM, False), (V2V_VM, True)]


def test_a_damaged_image_is_left_out_with_a_warning(tmp_path: Path) -> None:
    path = build_ovirt_domain(tmp_path, stores=[OvirtStore(vm_status={V2V_VM: 99})])
    (path / "images" / V2V_DISK / "e562465d-dc03-427f-8cc9-20fc1055424f.meta").write_bytes(b"CAP=many\nEOF\n")
    result = run("--json", str(path))
    assert result.exit_code == 0
    assert f"warning: image {V2V_DISK} cannot be listed and is left out: volume metadata CAP=" in result.stderr
    found = entities(json.loads(result.stdout))
    assert found[V2V_VM]["disks"][0]["present"] is False
    assert found[V2V_VM]["status"] is None
    assert found[V2V_VM]["errors"] == ["metadata.json gives it status 99, which is no VM status"]


def test_unparseable_metadata_is_a_one_line_error(tmp_path: Path) -> None:
    path = build_ovirt_domain(tmp_path)
    (path / "dom_md" / "metadata").write_bytes(b"this is not\nKEY=VALUE\n")
    result = run(str(path))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {path}: dom_md/metadata cannot be read: ")
    assert len(result.stderr.splitlines()) == 1


def test_a_store_with_appended_segments_shows_its_final_entities(tmp_path: Path) -> None:
    segmented, renamed = sample_segmented_store(extra={TEMPLATE_ID: template_ovf()})
    newest = OvirtStore(raw_tar=segmented.tar(), last_updated="Wed Jan 03 00:00:00 UTC 2024")
    path = build_ovirt_domain(tmp_path / "sd", stores=[newest, OvirtStore()])
    out = tmp_path / "out"
    report = inspect_json(path, "--export", str(out))

    store = store_of(report, newest.disk_id)
    assert (store["chosen"], store["verified"], store["generation"], store["segments"]) == (True, True, 5, 3)
    found = entities(report)
    assert list(found) == [V2V_VM, TEMPLATE_ID], "each final entity once; the removed 3.3 VM not at all"
    assert (found[V2V_VM]["name"], found[V2V_VM]["status"]) == (RENAMED_V2V, "up"), "the last metadata.json"
    assert {name[:-4]: (out / name).read_bytes() for name in os.listdir(out)} == {
        V2V_VM: renamed,
        TEMPLATE_ID: template_ovf(),
    }
    text = run(str(path))
    assert text.exit_code == 0, text.output
    assert "generation 5, in 3 segments" in text.output
