"""A host agent as a child process on this machine, for `ovfstore demo`, `ovfstore up` and benchmarks."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType


class LocalAgent:
    """Start `ovfstore agent serve` on a free loopback port and wait until it listens."""

    def __init__(
        self,
        roots: Sequence[Path],
        workdir: Path,
        secret: str | None = None,
        port: int = 0,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.roots = tuple(roots)
        self.secret = secret or secrets.token_urlsafe(24)
        workdir.mkdir(parents=True, exist_ok=True)
        for root in roots:
            root.mkdir(parents=True, exist_ok=True)
        name = f"agent-{secrets.token_hex(4)}"  # several agents may share a work directory
        port_file = workdir / f"{name}.port"
        secret_file = workdir / f"{name}.secret"
        secret_file.write_text(self.secret)
        os.chmod(secret_file, 0o600)
        command = [sys.executable, "-m", "ovfstore.cli.main", "agent", "serve", "--port", str(port)]
        command += ["--port-file", str(port_file), "--secret-file", str(secret_file), *extra_args]
        for root in roots:
            command += ["--root", str(root)]
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - open for the life of the process
        # The secret file decides; one in the environment must not override it.
        env = {k: v for k, v in os.environ.items() if k != "OVFSTORE_AGENT_SECRET"}
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the host agent did not start; see {self.log_path}")
            time.sleep(0.02)
        self.port = int(port_file.read_text())
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def __enter__(self) -> LocalAgent:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
