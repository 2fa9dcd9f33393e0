"""Upload and download through a real agent on loopback, against `dd` on the same filesystem.

    python bench/agent_bench.py [--dir /var/tmp] [--size-mib 128] [--runs 3] [--json]

Each figure is the best of `--runs` runs. The upload is timed until the agent's success answer, which
comes after fsync; `dd` writes the same bytes with `conv=fsync` and reads them back with `iflag=direct`,
the way the agent reads. The source bytes are read from a file in the page cache by both.

The agent computes the SHA-256 of every byte it writes, in every run. The client verifies it two ways:

- `put`: against the digest of the source, known before the upload (the client then sends only). This is
  the agent's rate, and the one compared with `dd`, which has no client at all.
- `put_hashing`: against the digest the client computes while sending (what `AgentClient.upload` does
  when the caller passes no digest). On loopback the client's hashing takes CPU from the agent on the
  same machine; deployed, the engine hashes on its own host. Printed for the record.
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
from ovfstore.agent.process import LocalAgent

MiB = 1 << 20
CHUNK = 4 * MiB


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def _best(runs: int, fn: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.monotonic()
        fn()
        best = min(best, time.monotonic() - start)
    return best


def _dd(*args: str) -> None:
    subprocess.run(["dd", *args, "status=none"], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default="/var/tmp", help="a directory on the local disk (not tmpfs)")
    parser.add_argument("--size-mib", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--buffer-size", type=int, default=8 * MiB, help="the agent's I/O buffer size")
    parser.add_argument("--json", action="store_true", help="print only the figures as JSON")
    args = parser.parse_args()
    size = args.size_mib * MiB

    workdir = Path(tempfile.mkdtemp(prefix="ovfstore-bench-", dir=args.dir))
    agent = None
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
        agent = LocalAgent([root], workdir, extra_args=["--buffer-size", str(args.buffer_size)])
        with AgentClient(agent.url, agent.secret) as client:
            sd, img, vol = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
            client.create_domain(sd, "bench")
            client.create_volume(sd, img, vol, size, disk_type="OVFS", description="OVF_STORE")

            def put() -> None:
                client.upload(sd, img, vol, _file_chunks(source), size, sha256=expected)

            def put_hashing() -> None:
                assert client.upload(sd, img, vol, _file_chunks(source), size).sha256 == expected

            def get() -> None:
                with client.download(sd, img, vol, 0, size) as stream:
                    received = sum(len(chunk) for chunk in stream)
                assert received == size

            put_s = _best(args.runs, put)
            put_hashing_s = _best(args.runs, put_hashing)
            get_s = _best(args.runs, get)

        target = workdir / "dd-target"

        def dd_write() -> None:
            target.unlink(missing_ok=True)
            _dd(f"if={source}", f"of={target}", "bs=1M", "conv=fsync")

        dd_write_s = _best(args.runs, dd_write)
        dd_read_s = _best(args.runs, lambda: _dd(f"if={target}", "of=/dev/null", "bs=1M", "iflag=direct"))
    finally:
        if agent is not None:
            agent.stop()
        shutil.rmtree(workdir)

    mib = size / MiB
    figures = {
        "put_mib_s": round(mib / put_s, 1),
        "put_hashing_mib_s": round(mib / put_hashing_s, 1),
        "get_mib_s": round(mib / get_s, 1),
        "dd_write_mib_s": round(mib / dd_write_s, 1),
        "dd_read_mib_s": round(mib / dd_read_s, 1),
    }
    figures["put_ratio"] = round(figures["put_mib_s"] / figures["dd_write_mib_s"], 2)
    figures["get_ratio"] = round(figures["get_mib_s"] / figures["dd_read_mib_s"], 2)
    figures["put_hashing_ratio"] = round(figures["put_hashing_mib_s"] / figures["dd_write_mib_s"], 2)
    if args.json:
        print(json.dumps(figures))
        return
    print(f"{args.size_mib} MiB in {args.dir}, best of {args.runs} runs, agent buffers {args.buffer_size // MiB} MiB")
    print(f"{'':10}{'agent MiB/s':>14}{'dd MiB/s':>12}{'ratio':>8}")
    print(f"{'upload':10}{figures['put_mib_s']:>14}{figures['dd_write_mib_s']:>12}{figures['put_ratio']:>8}")
    print(
        f"{'  +hash':10}{figures['put_hashing_mib_s']:>14}{figures['dd_write_mib_s']:>12}"
        f"{figures['put_hashing_ratio']:>8}   (the client hashing too, on the same 2 cores)"
    )
    print(f"{'download':10}{figures['get_mib_s']:>14}{figures['dd_read_mib_s']:>12}{figures['get_ratio']:>8}")


if __name__ == "__main__":
    main()
