"""A host agent as a child process on this machine: `LocalAgent` for `ovfstore demo`, tests and
benchmarks, `SupervisedAgent` for `ovfstore up`, which starts it again whenever it dies."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from ovfstore.agent.client import AgentClient
from ovfstore.agent.config import SECRET_ENV

log = logging.getLogger(__name__)

# What `ovfstore agent serve` reads its secret from when it is given no file (cli/agent.py).
# An agent that has not bound its port by then is not going to.
START_TIMEOUT_S = 30.0


def agent_command(
    roots: Sequence[Path],
    port: int,
    port_file: Path,
    *extra_args: str,
    devices: Sequence[str] = (),
    lvm_system_dir: str | None = None,
) -> list[str]:
    command = [sys.executable, "-m", "ovfstore.cli.main", "agent", "serve", "--port", str(port)]
    command += ["--port-file", str(port_file), *extra_args]
    for root in roots:
        command += ["--root", str(root)]
    for device in devices:
        command += ["--device", device]
    if lvm_system_dir:
        command += ["--lvm-system-dir", lvm_system_dir]
    return command


def wait_for_port(process: subprocess.Popen[bytes], port_file: Path, timeout_s: float = START_TIMEOUT_S) -> int:
    """The port the agent bound, once it wrote it; RuntimeError if it exits or takes too long."""
    deadline = time.monotonic() + timeout_s
    while not port_file.exists() or not port_file.read_text().strip():
        if process.poll() is not None:
            raise RuntimeError(f"the host agent exited with {exit_status(process.returncode)} before listening")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the host agent did not listen within {timeout_s:.0f} s")
        time.sleep(0.02)
    return int(port_file.read_text())


def exit_status(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"status {code}"


class LocalAgent:
    """Start `ovfstore agent serve` on a free loopback port and wait until it listens."""

    def __init__(
        self,
        roots: Sequence[Path],
        workdir: Path,
        secret: str | None = None,
        port: int = 0,
        extra_args: Sequence[str] = (),
        devices: Sequence[str] = (),
        lvm_system_dir: str | None = None,
    ) -> None:
        self.roots = tuple(roots)
        self.devices = tuple(devices)
        self.secret = secret or secrets.token_urlsafe(24)
        workdir.mkdir(parents=True, exist_ok=True)
        for root in roots:
            root.mkdir(parents=True, exist_ok=True)
        name = f"agent-{secrets.token_hex(4)}"  # several agents may share a work directory
        port_file = workdir / f"{name}.port"
        secret_file = workdir / f"{name}.secret"
        secret_file.write_text(self.secret)
        os.chmod(secret_file, 0o600)
        command = agent_command(
            roots, port, port_file, "--secret-file", str(secret_file), *extra_args, devices=devices,
            lvm_system_dir=lvm_system_dir,
        )  # fmt: skip
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - open for the life of the process
        # The secret file decides; one in the environment must not override it.
        env = {k: v for k, v in os.environ.items() if k != SECRET_ENV}
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        try:
            self.port = wait_for_port(self.process, port_file)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}; see {self.log_path}") from None
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


# A dead agent is started again after 1 s, then 2, 4 ... up to 30 s while it keeps dying; one that stayed
# up a minute is taken to be healthy again, and its next death waits 1 s again. Long enough not to spin on
# a broken installation, short enough that a crash costs the engine seconds of its host.
RESTART_INITIAL_S = 1.0
RESTART_MAX_S = 30.0
STABLE_S = 60.0


class SupervisedAgent:
    """`ovfstore agent serve` as a child that is started again, on the same port (the engine knows the
    host by its address), whenever it dies, until `stop`. `on_down` hears of each death (with the exit
    status), `on_up` of each restarted agent once it answers. Its pid is kept in DATA_DIR/agent.pid."""

    def __init__(
        self,
        roots: Sequence[Path],
        data_dir: Path,
        secret: str,
        on_down: Callable[[str], None],
        on_up: Callable[[], None],
        *,
        restart_initial_s: float = RESTART_INITIAL_S,
        restart_max_s: float = RESTART_MAX_S,
        stable_s: float = STABLE_S,
        devices: Sequence[str] = (),
        lvm_system_dir: str | None = None,
    ) -> None:
        self.roots = tuple(roots)
        self.devices = tuple(devices)
        self.lvm_system_dir = lvm_system_dir
        self.secret = secret
        self.on_down, self.on_up = on_down, on_up
        self.restart_initial_s, self.restart_max_s, self.stable_s = restart_initial_s, restart_max_s, stable_s
        self.port_file = data_dir / "agent.port"
        self.pid_file = data_dir / "agent.pid"
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # between a restart and `stop`: no agent is started once stopping
        self.process = self._spawn(0)
        try:
            self.port = wait_for_port(self.process, self.port_file)
        except RuntimeError:
            self.process.kill()
            self.process.wait()
            self.pid_file.unlink(missing_ok=True)
            raise
        self.url = f"http://127.0.0.1:{self.port}"
        self._watcher = threading.Thread(target=self._watch, name="agent-supervisor", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        """Stop the agent for good: it is not restarted after this."""
        with self._lock:
            self._stopping.set()
            process = self.process
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._watcher.join(10)
        self.pid_file.unlink(missing_ok=True)

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        self.port_file.unlink(missing_ok=True)
        # The secret goes by environment, not by file: nothing secret is left on disk.
        env = {**os.environ, SECRET_ENV: self.secret}
        command = agent_command(
            self.roots, port, self.port_file, devices=self.devices, lvm_system_dir=self.lvm_system_dir
        )
        process = subprocess.Popen(command, env=env)
        self.pid_file.write_text(f"{process.pid}\n")
        return process

    def _watch(self) -> None:
        delay = self.restart_initial_s
        started = time.monotonic()
        while True:
            code = self.process.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started >= self.stable_s:
                delay = self.restart_initial_s
            log.warning(
                "the local agent (pid %d) exited with %s after %.1f s; restarting it in %.1f s",
                self.process.pid, exit_status(code), time.monotonic() - started, delay,
            )  # fmt: skip
            _tell(self.on_down, f"the local agent exited with {exit_status(code)}")
            next_delay = self._restart(delay)
            if next_delay is None:
                return
            delay = next_delay
            started = time.monotonic()
            log.warning("the local agent is back (pid %d, port %d)", self.process.pid, self.port)
            _tell(self.on_up)

    def _restart(self, delay: float) -> float | None:
        """Start the agent again, waiting `delay` before each try, doubling; the next delay, or None once
        stopping."""
        while not self._stopping.wait(delay):
            delay = min(delay * 2, self.restart_max_s)
            with self._lock:
                if self._stopping.is_set():
                    return None
                self.process = self._spawn(self.port)
            try:
                wait_for_port(self.process, self.port_file)
                with AgentClient(self.url, self.secret, timeout=START_TIMEOUT_S) as client:
                    client.health()
                return delay
            except Exception as exc:  # any failure to come up is one more try, later
                log.warning("the local agent did not come back (%s); trying again in %.1f s", exc, delay)
                self.process.kill()
                self.process.wait()
        return None


def _tell(listener: Callable[..., None], *args: str) -> None:
    # What the owner does with the news (marking the host in the engine) must not end the supervision.
    try:
        listener(*args)
    except Exception:
        log.exception("could not record the local agent's state")
