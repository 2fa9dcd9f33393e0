"""A domain from anywhere: links, devices and FIFOs in place of its files, hostile metadata values, and
failures of one item, all on real files. Nothing is read or written outside the domain, each bad item
is reported on its own, and the rest of the domain is listed all the same."""

from __future__ import annotations

import errno
import os
import stat
import uuid
from pathlib import Path

import pytest

from ovfstore.storage import files
from ovfstore.storage import metadata as md
from ovfstore.storage.domain import FileDomain, scan_domains
from ovfstore.storage.errors import (
    InvalidArgument,
    InvalidMetadata,
    StorageError,
    StorageUnavailable,
    UnsafeFile,
    UnusableStore,
)
from ovfstore.store.quoting import cut, quoted

pytestmark = pytest.mark.timeout(30)  # a FIFO opened the wrong way would block for ever

CANARY = b"the canary outside the domain\n" * 20
STORE_DESCRIPTION = '{"DiskAlias":"OVF_STORE","DiskDescription":"OVF_STORE"}'

#: Each hostile kind of file and the words its refusal must use.
KINDS = {
    "hard link": "has 2 hard links",
    "symbolic link": "symbolic link",
    "symbolic link inside": "is a symbolic link",
    "character device": "is a character device",
    "FIFO": "is a FIFO",
}


def u() -> str:
    return str(uuid.uuid4())


def plant(path: Path, kind: str, canary: Path) -> None:
    """Replace `path` with a file of `kind`; the links lead to `canary`, outside the domain (or, for
    "symbolic link inside", to a regular file next to `path`)."""
    if path.exists() or path.is_symlink():
        path.unlink()
    if kind == "hard link":
        os.link(canary, path)
    elif kind == "symbolic link":
        os.symlink(canary, path)
    elif kind == "symbolic link inside":
        sibling = path.with_name("sibling-file")
        sibling.write_bytes(b"inside")
        os.symlink(sibling.name, path)
    elif kind == "character device":
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null's numbers
    elif kind == "FIFO":
        os.mkfifo(path)


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    path = tmp_path / "canary"
    path.write_bytes(CANARY)
    return path


@pytest.fixture
def roots(tmp_path: Path) -> tuple[str, ...]:
    root = tmp_path / "root"
    root.mkdir()
    return (str(root),)


@pytest.fixture
def domain(roots: tuple[str, ...]) -> FileDomain:
    return FileDomain.create(roots, roots[0], u(), "hostile")


def test_open_regular_takes_a_regular_file_of_one_link_only(tmp_path: Path, canary: Path) -> None:
    fd = files.open_regular(str(canary), os.O_RDONLY)
    os.close(fd)
    for kind, words in KINDS.items():
        path = tmp_path / kind.replace(" ", "-")
        path.write_bytes(b"")
        plant(path, kind, canary)
        for flags in (os.O_RDONLY, os.O_RDWR):
            with pytest.raises(UnsafeFile, match=words) as e:
                os.close(files.open_regular(str(path), flags))
            assert str(path) in str(e.value)
    with pytest.raises(UnsafeFile, match="is a directory"):
        files.stat_regular(str(tmp_path))
    assert canary.read_bytes() == CANARY


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("which", ["data", "store"])
def test_a_volume_file_that_is_not_a_regular_file_is_neither_adopted_nor_written(
    domain: FileDomain, canary: Path, kind: str, which: str
) -> None:
    img, vol, good_img, good_vol = u(), u(), u(), u()
    disk_type, description = ("OVFS", STORE_DESCRIPTION) if which == "store" else ("DATA", "")
    domain.create_volume(img, vol, 1 << 20, disk_type=disk_type, description=description)
    domain.create_volume(good_img, good_vol, 1 << 20)
    plant(Path(domain.volume_path(img, vol)), kind, canary)
    volumes, problems = domain.scan_volumes()
    assert [v.volume for v in volumes] == [good_vol]
    assert [(p.image, p.volume, p.error.transient) for p in problems] == [(img, vol, False)]
    assert KINDS[kind] in str(problems[0].error)
    for writable in (False, True):
        with pytest.raises(StorageError, match=KINDS[kind]):
            domain.open_volume(img, vol, writable).close()
    with pytest.raises(StorageError, match=KINDS[kind]):
        domain.set_description(img, vol, "x")
    assert canary.read_bytes() == CANARY


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_meta_that_is_not_a_regular_file_is_reported_and_never_written(
    domain: FileDomain, canary: Path, kind: str
) -> None:
    img, vol, good_vol = u(), u(), u()
    domain.create_volume(img, vol, 1 << 20)
    domain.create_volume(img, good_vol, 1 << 20)
    plant(Path(domain.volume_path(img, vol, ".meta")), kind, canary)
    volumes, problems = domain.scan_volumes(img)
    assert [v.volume for v in volumes] == [good_vol]
    assert [p.volume for p in problems] == [vol]
    assert KINDS[kind] in str(problems[0].error)
    with pytest.raises(StorageError, match=KINDS[kind]):
        domain.set_description(img, vol, "overwritten")
    assert canary.read_bytes() == CANARY


