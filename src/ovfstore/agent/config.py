"""The agent's configuration, one typed value built by the CLI or by tests."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AgentConfig:
    # Directories holding storage domains (`<root>/<sdUUID>` or an NFS mount `<root>/<server:_path>/`);
    # no request can reach a path outside them.
    roots: tuple[str, ...]
    # The engine's shared secret, sent as `Authorization: Bearer <secret>` on every request.
    secret: str
    # Loopback only unless an operator decides otherwise: the agent writes storage on request.
    host: str = "127.0.0.1"
    # Next to VDSM (54321) and ovirt-imageio (54322, 54323), so all three can run on one host.
    port: int = 54324
    # Size of each of the two aligned buffers of a transfer. Measured with bench/agent_bench.py (128 MiB,
    # ext4 on virtio, 2 vCPUs): upload 288 MiB/s with 1 MiB, 381 with 4 MiB, 395 with 8 MiB; larger
    # buffers mean fewer, larger O_DIRECT writes, which NFS and block storage want even more. Costs
    # 16 MiB per concurrent transfer.
    buffer_size: int = 8 << 20
    # Idle buffers kept for reuse: enough for a few concurrent store writes without mapping new memory,
    # few enough that an idle agent holds at most 64 MiB.
    buffers_kept: int = 8
    # O_DIRECT keeps a store write from evicting the host's page cache and makes the final fsync short;
    # the agent falls back to buffered I/O by itself where the filesystem refuses it.
    direct_io: bool = True
