"""VDSM's mount-point naming (`storage.mounts`), checked against the names VDSM gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from ovfstore.storage.errors import DomainNotFound, InvalidArgument, PathOutsideRoots
from ovfstore.storage.mounts import mount_name, mounted_at


@pytest.mark.parametrize(
    ("kind", "address", "path", "name"),
    [
        ("nfs", "10.0.0.1", "/exports/data", "10.0.0.1:_exports_data"),
        ("NFS", "10.0.0.1", "/exports//data/", "10.0.0.1:_exports_data"),  # normalised first
        ("nfs", "nfs.example.com", "/my_exports/a_b", "nfs.example.com:_my__exports_a__b"),  # '_' doubled
        ("posixfs", "nas", "/srv/vm", "nas:_srv_vm"),
        ("posixfs", "", "/dev/sdb1", "_dev_sdb1"),
        ("glusterfs", "gluster1", "data", "glusterSD/gluster1:data"),
        ("glusterfs", "gluster1", "/data", "glusterSD/gluster1:_data"),
        ("nfs", "fd00::1", "/exports/data", "[fd00::1]:_exports_data"),  # IPv6: bracketed as VDSM joins it
        ("nfs", "[fd00::1]", "/exports/data", "[fd00::1]:_exports_data"),
        ("posixfs", "", "nas:/srv//vm/", "nas:_srv_vm"),  # oVirt's POSIX spec in the path
    ],
)
def test_mount_name(kind: str, address: str, path: str, name: str) -> None:
    assert mount_name(kind, address, path) == name


@pytest.mark.parametrize(("kind", "address", "path"), [("localfs", "", "/x"), ("nfs", "h", ""), ("posixfs", "", "..")])
def test_mount_name_refuses(kind: str, address: str, path: str) -> None:
    with pytest.raises(InvalidArgument):
        mount_name(kind, address, path)


def test_mounted_at_says_where_to_mount(tmp_path: Path) -> None:
    (tmp_path / "b" / "h:_e").mkdir(parents=True)
    roots = (str(tmp_path / "a"), str(tmp_path / "b"))
    assert mounted_at(roots, "nfs", "h", "/e") == str(tmp_path / "b" / "h:_e")
    with pytest.raises(DomainNotFound, match="h:_f"):
        mounted_at(roots, "nfs", "h", "/f")


@pytest.mark.parametrize(
    ("address", "path"),
    [("h", "/../../etc"), ("..", "/"), ("h/../..", "/x"), ("h", "/e\0x"), ("h", "/" + "x" * 100_000)],
)
def test_hostile_connections_stay_one_name_under_the_root(tmp_path: Path, address: str, path: str) -> None:
    """A connection is one directory name under a root whatever its text (no '/' survives, '..' and NUL
    are refused), and a fault about it is bounded."""
    outside = tmp_path / "etc"
    outside.mkdir()
    (tmp_path / "root").mkdir()
    if "\0" in path:
        with pytest.raises(InvalidArgument, match="not a storage connection") as refused:
            mount_name("nfs", address, path)
        assert len(str(refused.value)) < 1000
        return
    assert "/" not in mount_name("nfs", address, path)
    with pytest.raises(DomainNotFound) as missing:
        mounted_at((str(tmp_path / "root"),), "nfs", address, path)
    assert len(str(missing.value)) < 2000


def test_a_symlinked_mount_point_leading_out_of_the_roots_is_refused(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "root" / "h:_e").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(PathOutsideRoots):
        mounted_at((str(tmp_path / "root"),), "nfs", "h", "/e")
