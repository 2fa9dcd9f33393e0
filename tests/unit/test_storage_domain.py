from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from ovfstore.storage import metadata as md
from ovfstore.storage.domain import FileDomain, find_domains
from ovfstore.storage.errors import (
    AlreadyExists,
    ChecksumMismatch,
    DescriptionTooLong,
    DomainNotFound,
    ImageNotFound,
    InvalidArgument,
    PathOutsideRoots,
    VolumeBusy,
    WrongPool,
)
from ovfstore.storage.locking import locked
from tests.fixtures.formats import DOMAIN_METADATA_EXAMPLE

SD = "275766cb-c7d8-43d6-a663-4e52160de620"


def needs_qemu_img() -> None:
    if shutil.which("qemu-img") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("qemu-img is missing but CI=true: CI must install qemu-utils")
        pytest.skip("qemu-img is not installed (install qemu-utils to run this test)")


@pytest.fixture
def roots(tmp_path: Path) -> tuple[str, ...]:
    root = tmp_path / "root"
    root.mkdir()
    return (str(root),)


@pytest.fixture
def domain(roots: tuple[str, ...]) -> FileDomain:
    return FileDomain.create(roots, roots[0], SD, "storage domain", "LOCALFS", "Data", "server:/path")


def u() -> str:
    return str(uuid.uuid4())


def test_created_domain_has_the_vdsm_layout_and_the_exact_metadata(domain: FileDomain) -> None:
    assert Path(domain.path, "dom_md", "metadata").read_bytes() == DOMAIN_METADATA_EXAMPLE
    assert sorted(os.listdir(Path(domain.path, "dom_md"))) == [
        "ids", "inbox", "leases", "metadata", "outbox", "xleases",
    ]  # fmt: skip
    assert os.listdir(Path(domain.path, "images")) == []
    meta = domain.metadata()
    assert (meta.sd_id, meta.role, meta.domain_class, meta.checksum) == (SD, "Regular", "Data", "valid")


def test_creating_twice_is_refused(domain: FileDomain, roots: tuple[str, ...]) -> None:
    with pytest.raises(AlreadyExists):
        FileDomain.create(roots, roots[0], SD, "again")


def test_a_domain_is_found_directly_and_in_the_nfs_mount_layout(roots: tuple[str, ...]) -> None:
    mount = Path(roots[0], "server:_exports_data")
    mount.mkdir()
    other = u()
    FileDomain.create(roots, roots[0], SD, "local")
    FileDomain.create(roots, str(mount), other, "nfs", "NFS")
    assert sorted(os.path.basename(p) for p in find_domains(roots)) == sorted([SD, other])
    assert FileDomain.find(roots, other).path == str(mount / other)
    with pytest.raises(DomainNotFound):
        FileDomain.find(roots, u())


def test_paths_outside_the_roots_are_refused(tmp_path: Path, roots: tuple[str, ...]) -> None:
    with pytest.raises(PathOutsideRoots):
        FileDomain.create(roots, str(tmp_path), SD, "escape")
    with pytest.raises(PathOutsideRoots):
        FileDomain.create(roots, roots[0] + "/../", SD, "escape")
    outside = FileDomain.create((str(tmp_path),), str(tmp_path), u(), "outside")
    os.symlink(outside.path, Path(roots[0], outside.sd_id))
    with pytest.raises(PathOutsideRoots):
        FileDomain(str(Path(roots[0], outside.sd_id)), roots)


def test_a_broken_checksum_is_an_error(domain: FileDomain) -> None:
    path = Path(domain.path, "dom_md", "metadata")
    path.write_bytes(path.read_bytes().replace(b"storage domain", b"tampered"))
    with pytest.raises(ChecksumMismatch):
        domain.metadata()


def test_attach_and_detach_keep_the_checksum_valid(domain: FileDomain) -> None:
    pool, other = u(), u()
    meta = domain.attach(pool, master=True)
    assert (meta.pool_id, meta.role, meta.checksum) == (pool, "Master", "valid")
    with pytest.raises(WrongPool):
        domain.attach(other, master=False)
    with pytest.raises(WrongPool, match="force"):
        domain.detach(other)
    meta = domain.detach(pool)
    assert (meta.pool_id, meta.role) == ("", "Regular")
    domain.attach(pool, master=False)
    meta = domain.detach(other, force=True)
    assert meta.pool_id == ""
    assert not Path(domain.path, "dom_md", "metadata.new").exists()


