"""The agent's configuration, one typed value built by the CLI or by tests."""

from __future__ import annotations

from dataclasses import dataclass

# Next to VDSM (54321) and ovirt-imageio (54322, 54323), so all three can run on one host.
DEFAULT_PORT = 54324
#: The environment variable that may carry the secret the engine and its agents share.
SECRET_ENV = "OVFSTORE_AGENT_SECRET"


@dataclass(frozen=True)
class AgentConfig:
    # Directories holding storage domains (`<root>/<sdUUID>` or an NFS mount `<root>/<server:_path>/`);
    # no request can reach a path outside them.
    roots: tuple[str, ...]
    # The engine's shared secret, sent as `Authorization: Bearer <secret>` on every request.
    secret: str
    # Block devices (or image files) the agent may use for block domains: paths or glob patterns, e.g.
    # `/dev/mapper/*` (multipath LUNs) or `/dev/loop*`. No other device is read, scanned by LVM or written.
    devices: tuple[str, ...] = ()
    # The LVM_SYSTEM_DIR the LVM tools run with (an lvm.conf of the agent's own); None: the host's.
    lvm_system_dir: str | None = None
    # Loopback only unless an operator decides otherwise: the agent writes storage on request.
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    # Size of each aligned buffer of a connection (mapped at its first transfer, reused by the next
    # ones, unmapped when it closes). 8 MiB is where bench/agent_bench.py stopped gaining from larger
    # buffers (docs/PERFORMANCE.md); fewer, larger O_DIRECT writes also suit NFS and block storage. An upload
    # goes round four of them (agent.handlers.transfer.RING), so a connection that carried a transfer holds 32 MiB.
    buffer_size: int = 8 << 20
    # O_DIRECT keeps a store write from evicting the host's page cache and makes the final fsync short;
    # the agent falls back to buffered I/O by itself where the filesystem refuses it.
    direct_io: bool = True
    # How long an idle keep-alive connection is kept: longer than the client's own pool expiry (httpx,
    # 5 s), so it is always the client that drops an idle connection, never the agent under a request
    # the client is just sending.
    keep_alive_timeout: float = 60.0
    # A request whose client sends nothing for this long is broken off (an upload then stays ILLEGAL and
    # its volume lock is released). As long as the client's own timeout, which covers a slow final fsync.
    transfer_timeout: float = 300.0
    # A request head must arrive whole within this long of its first byte, else the connection is
    # dropped: a client sending a byte a second would otherwise hold a thread for ever (slowloris). The
    # engine's heads are < 1 KiB and leave in one segment.
    head_timeout: float = 10.0
    # Connections served at once; one more is answered 503 `agent_busy` and closed. Each holds a thread
    # and, once it carried a transfer, 4 * buffer_size of buffers (32 MiB): 32 of them bound that to
    # 1 GiB. An engine uses a few connections per agent (its pool and its updater), far below this.
    max_connections: int = 32
    # On SIGTERM, requests in progress get this long to finish; idle connections are closed at once.
    # An upload cut off then leaves its volume ILLEGAL, which is safe, only wasteful.
    shutdown_timeout: float = 30.0
