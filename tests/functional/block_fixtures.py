"""Block storage for engine tests: loop devices (sparse images) in an `LvmLab` of their own, and a real
host agent process allowed to use exactly those devices with the lab's LVM configuration. Without root,
lvm2 or loop devices the tests skip, except under CI=true, where they fail (`tests/fixtures/lvm.py`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from tests.fixtures.lvm import LvmLab, lvm_lab_at
from tests.functional.agent_fixtures import AgentProcess

#: A block domain's special LVs take about 4.6 GiB (leases 2 GiB, xleases and master 1 GiB each, four
#: more of one 128 MiB extent); the images are sparse, so a generous size costs nothing.
LUN_MIB = 16 * 1024


@dataclass
class BlockLab:
    lab: LvmLab
    luns: list[str]  # the loop devices, e.g. /dev/loop3

    @property
    def lvm_system_dir(self) -> Path:
        return self.lab.root / "etc"

    def agent_args(self) -> tuple[str, ...]:
        args: list[str] = []
        for lun in self.luns:
            args += ["--device", lun]
        return (*args, "--lvm-system-dir", str(self.lvm_system_dir))

    def start_agent(
        self, agent_factory: Callable[..., AgentProcess], root: Path, secret: str = "engine-secret"
    ) -> AgentProcess:
        return agent_factory(roots=(root,), secret=secret, extra_args=self.agent_args())


@contextmanager
def block_lab(tmp_path: Path, count: int = 3, size_mib: int = LUN_MIB) -> Iterator[BlockLab]:
    """`count` loop devices of `size_mib` (sparse), detached (and their VGs removed) on the way out."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    with lvm_lab_at(tmp_path) as lab:
        luns = lab.attach(count, size_mib)
        try:
            yield BlockLab(lab, luns)
        finally:
            _remove_vgs(lab)


def _remove_vgs(lab: LvmLab) -> None:
    """The domains' VGs are named by their ids, not the lab's name: remove every VG on the lab's loops
    so the loop devices can be detached clean."""
    try:
        rows = lab.report("pvs", "pv", "-o", "vg_name", *lab.loops)
    except AssertionError:
        return
    for vg in {row["vg_name"] for row in rows if row.get("vg_name")}:
        with suppress(AssertionError):
            lab.lvm("vgremove", "-ff", "-y", vg)
