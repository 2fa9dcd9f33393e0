"""`ovfstore ovf show`: the summary, the JSON shape, and the one-line error."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from ovfstore.cli.main import cli
from ovfstore.ovf import write_ovf
from tests.unit.test_ovf_samples import fixed_sample


def _write(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.ovf"
    path.write_bytes(write_ovf(fixed_sample(kind)))
    return path


def test_show_json_has_what_recovery_needs(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["ovf", "show", "--json", str(_write(tmp_path, "vm"))])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["id"] == "11111111-2222-3333-4444-555555555555"
    assert shown["name"] == "app <01> & co"
    assert shown["type"] == "vm"
    assert shown["template_id"] == "00000000-0000-0000-0000-000000000005"
    assert shown["cluster_name"] == "Default"
    assert shown["os"] == "rhel_9x64"
    assert shown["memory_mb"] == 2048
    assert shown["cpu"] == {"sockets": 2, "cores": 3, "threads": 2}
    image, lun = shown["disks"]
    assert image == {
        "disk_id": "00000000-0000-0000-0000-00000000000a",
        "volume_id": "00000000-0000-0000-0000-000000000015",
        "domain_id": "00000000-0000-0000-0000-000000000028",
        "alias": "disk 1",
        "interface": "virtio_scsi",
        "boot": True,
        "format": "cow",
        "size_gib": 12.0,
        "volumes": 2,
        "volume_ids": ["00000000-0000-0000-0000-000000000014", "00000000-0000-0000-0000-000000000015"],
        "lun": None,
    }
    assert lun["format"] == "lun"
    assert lun["volume_id"] is None
    assert shown["nics"] == [
        {"name": "nic1", "mac": "56:6f:00:00:00:01", "network": "ovirtmgmt", "profile": "ovirtmgmt"}
    ]
    assert shown["warnings"] == []


def test_show_summary_names_the_template(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["ovf", "show", str(_write(tmp_path, "template"))])
    assert result.exit_code == 0, result.output
    assert "template app <01> & co" in result.stdout
    assert "disk 1" in result.stdout


def test_unreadable_input_is_one_error_line_and_status_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ovf"
    bad.write_bytes(b"<ovf:Envelope")
    for path in (bad, tmp_path / "missing.ovf"):
        result = CliRunner().invoke(cli, ["ovf", "show", str(path)])
        assert result.exit_code == 1
        assert result.stdout == ""
        lines = result.stderr.splitlines()
        assert len(lines) == 1
        assert lines[0].startswith(f"error: {path}: ")