def test_raw_volume_is_sparse_with_meta_and_lease(domain: FileDomain) -> None:
    img, vol = u(), u()
    info = domain.create_volume(img, vol, 128 << 20, "RAW", "SPARSE", "OVFS", "OVF_STORE")
    base = Path(domain.path, "images", img, vol)
    assert base.stat().st_size == 128 << 20
    assert info.actual_size < 1 << 20
    assert oct(base.stat().st_mode & 0o777) == "0o660"
    assert Path(str(base) + ".lease").stat().st_size == 0
    text = Path(str(base) + ".meta").read_text()
    assert text.endswith("VOLTYPE=LEAF\nEOF\n")
    assert info.meta.capacity == 128 << 20
    assert (info.meta.disk_type, info.meta.domain, info.meta.image) == ("OVFS", SD, img)
    with pytest.raises(AlreadyExists):
        domain.create_volume(img, vol, 1 << 20)


def test_preallocated_raw_volume_is_allocated(domain: FileDomain) -> None:
    info = domain.create_volume(u(), u(), 4 << 20, "RAW", "PREALLOCATED")
    assert info.actual_size >= 4 << 20


def test_qcow2_volume_and_snapshot_chain(domain: FileDomain) -> None:
    needs_qemu_img()
    img, base, top = u(), u(), u()
    domain.create_volume(img, base, 1 << 30, "COW", "SPARSE")
    domain.create_volume(img, top, 1 << 30, "COW", "SPARSE", parent=base)
    out = subprocess.run(
        ["qemu-img", "info", "--output=json", str(Path(domain.path, "images", img, top))],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert '"format": "qcow2"' in out
    assert f'"backing-filename": "{base}"' in out
    vols = {v.volume: v.meta for v in domain.volumes(img)}
    assert vols[base].voltype == "INTERNAL"
    assert (vols[top].voltype, vols[top].parent) == ("LEAF", base)


def test_bad_volume_requests_are_refused_before_touching_disk(domain: FileDomain) -> None:
    img = u()
    with pytest.raises(InvalidArgument):
        domain.create_volume(img, "not-a-uuid", 1 << 20)
    with pytest.raises(InvalidArgument):
        domain.create_volume(img, u(), 1000)
    with pytest.raises(InvalidArgument):
        domain.create_volume(img, u(), 1 << 20, "VMDK")
    with pytest.raises(DescriptionTooLong):
        domain.create_volume(img, u(), 1 << 20, description="x" * 211)
    assert domain.images() == []


def test_description_is_set_and_over_long_refused_never_cut(domain: FileDomain) -> None:
    img, vol = u(), u()
    domain.create_volume(img, vol, 1 << 20)
    assert domain.set_description(img, vol, "d" * 210).meta.description == "d" * 210
    with pytest.raises(DescriptionTooLong):
        domain.set_description(img, vol, "d" * 211)
    assert domain.volume_info(img, vol).meta.description == "d" * 210


def test_a_locked_volume_refuses_a_second_writer(domain: FileDomain) -> None:
    img, vol = u(), u()
    domain.create_volume(img, vol, 1 << 20)
    with locked(domain.lease_path(img, vol), True, "test"), pytest.raises(VolumeBusy):
        domain.set_description(img, vol, "x")


def test_listing_skips_images_being_removed_and_delete_removes(domain: FileDomain) -> None:
    keep, gone = u(), u()
    domain.create_volume(keep, u(), 1 << 20)
    domain.create_volume(gone, u(), 1 << 20)
    Path(domain.path, "images", "_remove_me_" + u()).mkdir()
    assert domain.images() == sorted([keep, gone])
    domain.delete_image(gone)
    assert domain.images() == [keep]
    assert sorted(os.listdir(Path(domain.path, "images")))[0].startswith(("_remove_me_", keep))
    assert not Path(domain.path, "images", gone).exists()
    assert len(domain.all_volumes()) == 1
    with pytest.raises(ImageNotFound):
        domain.delete_image(gone)


def test_legacy_ovfs_are_read(domain: FileDomain) -> None:
    vm = u()
    Path(domain.path, "master", "vms", vm).mkdir(parents=True)
    Path(domain.path, "master", "vms", vm, vm + ".ovf").write_bytes(b"<ovf/>")
    Path(domain.path, "master", "vms", "junk").mkdir()
    assert domain.legacy_ovfs() == {vm: b"<ovf/>"}


def test_old_meta_without_checksum_of_domain_is_readable(domain: FileDomain) -> None:
    path = Path(domain.path, "dom_md", "metadata")
    path.write_bytes(b"\n".join(line for line in path.read_bytes().splitlines() if b"_SHA" not in line))
    assert domain.metadata().checksum is md.ChecksumState.MISSING