@pytest.mark.parametrize("kind", list(KINDS))
def test_domain_metadata_that_is_not_a_regular_file_hides_no_other_domain(
    roots: tuple[str, ...], canary: Path, kind: str
) -> None:
    bad = FileDomain.create(roots, roots[0], u(), "bad")
    good = FileDomain.create(roots, roots[0], u(), "good")
    plant(Path(bad.path, "dom_md", "metadata"), kind, canary)
    found, problems = scan_domains(roots)
    assert [d.sd_id for d, _ in found] == [good.sd_id]
    assert [p.path for p in problems] == [bad.path]
    assert KINDS[kind] in str(problems[0].error)
    with pytest.raises(StorageError, match=KINDS[kind]):
        FileDomain(bad.path, roots).attach(u(), master=True)
    assert canary.read_bytes() == CANARY


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_legacy_ovf_that_is_not_a_regular_file_hides_no_other(domain: FileDomain, canary: Path, kind: str) -> None:
    vms = Path(domain.path, "master", "vms")
    bad, good = u(), u()
    for vm in (bad, good):
        (vms / vm).mkdir(parents=True)
        (vms / vm / f"{vm}.ovf").write_bytes(b"<ovf/>")
    plant(vms / bad / f"{bad}.ovf", kind, canary)
    ovfs, problems = domain.scan_legacy()
    assert ovfs == {good: b"<ovf/>"}
    assert len(problems) == 1
    assert KINDS[kind] in str(problems[0].error)
    with pytest.raises(StorageError, match=KINDS[kind]):
        domain.legacy_ovfs()


def test_a_bad_checksum_is_reported_and_the_other_domains_are_listed(roots: tuple[str, ...]) -> None:
    bad = FileDomain.create(roots, roots[0], u(), "bad")
    good = FileDomain.create(roots, roots[0], u(), "good")
    path = Path(bad.path, "dom_md", "metadata")
    path.write_bytes(path.read_bytes().replace(b"DESCRIPTION=bad", b"DESCRIPTION=evil"))
    found, problems = scan_domains(roots)
    assert [d.sd_id for d, _ in found] == [good.sd_id]
    assert "checksum" in str(problems[0].error)
    assert not problems[0].error.transient


def test_an_io_error_is_transient_and_damage_is_not(domain: FileDomain, monkeypatch: pytest.MonkeyPatch) -> None:
    img, vol, other = u(), u(), u()
    domain.create_volume(img, vol, 1 << 20)
    domain.create_volume(img, other, 1 << 20)
    real_open = os.open

    def failing_open(path: str, flags: int, mode: int = 0o777) -> int:
        if path.endswith(vol + ".meta"):
            raise OSError(errno.EIO, "Input/output error", path)
        return real_open(path, flags, mode)

    monkeypatch.setattr(files.os, "open", failing_open)
    volumes, problems = domain.scan_volumes(img)
    assert [v.volume for v in volumes] == [other]
    assert isinstance(problems[0].error, StorageUnavailable)
    assert problems[0].error.transient
    assert "retry" in str(problems[0].error)
    with pytest.raises(StorageUnavailable):
        domain.volume_info(img, vol)


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (b"PUUID=../../etc/passwd", "PUUID='../../etc/passwd' is not a volume id"),
        (b"PUUID=" + b"x" * 5000, "PUUID='xxxx"),
        (b"CAP=-512", "outside 0.."),
        (b"CAP=0", "a capacity of 0 bytes"),
        (b"CAP=9223372036854775808", "outside 0.."),
        (b"CAP=" + b"9" * 400, "outside 0.."),
        (b"GEN=" + b"1" * 5000, "outside 0.."),
        (b"CAP=1_024", "is not a number"),
        (b"SIZE=" + b"9" * 18, "a capacity of"),
    ],
)
def test_hostile_meta_values_are_clear_per_item_errors(domain: FileDomain, line: bytes, words: str) -> None:
    img, vol, other = u(), u(), u()
    domain.create_volume(img, vol, 1 << 20)
    domain.create_volume(img, other, 1 << 20)
    meta = Path(domain.volume_path(img, vol, ".meta"))
    key = line.split(b"=")[0]
    kept = [x for x in meta.read_bytes().split(b"\n") if not x.startswith(key + b"=") and not x.startswith(b"CAP=")]
    if key not in (b"SIZE", b"CAP"):
        kept.insert(0, b"CAP=1048576")
    # Written past the 512-byte limit of a .meta only where the test needs a long value.
    meta.write_bytes(b"\n".join([line, *kept]))
    volumes, problems = domain.scan_volumes(img)
    assert [v.volume for v in volumes] == [other]
    assert len(problems) == 1
    message = str(problems[0].error)
    assert isinstance(problems[0].error, InvalidMetadata)
    assert words in message or "more than 512 bytes" in message
    assert len(message) < 1000


