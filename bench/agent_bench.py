"""Upload and download through a real agent on loopback, against `dd` on the same filesystem.

    python bench/agent_bench.py [--dir /var/tmp] [--size-mib 128] [--runs 5] [--json]

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
    parser.add_argument("--dir", default="/var/tmp", help="a directory on the local disk (not tmpfs)")
    parser.add_argument("--size-mib", type=int, default=128)
    parser.add_argument("--runs", type=int, default=5, help="rounds; each figure is the best of them")
    parser.add_argument("--buffer-size", type=int, default=AgentConfig.buffer_size, help="the agent's I/O buffer size")
    parser.add_argument("--json", action="store_true", help="print only the figures as JSON")
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
