"""Direct LUN disks as `ovfstore ovf show` and `ovfstore inspect` show them: LUN id, vendor, product,
serial, size and every path, read from oVirt's own OVF (tests/fixtures/ovf/ovirt-engine-3.3-vm.ovf)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from ovfstore.cli.main import cli
from ovfstore.offline import inspect_domain
from ovfstore.ovf import write_ovf
from tests.fixtures.ovirt_domain import OVIRT_33_VM, OvirtStore, build_ovirt_domain
from tests.unit.test_ovf_samples import fixed_sample

SAMPLE = Path(__file__).parent.parent / "fixtures" / "ovf" / "ovirt-engine-3.3-vm.ovf"
OVIRT_PATH = {
    "address": "10.35.16.55", "port": "3260", "target": "iqn.2015-07.com.mlipchuk5.redhat:444", "portal": "1",
    "storage_type": "ISCSI",
}  # fmt: skip


def test_ovf_show_json_gives_the_lun_and_its_paths() -> None:
    result = CliRunner().invoke(cli, ["ovf", "show", "--json", str(SAMPLE)])
    assert result.exit_code == 0, result.output
    (lun,) = [d["lun"] for d in json.loads(result.output)["disks"] if d["lun"] is not None]
    assert lun == {
        "lun_id": "36001405bb1b5071cfb44a4e9576aef7c", "vendor": "", "product": "", "serial": "",
        "size": 5368709120, "connections": [OVIRT_PATH],
    }  # fmt: skip


def test_ovf_show_prints_vendor_product_serial_and_paths(tmp_path: Path) -> None:
    path = tmp_path / "vm.ovf"
    path.write_bytes(write_ovf(fixed_sample("vm")))
    result = CliRunner().invoke(cli, ["ovf", "show", str(path)], terminal_width=200)
    assert result.exit_code == 0, result.output
    shown = " ".join(result.output.split())  # rich wraps lines at the terminal's width
    assert "LUN 36001405bb1b5071cfb44a4e9576aef7c, vendor LIO-ORG, product lun1" in shown
    assert "path ISCSI 10.35.1.2:3260 iqn.2003-01.org.linux-iscsi.storage:t1 portal 1" in shown


def test_inspect_lists_direct_luns_with_their_paths(tmp_path: Path) -> None:
    path = build_ovirt_domain(tmp_path, stores=[OvirtStore()])
    report = inspect_domain(str(path)).to_json()
    (vm,) = [e for e in report["entities"] if e["id"] == OVIRT_33_VM]
    assert vm["luns"] == [
        {
            "disk_id": "eb331cad-8842-48d9-9c56-40b893dc8b1e", "lun_id": "36001405bb1b5071cfb44a4e9576aef7c",
            "size": 5368709120, "vendor": "", "product": "", "serial": "", "connections": [OVIRT_PATH],
        }
    ]  # fmt: skip
    text = CliRunner().invoke(cli, ["inspect", str(path)])
    assert "direct LUN disk eb331cad-8842-48d9-9c56-40b893dc8b1e: LUN 36001405bb1b5071cfb44a4e9576aef7c" in text.output
    assert "paths: ISCSI 10.35.16.55:3260 iqn.2015-07.com.mlipchuk5.redhat:444" in text.output