def test_a_meta_over_512_bytes_is_refused(domain: FileDomain) -> None:
    img, vol = u(), u()
    domain.create_volume(img, vol, 1 << 20)
    meta = Path(domain.volume_path(img, vol, ".meta"))
    meta.write_bytes(meta.read_bytes().replace(b"EOF\n", b"X=" + b"y" * 500 + b"\nEOF\n"))
    with pytest.raises(InvalidMetadata, match="more than 512 bytes"):
        domain.volume_info(img, vol)


def test_a_cow_store_is_never_adopted(domain: FileDomain) -> None:
    img, vol = u(), u()
    domain.create_volume(img, vol, 1 << 20, disk_type="OVFS", description=STORE_DESCRIPTION)
    meta = Path(domain.volume_path(img, vol, ".meta"))
    meta.write_bytes(meta.read_bytes().replace(b"FORMAT=RAW", b"FORMAT=COW"))
    volumes, problems = domain.scan_volumes()
    assert volumes == []
    assert isinstance(problems[0].error, UnusableStore)
    assert "not used as a store" in str(problems[0].error)


def test_a_huge_metadata_line_gives_a_short_error(roots: tuple[str, ...]) -> None:
    domain = FileDomain.create(roots, roots[0], u(), "d")
    path = Path(domain.path, "dom_md", "metadata")
    path.write_bytes(b"A" * (60 << 10) + b"\n" + path.read_bytes())  # under the size limit, not KEY=VALUE
    with pytest.raises(InvalidMetadata) as e:
        domain.metadata()
    assert len(str(e.value)) < 1000
    path.write_bytes(b"DESCRIPTION=" + b"A" * (8 << 20) + b"\n")  # over it: never read whole
    with pytest.raises(InvalidMetadata, match="holds more than") as e:
        domain.metadata()
    assert len(str(e.value)) < 1000


def test_quote_and_cut_bound_what_they_quote() -> None:
    assert quoted("abc") == "'abc'"
    assert cut("abc") == "abc"
    long = "x" * 10_000_000
    assert len(quoted(long)) < 300
    assert len(cut(long)) < 300
    assert "10000000 characters" in quoted(long)


@pytest.mark.parametrize("capacity", [2**63, 2**64 + 512, -512, 0])
def test_impossible_capacities_are_refused_before_any_file(domain: FileDomain, capacity: int) -> None:
    img = u()
    with pytest.raises(InvalidArgument, match="capacity"):
        domain.create_volume(img, u(), capacity)
    assert not Path(domain.path, "images", img).exists()


def test_a_capacity_the_filesystem_refuses_leaves_nothing_behind(domain: FileDomain, tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.write_bytes(b"")
    try:
        os.truncate(probe, md.INT_MAX - 511)
        pytest.skip("this filesystem takes a sparse file of 8 EiB")  # tmpfs, btrfs
    except OSError:
        pass  # ext4 and xfs: EFBIG
    img = u()
    with pytest.raises(InvalidArgument, match="cannot be created on this filesystem"):
        domain.create_volume(img, u(), md.INT_MAX - 511)
    assert not Path(domain.path, "images", img).exists()


def test_atomic_write_never_writes_through_a_planted_new_file(tmp_path: Path, canary: Path) -> None:
    target = tmp_path / "file.meta"
    target.write_bytes(b"old")
    for kind in ("hard link", "symbolic link"):
        plant(tmp_path / "file.meta.new", kind, canary)
        files.atomic_write(str(target), b"new")
        assert target.read_bytes() == b"new"
        assert canary.read_bytes() == CANARY


def test_a_mount_that_cannot_be_listed_hides_no_other_domain(
    roots: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = Path(roots[0], "server:_stale")
    stale.mkdir()
    good = FileDomain.create(roots, roots[0], u(), "good")
    real_listdir = os.listdir

    def listdir(path: str) -> list[str]:
        if path == str(stale):
            raise OSError(errno.ESTALE, "Stale file handle", path)
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", listdir)
    found, problems = scan_domains(roots)
    assert [d.sd_id for d, _ in found] == [good.sd_id]
    assert [(p.path, p.error.transient) for p in problems] == [(str(stale), True)]


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_lease_that_is_not_a_regular_file_is_never_locked_nor_waited_on(
    domain: FileDomain, canary: Path, kind: str
) -> None:
    img, vol = u(), u()
    domain.create_volume(img, vol, 1 << 20)
    plant(Path(domain.lease_path(img, vol)), kind, canary)
    with pytest.raises(StorageError, match=KINDS[kind]), domain.volume_locked(img, vol):
        pass
    assert canary.read_bytes() == CANARY


def test_a_device_is_refused_without_being_opened(
    tmp_path: Path, canary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Opening some devices acts (a watchdog arms): a planted one is judged by lstat, never opened.
    path = tmp_path / "watchdog"
    plant(path, "character device", canary)
    opened: list[str] = []
    real_open = os.open

    def recording_open(name: str, flags: int, mode: int = 0o777) -> int:
        opened.append(name)
        return real_open(name, flags, mode)

    monkeypatch.setattr(files.os, "open", recording_open)
    with pytest.raises(UnsafeFile, match="is a character device"):
        files.open_regular(str(path), os.O_RDWR)
    assert opened == []
