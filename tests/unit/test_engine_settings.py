"""The engine's settings: defaults < config file < environment < flags; mistakes refused with their key."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from ovfstore.engine.config import AgentAccess, UpdaterConfig
from ovfstore.engine.settings import SettingsError, describe, load, settings

SECRET = {"agent": {"secret": "s3cret"}}
OPERATIONS = Path(__file__).parents[2] / "docs" / "OPERATIONS.md"


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "engine.toml"
    path.write_text(text)
    return path


def test_defaults_are_those_of_the_typed_config() -> None:
    loaded = load(flags=SECRET)
    assert loaded.updater == UpdaterConfig()
    assert loaded.agent == AgentAccess(secret="s3cret")


def test_the_file_sets_every_section(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        '[updater]\ndebounce_s = 1\nparallel_domains = 2\nwriter = "site-b"\n\n'
        '[agent]\nsecret = "from-file"\ntimeout_s = 30.5\n',
    )
    loaded = load(path)
    assert loaded.updater == UpdaterConfig(debounce_s=1.0, parallel_domains=2, writer="site-b")
    assert isinstance(loaded.updater.debounce_s, float)  # an integer in TOML is still a float setting
    assert loaded.agent == AgentAccess(secret="from-file", timeout_s=30.5)


def test_precedence_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = _file(tmp_path, '[updater]\ndebounce_s = 1\nsweep_interval_s = 60\n[agent]\nsecret = "file"\n')
    environ = {"OVFSTORE_UPDATER_DEBOUNCE_S": "2.5", "OVFSTORE_AGENT_SECRET": "env", "OVFSTORE_DB_URL": "x"}
    loaded = load(path, environ)
    assert (loaded.updater.debounce_s, loaded.updater.sweep_interval_s) == (2.5, 60.0)
    assert loaded.agent.secret == "env"
    assert load(path, environ, {"agent": {"secret": "flag"}}).agent.secret == "flag"


def test_environment_values_take_the_setting_type() -> None:
    environ = {
        "OVFSTORE_UPDATER_STORE_CAPACITY": "4096", "OVFSTORE_UPDATER_STORE_CAPACITY_MAX": "8192",
        "OVFSTORE_AGENT_TIMEOUT_S": "7",
    }  # fmt: skip
    loaded = load(environ=environ, flags=SECRET)
    assert (loaded.updater.store_capacity, loaded.updater.store_capacity_max) == (4096, 8192)
    assert loaded.agent.timeout_s == 7.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[updater]\ndebounse_s = 1\n", r"toml: unknown setting `debounse_s` in \[updater\]; known: .*debounce_s"),
        ("[updatr]\ndebounce_s = 1\n", r"engine\.toml: unknown section \[updatr\]; known: \[updater\], \[agent\]"),
        ("debounce_s = 1\n", r"engine\.toml: `debounce_s` is outside any section"),
        ('[updater]\ndebounce_s = "5"\n', r"engine\.toml: \[updater\] debounce_s: must be a number, not \"5\""),
        ("[updater]\nparallel_domains = 2.5\n", r"\[updater\] parallel_domains: must be a whole number, not 2\.5"),
        ("[updater]\nparallel_domains = true\n", r"\[updater\] parallel_domains: must be a whole number, not true"),
        ("[updater]\nparallel_domains = 0\n", r"\[updater\] parallel_domains: must be more than 0, not 0"),
        ("[updater]\ndebounce_s = -1\n", r"\[updater\] debounce_s: must be 0 or more, not -1"),
        ("[agent]\nsecret = 12345\n", r"\[agent\] secret: must be a string, not a value of another type"),
        ("[updater\n", r"engine\.toml: not valid TOML"),
    ],
)
def test_file_mistakes_are_refused_naming_key_and_file(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load(_file(tmp_path, text), flags=SECRET)


def test_a_zero_debounce_is_allowed(tmp_path: Path) -> None:
    assert load(_file(tmp_path, "[updater]\ndebounce_s = 0\n"), flags=SECRET).updater.debounce_s == 0.0


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"OVFSTORE_UPDATER_DEBOUNCE": "1"}, r"environment variable OVFSTORE_UPDATER_DEBOUNCE: no such setting"),
        ({"OVFSTORE_UPDATER_DEBOUNCE_S": "soon"}, r"OVFSTORE_UPDATER_DEBOUNCE_S: must be a number, not 'soon'"),
        ({"OVFSTORE_UPDATER_PARALLEL_DOMAINS": "1.5"}, r"PARALLEL_DOMAINS: must be a whole number"),
    ],
)
def test_environment_mistakes_are_refused_naming_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load(environ=environ, flags=SECRET)


def test_a_missing_file_or_secret_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"nowhere\.toml: cannot read the config file"):
        load(tmp_path / "nowhere.toml", flags=SECRET)
    with pytest.raises(SettingsError, match=r"no agent secret: .*OVFSTORE_AGENT_SECRET.*--agent-secret-file"):
        load()


def test_every_setting_is_described_with_its_default_and_variable() -> None:
    text = describe()
    for setting in settings():
        assert f"[{setting.section}] {setting.key} = " in text
        assert setting.env in text
    assert "[updater] debounce_s = 5.0  (OVFSTORE_UPDATER_DEBOUNCE_S)" in text
    assert "[agent] secret = (required)" in text


def test_the_sample_file_of_the_operations_guide_loads_and_names_every_setting(tmp_path: Path) -> None:
    sample = re.search(r"```toml\n(.*?)```", OPERATIONS.read_text(), re.S)
    assert sample is not None, "docs/OPERATIONS.md has a ```toml sample"
    document = tomllib.loads(sample.group(1))
    named = {(section, key) for section, table in document.items() for key in table}
    assert named == {(s.section, s.key) for s in settings()}
    loaded = load(_file(tmp_path, sample.group(1)))
    # The sample shows the defaults (the secret aside).
    assert loaded.updater == UpdaterConfig()
    assert dataclasses.replace(loaded.agent, secret="x") == AgentAccess(secret="x")
