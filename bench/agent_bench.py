"""Upload and download through a real agent on loopback, against `dd` on the same filesystem or device.

    python bench/agent_bench.py [--storage file|block] [--dir /var/tmp] [--size-mib 128] [--runs 5] [--json]

Each figure is the best of `--runs` rounds; a round times every measurement once, in turn, so that noise
from the rest of the machine (other tenants of a VM) falls on all of them alike. The source bytes are
read from a file in the page cache by the client and by `dd`.

- `put`: an upload of the source into a new volume, timed until the agent's success answer, which comes
  after fsync. The agent hashes every byte it writes; the client sends the source's SHA-256 (computed
  once, before the rounds) with the upload, and the agent checks it before it marks the volume
  complete. The client itself only sends, like `dd`, which has no client at all.
- `put_hashing`: the same upload with the client hashing what it sends too (`AgentClient.upload`
  without a digest, what the engine's updater does). On loopback the client's SHA-256 takes CPU from
  the agent on the same two cores; deployed, the engine hashes on its own host. For the record.
- `dd_write`: `dd bs=1M conv=fsync` of the same bytes into a new file, the baseline of `put` (both
  allocate their blocks). `dd_overwrite` rewrites that file in place (`conv=notrunc,fsync`): for the
  record, since an OVF store is rewritten in place (the agent's own rate is the same either way).
- `get` reads the volume back through the agent; `dd_read` reads the file with `iflag=direct`, the way
  the agent reads.

`--storage block` (root, lvm2 and loop devices): a block domain created by the agent on a loop device over
a sparse file in `--dir` (its own LVM_SYSTEM_DIR, a filter accepting only that loop), and one store volume
(an LV). `put` uploads into that LV, rewriting it in place as the updater rewrites a store; with no
device-mapper the agent reaches the LV through its segment map on the PV, with O_DIRECT (`storage/block/
lvio.py`). `dd_write` writes the same bytes to the same bytes of the PV, where the LVM tools say the LV
starts (`dd oflag=direct,seek_bytes conv=notrunc,fsync`, `bs` = the agent's buffer size); `dd_read`
reads them back with `iflag=direct`. The same loop, the same offsets: the ratio is the agent's cost alone.
The loop device uses direct I/O on its file (`--loop-direct-io on`, the default): a LUN has no page
cache behind it, and a buffered loop spends a kernel thread's memcpy of every byte on the cores the agent
and its client share here, a cost `dd` alone does not meet (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from ovfstore.agent.client import AgentClient
from ovfstore.agent.config import AgentConfig
from ovfstore.agent.process import LocalAgent

MiB = 1 << 20
# The client reads the source in pieces of 1 MiB: `dd`'s block size, and the chunk of the engine's tar
# stream (store.tarstream.CHUNK). Fresh bytes per chunk: the client's HTTP stack sends a bytes chunk as
# it is, a view it copies. 4 MiB chunks cost the client more of the two cores it shares with the agent
# here (fresh pages for every chunk): the upload measured ~5% slower with them.
CHUNK = MiB


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def _dd(*args: str) -> None:
    subprocess.run(["dd", *args, "status=none"], check=True)


def _timed(fn: Callable[[], None], prepare: Callable[[], None] | None = None) -> float:
    if prepare is not None:
        prepare()
    start = time.monotonic()
    fn()
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--storage", choices=("file", "block"), default="file", help="the kind of domain")
    parser.add_argument("--dir", default="/var/tmp", help="a directory on the local disk (not tmpfs)")
    parser.add_argument("--size-mib", type=int, default=128)
    parser.add_argument("--runs", type=int, default=5, help="rounds; each figure is the best of them")
    parser.add_argument("--buffer-size", type=int, default=AgentConfig.buffer_size, help="the agent's I/O buffer size")
    parser.add_argument(
        "--loop-direct-io", choices=("on", "off"), default="on",
        help="block: the loop device reads and writes its file with O_DIRECT, as a LUN has no page cache behind it",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print only the figures as JSON")
    args = parser.parse_args()
    if args.storage == "block":
        block_bench(args)
        return
    size = args.size_mib * MiB

    workdir = Path(tempfile.mkdtemp(prefix="ovfstore-bench-", dir=args.dir))
    agent = None
    best: dict[str, float] = {}
    try:
        root = workdir / "root"
        root.mkdir()
        source = workdir / "source"
        digest = hashlib.sha256()
        with open(source, "wb") as f:
            for _ in range(args.size_mib):
                block = os.urandom(MiB)
                digest.update(block)
                f.write(block)
        expected = digest.hexdigest()
        target = workdir / "dd-target"
        agent = LocalAgent([root], workdir, extra_args=["--buffer-size", str(args.buffer_size)])
        with AgentClient(agent.url, agent.secret) as client:
            sd = uuid.uuid4()
            client.create_domain(sd, "bench")
            volume: tuple[uuid.UUID, uuid.UUID] = (uuid.uuid4(), uuid.uuid4())

            def new_volume() -> None:
                nonlocal volume
                volume = (uuid.uuid4(), uuid.uuid4())
                client.create_volume(sd, *volume, size, disk_type="OVFS", description="OVF_STORE")

            def put() -> None:
                client.upload(sd, *volume, _file_chunks(source), size, sha256=expected)

            def put_hashing() -> None:
                assert client.upload(sd, *volume, _file_chunks(source), size).sha256 == expected

            def get() -> None:
                with client.download(sd, *volume, 0, size) as stream:
                    received = sum(len(chunk) for chunk in stream)
                assert received == size

            rounds: dict[str, tuple[Callable[[], None], Callable[[], None] | None]] = {
                "put": (put, new_volume),
                "put_hashing": (put_hashing, new_volume),
                "get": (get, None),
                "dd_write": (
                    lambda: _dd(f"if={source}", f"of={target}", "bs=1M", "conv=fsync"),
                    lambda: target.unlink(missing_ok=True),
                ),
                "dd_overwrite": (lambda: _dd(f"if={source}", f"of={target}", "bs=1M", "conv=notrunc,fsync"), None),
                "dd_read": (lambda: _dd(f"if={target}", "of=/dev/null", "bs=1M", "iflag=direct"), None),
            }
            for _ in range(args.runs):
                for name, (fn, prepare) in rounds.items():
                    seconds = _timed(fn, prepare)
                    best[name] = min(best.get(name, seconds), seconds)
                for image in client.list_images(sd):  # keep the disk use to a few copies
                    if image != volume[0]:
                        client.delete_image(sd, image)
    finally:
        if agent is not None:
            agent.stop()
        shutil.rmtree(workdir)

    mib = size / MiB
    figures = {f"{name}_mib_s": round(mib / seconds, 1) for name, seconds in best.items()}
    figures["put_ratio"] = round(figures["put_mib_s"] / figures["dd_write_mib_s"], 2)
    figures["get_ratio"] = round(figures["get_mib_s"] / figures["dd_read_mib_s"], 2)
    figures["put_hashing_ratio"] = round(figures["put_hashing_mib_s"] / figures["dd_write_mib_s"], 2)
    figures["put_overwrite_ratio"] = round(figures["put_mib_s"] / figures["dd_overwrite_mib_s"], 2)
    if args.json:
        print(json.dumps(figures))
        return
    print(f"{args.size_mib} MiB in {args.dir}, best of {args.runs} rounds, agent buffers {args.buffer_size // MiB} MiB")
    print(f"{'':34}{'agent MiB/s':>12}{'dd MiB/s':>10}{'ratio':>7}")
    rows = [
        ("upload into a new volume", "put", "dd_write", "put_ratio"),
        ("  the client hashing too", "put_hashing", "dd_write", "put_hashing_ratio"),
        ("  against dd rewriting its file", "put", "dd_overwrite", "put_overwrite_ratio"),
        ("download", "get", "dd_read", "get_ratio"),
    ]
    for label, agent_key, dd_key, ratio in rows:
        print(f"{label:34}{figures[agent_key + '_mib_s']:>12}{figures[dd_key + '_mib_s']:>10}{figures[ratio]:>7}")


# --- block mode -------------------------------------------------------------------------------------------

#: The special LVs of a block domain take ~4.5 GiB: the PV is that and the volume, sparse.
BLOCK_PV_SPARE_MIB = 6144


class _Loop:
    """A loop device over a sparse file, and the LVM tools confined to it (a private LVM_SYSTEM_DIR)."""

    def __init__(self, workdir: Path, size_mib: int, direct_io: bool) -> None:
        self.image = workdir / "pv.img"
        with open(self.image, "wb") as f:
            f.truncate(size_mib * MiB)
        direct = f"--direct-io={'on' if direct_io else 'off'}"
        done = subprocess.run(["losetup", "-f", "--show", direct, str(self.image)], capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"losetup could not attach a loop device (root and loop devices needed): {done.stderr}")
        self.device = done.stdout.strip()
        self.etc = workdir / "lvm"
        self.etc.mkdir()
        accept = f'"a|^{self.device}$|", "r|.*|"'
        (self.etc / "lvm.conf").write_text(
            f"devices {{\nfilter = [ {accept} ]\nglobal_filter = [ {accept} ]\nobtain_device_list_from_udev = 0\n"
            'external_device_info_source = "none"\nuse_devicesfile = 0\n}\n'
            "activation {\nudev_sync = 0\nudev_rules = 0\n}\nbackup {\nbackup = 0\narchive = 0\n}\n"
        )
        self.env = dict(os.environ, LVM_SYSTEM_DIR=str(self.etc), LVM_SUPPRESS_FD_WARNINGS="1")

    def lvm(self, *args: str) -> str:
        done = subprocess.run(
            ["lvm", args[0], "--driverloaded", "n", *args[1:]], capture_output=True, text=True, env=self.env
        )
        if done.returncode:
            raise SystemExit(f"lvm {' '.join(args)} failed: {done.stderr}")
        return done.stdout

    def lv_offset(self, vg: str, lv: str) -> int:
        """The byte of the PV where LV `lv` starts, as the tools say; it must be one segment."""
        out = self.lvm(
            "lvs", "--segments", "--reportformat", "json", "-o", "seg_pe_ranges,vg_extent_size", "--units", "b",
            "--nosuffix", f"{vg}/{lv}",
        )  # fmt: skip
        (segment,) = json.loads(out)["report"][0]["seg"]
        first = int(segment["seg_pe_ranges"].split(":")[1].split("-")[0])
        pvs = self.lvm("pvs", "--reportformat", "json", "-o", "pe_start", "--units", "b", "--nosuffix", self.device)
        pe_start = int(json.loads(pvs)["report"][0]["pv"][0]["pe_start"])
        return pe_start + first * int(segment["vg_extent_size"])

    def close(self, vg: str | None) -> None:
        if vg is not None:
            subprocess.run(
                ["lvm", "vgremove", "--driverloaded", "n", "-ff", "-y", vg], capture_output=True, env=self.env
            )
        subprocess.run(["losetup", "-d", self.device], capture_output=True)


def block_bench(args: argparse.Namespace) -> None:
    size = args.size_mib * MiB
    block = args.buffer_size
    if shutil.which("lvm") is None or shutil.which("losetup") is None:
        raise SystemExit("--storage block needs lvm2 and losetup (apt-get install lvm2)")
    workdir = Path(tempfile.mkdtemp(prefix="ovfstore-bench-", dir=args.dir))
    agent = None
    loop: _Loop | None = None
    vg: str | None = None
    best: dict[str, float] = {}
    try:
        source = workdir / "source"
        digest = hashlib.sha256()
        with open(source, "wb") as f:
            for _ in range(args.size_mib):
                data = os.urandom(MiB)
                digest.update(data)
                f.write(data)
        expected = digest.hexdigest()
        loop = _Loop(workdir, BLOCK_PV_SPARE_MIB + args.size_mib, args.loop_direct_io == "on")
        agent = LocalAgent(
            [workdir / "root"], workdir, extra_args=["--buffer-size", str(block)], devices=[loop.device],
            lvm_system_dir=str(loop.etc),
        )  # fmt: skip
        with AgentClient(agent.url, agent.secret, timeout=600) as client:
            sd = uuid.uuid4()
            client.create_domain(sd, "bench", storage_type="ISCSI", devices=[loop.device])
            vg = str(sd)
            img, vol = uuid.uuid4(), uuid.uuid4()
            client.create_volume(sd, img, vol, size, disk_type="OVFS", description="OVF_STORE")
            offset = loop.lv_offset(vg, str(vol))
            device = loop.device

            def put() -> None:
                client.upload(sd, img, vol, _file_chunks(source), size, sha256=expected)

            def put_hashing() -> None:
                assert client.upload(sd, img, vol, _file_chunks(source), size).sha256 == expected

            def get() -> None:
                with client.download(sd, img, vol, 0, size) as stream:
                    received = sum(len(chunk) for chunk in stream)
                assert received == size

            dd_write = (
                f"if={source}", f"of={device}", f"bs={block}", f"seek={offset}", "oflag=direct,seek_bytes",
                "conv=notrunc,fsync",
            )  # fmt: skip
            dd_read = (
                f"if={device}", "of=/dev/null", f"bs={block}", f"skip={offset}", f"count={size}",
                "iflag=direct,skip_bytes,count_bytes",
            )  # fmt: skip
            rounds: dict[str, Callable[[], None]] = {
                "put": put,
                "put_hashing": put_hashing,
                "get": get,
                "dd_write": lambda: _dd(*dd_write),
                "dd_read": lambda: _dd(*dd_read),
            }
            for _ in range(args.runs):
                for name, fn in rounds.items():
                    seconds = _timed(fn)
                    best[name] = min(best.get(name, seconds), seconds)
            # Both wrote the same bytes to the same place: what the agent reads back is the source.
            assert client.upload(sd, img, vol, _file_chunks(source), size).sha256 == expected
    finally:
        if agent is not None:
            agent.stop()
        if loop is not None:
            loop.close(vg)
        shutil.rmtree(workdir)

    mib = size / MiB
    figures = {f"{name}_mib_s": round(mib / seconds, 1) for name, seconds in best.items()}
    figures["put_ratio"] = round(figures["put_mib_s"] / figures["dd_write_mib_s"], 2)
    figures["put_hashing_ratio"] = round(figures["put_hashing_mib_s"] / figures["dd_write_mib_s"], 2)
    figures["get_ratio"] = round(figures["get_mib_s"] / figures["dd_read_mib_s"], 2)
    if args.json:
        print(json.dumps(figures))
        return
    print(
        f"block: {args.size_mib} MiB into an LV through its segment map on a loop device (direct I/O "
        f"{args.loop_direct_io}) over {args.dir}, best of {args.runs} rounds, agent buffers and dd bs "
        f"{block // MiB} MiB"
    )
    print(f"{'':34}{'agent MiB/s':>12}{'dd MiB/s':>10}{'ratio':>7}")
    rows = [
        ("upload into the store LV", "put", "dd_write", "put_ratio"),
        ("  the client hashing too", "put_hashing", "dd_write", "put_hashing_ratio"),
        ("download", "get", "dd_read", "get_ratio"),
    ]
    for label, agent_key, dd_key, ratio in rows:
        print(f"{label:34}{figures[agent_key + '_mib_s']:>12}{figures[dd_key + '_mib_s']:>10}{figures[ratio]:>7}")


if __name__ == "__main__":
    main()
