"""`ovfstore engine serve --config FILE` as a real process: a setting of the file takes effect.

The file makes the OVF stores far too small for any tar, and lets them grow no larger ([updater]
store_capacity and store_capacity_max), so writing a domain's stores is refused with the configured
ceiling in the reason: with the defaults it succeeds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ovfstore.agent.process import LocalAgent
from ovfstore.cli.main import cli

PASSWORD = "config-admin-secret"
CAPACITY = 2048  # a store tar is at least 4 KiB: three members and the end-of-archive blocks


@pytest.fixture
def engine_url(tmp_path: Path) -> Iterator[tuple[str, LocalAgent]]:
    with LocalAgent([tmp_path / "storage"], tmp_path / "agent") as agent:
        config = tmp_path / "engine.toml"
        config.write_text(
            f"[updater]\nstore_capacity = {CAPACITY}\nstore_capacity_max = {CAPACITY}\n\n"
            f'[agent]\nsecret = "{agent.secret}"\n'
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OVFSTORE_UPDATER_", "OVFSTORE_AGENT_"))}
        proc = subprocess.Popen(
            [sys.executable, "-m", "ovfstore.cli.main", "engine", "serve", "--config", str(config),
             "--data-dir", str(tmp_path / "data"), "--port", "0", "--log-level", "warning"],
            env={**env, "OVFSTORE_ADMIN_PASSWORD": PASSWORD}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        assert proc.stdout is not None
        try:
            url, seen = None, ""
            deadline = time.monotonic() + 60
            while url is None and time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line and proc.poll() is not None:
                    break
                seen += line
                if line.startswith("API at "):
                    url = line.split()[2]
            assert url is not None, f"ovfstore engine serve did not print its API address:\n{seen}"
            yield url, agent
        finally:
            proc.terminate()
            proc.wait(30)
            proc.stdout.close()


def _run(url: str, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), env={"OVFSTORE_URL": url, "OVFSTORE_PASSWORD": PASSWORD})
    assert result.exit_code == code, result.output
    return result.output


@pytest.mark.timeout(120)
def test_a_setting_of_the_config_file_takes_effect(engine_url: tuple[str, LocalAgent], tmp_path: Path) -> None:
    url, agent = engine_url
    _run(url, "host", "add", "h1", agent.url)
    path = tmp_path / "storage" / "d1"
    path.mkdir()
    _run(url, "domain", "add", "d1", str(path), "--host", "h1")
    _run(url, "domain", "attach", "d1")
    refused = _run(url, "domain", "update-ovf", "d1", code=1)
    assert f"ceiling of {CAPACITY} bytes" in refused
    assert "store_capacity_max" in refused


def test_a_mistake_in_the_config_file_stops_the_engine_before_it_starts(tmp_path: Path) -> None:
    config = tmp_path / "engine.toml"
    config.write_text('[updater]\ndebounse_s = 1\n[agent]\nsecret = "s"\n')
    result = subprocess.run(
        [sys.executable, "-m", "ovfstore.cli.main", "engine", "serve", "--config", str(config),
         "--data-dir", str(tmp_path / "data"), "--port", "0"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"{config}: unknown setting `debounse_s` in [updater]" in result.stderr
    assert not (tmp_path / "data").exists()
