"""The engine's settings as an operator gives them: one TOML file, environment variables, command-line flags.

Every setting is a field of a section of `engine/config.py` (`[updater]` is `UpdaterConfig`, `[agent]`
is `AgentAccess`); this module only finds the values and checks them. Precedence, lowest first: the
defaults written in config.py, the file (`--config PATH`), `OVFSTORE_<SECTION>_<KEY>` in the environment,
the command-line flags. An unknown section or key, or a value of the wrong type, is refused with an
error naming the key and where it came from: a typo must never fall back silently to a default.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ovfstore.engine.config import AgentAccess, ApiConfig, EngineIdentity, UpdaterConfig

ENV_PREFIX = "OVFSTORE_"

#: The sections of the file, each the typed value it builds.
SECTIONS: dict[str, type[UpdaterConfig] | type[AgentAccess] | type[ApiConfig] | type[EngineIdentity]] = {
    "updater": UpdaterConfig,
    "agent": AgentAccess,
    "api": ApiConfig,
    "engine": EngineIdentity,
}

# A debounce of 0 means "write at once"; for every other number 0 would stop the engine working (no
# store fits, no domain is updated, every agent request times out at once), so it must be positive.
# A store count of 0 is a domain that keeps no stores, as oVirt allows; a recovery point threshold of 0 calls a
# domain behind as soon as a change is not on its stores.
_ZERO_ALLOWED = frozenset(
    {
        ("updater", "debounce_s"),
        ("updater", "store_count"),
        ("updater", "recovery_point_threshold_s"),
        ("api", "metrics_cache_s"),
    }
)

Values = dict[str, dict[str, object]]


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the key, where it came from and what is wanted."""


@dataclass(frozen=True, slots=True)
class Settings:
    updater: UpdaterConfig
    agent: AgentAccess
    api: ApiConfig = dataclasses.field(default_factory=ApiConfig)
    engine: EngineIdentity = dataclasses.field(default_factory=EngineIdentity)


@dataclass(frozen=True, slots=True)
class Setting:
    """One key of one section, for the help text and the documentation."""

    section: str
    key: str
    kind: type
    default: object  # dataclasses.MISSING when the setting is required

    @property
    def env(self) -> str:
        return f"{ENV_PREFIX}{self.section}_{self.key}".upper()


def settings() -> Iterator[Setting]:
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            yield Setting(section, f.name, hints[f.name], f.default)


def describe() -> str:
    """Every setting with its default and its environment variable, one a line."""
    lines = []
    for s in settings():
        default = "(required)" if s.default is dataclasses.MISSING else _toml(s.default)
        lines.append(f"[{s.section}] {s.key} = {default}  ({s.env})")
    return "\n".join(lines)


def load(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Mapping[str, object]] | None = None,
) -> Settings:
    """The settings from the defaults, then the file, then the environment, then the flags given."""
    values: Values = {section: {} for section in SECTIONS}
    if path is not None:
        _merge(values, _read_file(path), str(path))
    _merge(values, _from_environment(environ or {}), "the environment")
    _merge(values, {section: dict(given) for section, given in (flags or {}).items()}, "the command line")
    if not values["agent"].get("secret"):
        raise SettingsError(
            "no agent secret: set `secret` in the [agent] section of the config file, or the "
            "OVFSTORE_AGENT_SECRET environment variable, or pass --agent-secret-file"
        )
    return Settings(
        UpdaterConfig(**values["updater"]),  # type: ignore[arg-type]
        AgentAccess(**values["agent"]),  # type: ignore[arg-type]
        ApiConfig(**values["api"]),  # type: ignore[arg-type]
        EngineIdentity(**values["engine"]),  # type: ignore[arg-type]
    )


def _read_file(path: Path) -> Values:
    try:
        with path.open("rb") as f:
            document = tomllib.load(f)
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read the config file: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from exc
    values: Values = {}
    for section, table in document.items():
        if not isinstance(table, dict):
            raise SettingsError(f"{path}: `{section}` is outside any section; settings go under {_known_sections()}")
        values[section] = table
    return values


def _from_environment(environ: Mapping[str, str]) -> Values:
    """`OVFSTORE_<SECTION>_<KEY>` variables, converted to the type of their setting."""
    by_name = {s.env: s for s in settings()}
    prefixes = tuple(f"{ENV_PREFIX}{section.upper()}_" for section in SECTIONS)
    values: Values = {}
    for name, text in environ.items():
        if not name.startswith(prefixes):
            continue
        setting = by_name.get(name)
        if setting is None:
            known = ", ".join(sorted(by_name))
            raise SettingsError(f"environment variable {name}: no such setting; known: {known}")
        values.setdefault(setting.section, {})[setting.key] = _parse(text, setting, f"environment variable {name}")
    return values


def _parse(text: str, setting: Setting, source: str) -> object:
    try:
        if setting.kind is bool:
            return {"true": True, "1": True, "false": False, "0": False}[text.strip().lower()]
        if setting.kind in (int, float):
            return setting.kind(text)
    except (KeyError, ValueError):
        raise SettingsError(f"{source}: {_wanted(setting)}, not {text!r}") from None
    return text


def _merge(values: Values, given: Values, source: str) -> None:
    """Check each given value against its setting, then let it replace the lower layer's."""
    for section, table in given.items():
        cls = SECTIONS.get(section)
        if cls is None:
            raise SettingsError(f"{source}: unknown section [{section}]; known: {_known_sections()}")
        known = {s.key: s for s in settings() if s.section == section}
        for key, value in table.items():
            setting = known.get(key)
            if setting is None:
                raise SettingsError(
                    f"{source}: unknown setting `{key}` in [{section}]; known: {', '.join(sorted(known))}"
                )
            values[section][key] = _check(value, setting, source)


def _check(value: object, setting: Setting, source: str) -> object:
    where = f"{source}: [{setting.section}] {setting.key}"
    kind = setting.kind
    # bool is an int to Python, never to an operator: `parallel_domains = true` is a mistake.
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, (int, float) if kind is float else kind):
        secret = setting.key in ("secret", "metrics_token")
        shown = "a value of another type" if secret else _toml(value)  # never echo a secret
        raise SettingsError(f"{where}: {_wanted(setting)}, not {shown}")
    if kind in (int, float) and isinstance(value, (int, float)):
        if value < 0 or (value == 0 and (setting.section, setting.key) not in _ZERO_ALLOWED):
            floor = "0 or more" if (setting.section, setting.key) in _ZERO_ALLOWED else "more than 0"
            raise SettingsError(f"{where}: must be {floor}, not {_toml(value)}")
        return kind(value)
    return value


def _wanted(setting: Setting) -> str:
    return {bool: "must be true or false", int: "must be a whole number", float: "must be a number"}.get(
        setting.kind, "must be a string"
    )


def _known_sections() -> str:
    return ", ".join(f"[{s}]" for s in SECTIONS)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)
