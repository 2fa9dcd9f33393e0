"""The one runner of the LVM2 tools: every change of a block domain's LVM metadata goes through `Lvm.run`.

Each command sees only the devices it is given (a `--config` devices filter that accepts those and
rejects everything else, so the host's other VGs are never scanned or touched), never the host's
devices file, and with no device-mapper in the kernel, `--driverloaded n` (LVs are then only ever
created inactive and unzeroed: their bytes are reached through the segment map, `lvio`). Failures become
`ToolFailed` (or `AlreadyExists`, `CapacityExceeded`) with LVM's message, bounded.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Sequence
from functools import cache
from typing import Any

from ovfstore.storage.errors import AlreadyExists, CapacityExceeded, InvalidArgument, ToolFailed
from ovfstore.store.quoting import cut, quoted

#: Long enough for a metadata commit on a slow multipath LUN; a hung device must not hold the agent for ever.
TIMEOUT_S = 120.0
# What a device path may hold to be put into an LVM filter regex as it is (no quote, no `|`, no space).
_SAFE_PATH = re.compile(r"/[A-Za-z0-9/_.:+=@-]+")


@cache
def device_mapper() -> bool:
    """Whether the kernel has device-mapper (an LV can be activated): listed in /proc/misc. A
    /dev/mapper/control node without the driver behind it (a container) does not count."""
    try:
        with open("/proc/misc", encoding="ascii", errors="replace") as misc:
            return any(line.split()[1:] == ["device-mapper"] for line in misc if line.strip())
    except OSError:
        return False


def _pattern(path: str) -> str:
    if not _SAFE_PATH.fullmatch(path):
        raise InvalidArgument(f"the device path {quoted(path)} holds characters an LVM filter cannot take")
    return re.sub(r"([.+])", r"\\\1", path)


class Lvm:
    """`lvm <command>` over `devices` (paths), with the agent's LVM_SYSTEM_DIR when one is configured."""

    def __init__(self, devices: Sequence[str], system_dir: str | None = None) -> None:
        paths = sorted({p for d in devices for p in (d, os.path.realpath(d))})
        accept = ", ".join(f'"a|^{_pattern(p)}$|"' for p in paths)
        self.config = (
            f'devices {{ filter = [ {accept}, "r|.*|" ] global_filter = [ {accept}, "r|.*|" ] '
            'use_devicesfile = 0 obtain_device_list_from_udev = 0 external_device_info_source = "none" } '
            "backup { backup = 0 archive = 0 }"
        )
        if not device_mapper():
            self.config += " activation { udev_sync = 0 udev_rules = 0 }"
        self.env = dict(os.environ, LVM_SUPPRESS_FD_WARNINGS="1")
        if system_dir:
            self.env["LVM_SYSTEM_DIR"] = system_dir

    def run(self, command: str, *args: str) -> str:
        """Run `lvm command args...`; its standard output, or the failure as a storage error."""
        argv = ["lvm", command]
        if not device_mapper():
            argv += ["--driverloaded", "n"]
        argv += ["--config", self.config, *args]
        try:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                env=self.env,
                timeout=TIMEOUT_S,
            )
        except FileNotFoundError as e:
            raise ToolFailed("the LVM tools are not installed; install lvm2 to create or change block domains") from e
        except subprocess.TimeoutExpired as e:
            raise ToolFailed(f"lvm {command} did not finish within {TIMEOUT_S:.0f} s; check the devices") from e
        if done.returncode:
            message = " ".join(line.strip() for line in done.stderr.splitlines() if "WARNING" not in line)
            what = f"lvm {command} failed (exit {done.returncode}): {cut(message, 600)}"
            if "already exists" in message:
                raise AlreadyExists(what)
            if "Insufficient free space" in message or "insufficient free space" in message:
                raise CapacityExceeded(f"{what}; the domain has no room for it: extend the domain or free space")
            raise ToolFailed(what)
        return done.stdout

    def report(self, command: str, kind: str, *args: str) -> list[dict[str, Any]]:
        """The rows of a `pvs`/`vgs`/`lvs` JSON report (sizes in bytes)."""
        out = self.run(command, "--reportformat", "json", "--units", "b", "--nosuffix", *args)
        try:
            rows: list[dict[str, Any]] = json.loads(out)["report"][0][kind]
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise ToolFailed(f"lvm {command} gave a report that cannot be read: {cut(out)}") from e
        return rows
