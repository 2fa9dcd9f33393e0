"""oVirt's engine reading our stores, with the real Apache commons-compress.

oVirt's engine reads a store by taking the first `Size` bytes of its volume and untarring them with
commons-compress's `TarArchiveInputStream` into a map keyed by member name: the last member of a name
wins, and members other than `*.ovf` and `metadata.json` are ignored. `OvirtStoreReader.java` does the same
and prints the map (name, SHA-256). The stores here are built with `tarfile` (tests/fixtures/segments.py);
the expected maps follow from the format alone.

Needs `javac` and Debian's `libcommons-compress-java` (installed by .ci/run): missing, the tests skip,
except under CI=true, where they fail.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from uuid import UUID

import pytest

from ovfstore.store.tarread import StoreReadError, read_store
from tests.conftest import IN_CI
from tests.fixtures.segments import END_OF_ARCHIVE, SegmentedStore, info, metadata, ovf, tar_members

JAR = Path(os.environ.get("OVFSTORE_TEST_COMMONS_COMPRESS", "/usr/share/java/commons-compress.jar"))
SOURCE = Path(__file__).with_name("OvirtStoreReader.java")
A, B, C, D, E = (UUID(int=i) for i in range(0xA, 0xF))
#: What an older, longer tar left after the end of the current one: a store is read up to its Size only.
STALE = b"stale bytes of an older, longer store " * 300

OvirtRead = Callable[[Path, int], dict[str, str]]


def _missing() -> str | None:
    missing = [t for t in ("javac", "java") if shutil.which(t) is None]
    if not JAR.is_file():
        missing.append(str(JAR))
    if missing:
        return f"{', '.join(missing)} not found; apt-get install libcommons-compress-java default-jdk-headless"
    return None


@pytest.fixture(scope="module")
def ovirt_read(tmp_path_factory: pytest.TempPathFactory) -> OvirtRead:
    why = _missing()
    if why is not None:
        if IN_CI:
            pytest.fail(f"the oVirt compatibility tests are required under CI=true but {why}", pytrace=False)
        pytest.skip(why)
    classes = tmp_path_factory.mktemp("ovirt-reader")
    subprocess.run(["javac", "-d", str(classes), "-cp", str(JAR), str(SOURCE)], check=True, timeout=120)

    def read(volume: Path, size: int) -> dict[str, str]:
        done = subprocess.run(
            ["java", "-cp", f"{JAR}{os.pathsep}{classes}", "OvirtStoreReader", str(volume), str(size)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"commons-compress could not read the store: {done.stderr[-2000:]}")
        return dict(line.split(" ", 1) for line in done.stdout.splitlines())

    return read


def digests(members: Sequence[tuple[str, bytes]]) -> dict[str, str]:
    """The map oVirt builds: by name, the last member of a name winning."""
    return {name: hashlib.sha256(data).hexdigest() for name, data in members}


def manifests(store: SegmentedStore) -> list[tuple[str, bytes]]:
    """Every member of `store`, manifests included, in order, as `tarfile` reads them back."""
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(store.tar())) as archive:
        return [(m.name, archive.extractfile(m).read()) for m in archive.getmembers()]  # type: ignore[union-attr]


def volume_of(path: Path, data: bytes) -> Path:
    path.write_bytes(data + STALE)
    return path


def test_a_whole_store_reads_the_same_in_ovirt(ovirt_read: OvirtRead, tmp_path: Path) -> None:
    members = [("info.json", info()), (f"{A}.ovf", ovf(A, 1)), (f"{B}.ovf", ovf(B, 1))]
    members += [("metadata.json", metadata({A: 1})), (f"{C}.ovf", ovf(C, 1))]
    store = SegmentedStore().segment(members)
    data = store.tar()
    seen = ovirt_read(volume_of(tmp_path / "volume", data), len(data))
    assert seen == digests(manifests(store))
    ours = read_store([data], len(data))
    ovfs = {**ours.ovfs, **ours.unregistered}
    assert {n: h for n, h in seen.items() if n.endswith(".ovf")} == digests([(f"{k}.ovf", v) for k, v in ovfs.items()])


def test_a_store_with_appended_segments_reads_as_its_final_state_in_ovirt(
    ovirt_read: OvirtRead, tmp_path: Path
) -> None:
    """Appended in place, as a writer does: each segment over the end-of-archive blocks of the store before
    it, a new end-of-archive after it, the stale bytes beyond left alone."""
    store = SegmentedStore().segment(
        [("info.json", info()), (f"{A}.ovf", ovf(A, 1)), (f"{B}.ovf", ovf(B, 1)), ("metadata.json", metadata({A: 1}))]
    )
    volume = volume_of(tmp_path / "volume", store.tar())
    segments: list[tuple[list[tuple[str, bytes]], list[UUID]]] = [
        ([(f"{B}.ovf", ovf(B, 2)), (f"{C}.ovf", ovf(C, 1)), ("info.json", info("Tue"))], [A]),
        ([(f"{D}.ovf", ovf(D, 1)), ("metadata.json", metadata({D: 1})), ("info.json", info("Wed"))], []),
        ([(f"{A}.ovf", ovf(A, 3)), ("info.json", info("Thu"))], [C]),
    ]
    for members, removed in segments:
        size = len(store.tar())
        before = len(store.data)
        store.segment(members, removed=removed)
        with open(volume, "r+b") as f:
            f.seek(size - len(END_OF_ARCHIVE))
            f.write(store.data[before:] + END_OF_ARCHIVE)
    data = store.tar()
    assert volume.read_bytes()[: len(data)] == data

    seen = ovirt_read(volume, len(data))
    ours = read_store([data], len(data))
    assert ours.segments == 4
    assert ours.entity_ids == [B, D, A]
    assert ours.removed_ids == [C]
    final = {f"{k}.ovf": v for k, v in ours.ovfs.items()}
    still_seen_by_ovirt = {f"{C}.ovf": ovf(C, 1)}  # until the store is written whole again
    assert {n: h for n, h in seen.items() if n.endswith(".ovf")} == digests(
        [*final.items(), *still_seen_by_ovirt.items()]
    )
    assert seen["metadata.json"] == digests([("metadata.json", metadata({D: 1}))])["metadata.json"]
    assert seen["info.json"] == digests([("info.json", info("Thu"))])["info.json"]
    assert seen == digests(manifests(store)), "every name, the last of each"


def test_a_segment_left_after_the_end_of_archive_is_invisible_to_ovirt(ovirt_read: OvirtRead, tmp_path: Path) -> None:
    """Why a segment overwrites the end-of-archive blocks: commons-compress stops at the first zero block."""
    base = SegmentedStore().segment([("info.json", info()), (f"{A}.ovf", ovf(A, 1))])
    appended = tar_members([(f"{B}.ovf", ovf(B, 1))])
    data = base.tar() + appended + END_OF_ARCHIVE
    seen = ovirt_read(volume_of(tmp_path / "volume", data), len(data))
    assert f"{B}.ovf" not in seen
    assert f"{A}.ovf" in seen
    with pytest.raises(StoreReadError, match=r"cut short|Size is wrong|followed by data"):
        read_store([data], len(data))


def test_ovirt_needs_the_end_of_archive_when_stale_bytes_follow(ovirt_read: OvirtRead, tmp_path: Path) -> None:
    """commons-compress takes the end of its input for the end of the archive, but stale bytes where the
    end-of-archive blocks should be are read as a header, and the whole store fails in oVirt."""
    store = SegmentedStore().segment([("info.json", info()), (f"{A}.ovf", ovf(A, 1))])
    bare = store.data  # no end-of-archive
    assert f"{A}.ovf" in ovirt_read(volume_of(tmp_path / "exact", bare), len(bare))
    with pytest.raises(RuntimeError, match="could not read"):
        ovirt_read(volume_of(tmp_path / "stale", bare), len(bare) + 1024)
