"""Settings: defaults < config file (TOML) < ``INDEXER_*`` environment variables < flags.

Every setting is declared once in :data:`SETTINGS` (name, TOML section, type, default), which
gives the environment variable (``INDEXER_`` + NAME), the config-file key and the validation;
what each one means is written once, in ``config.example.toml``. An unknown key or a value of the
wrong type is an error naming the key and where it came from: a typo in a cron job's config must
not silently fall back to a default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, NamedTuple

from .engines import ENGINE_NAMES
from .errors import ConfigError
from .store.db import default_db_url


class Setting(NamedTuple):
    name: str
    section: str
    type: type
    default: Any


SETTINGS: tuple[Setting, ...] = (
    Setting("db_url", "", str, None),
    Setting("engine", "index", str, None),
    Setting("concurrency", "index", int, 16),
    Setting("tps", "index", float, 50.0),
    Setting("retry_attempts", "index", int, 6),
    Setting("batch_size", "index", int, 50),
    Setting("lock_lease_seconds", "index", float, 60.0),
    Setting("collection", "index", str, None),
    #: N for ``index --shard auto`` (``INDEXER_SHARDS``; the flag is ``--shards``).
    Setting("shards", "index", int, None),
    Setting("profile", "aws", str, None),
    Setting("region", "aws", str, None),
    Setting("min_confidence", "search", float, 50.0),
    Setting("workers", "local", int, None),
    Setting("models_dir", "local", str, None),
)
_BY_NAME = {s.name: s for s in SETTINGS}


class Config(NamedTuple):
    db_url: str
    engine: str | None
    concurrency: int
    tps: float
    retry_attempts: int
    batch_size: int
    lock_lease_seconds: float
    profile: str | None
    region: str | None
    min_confidence: float
    workers: int | None
    models_dir: str | None
    #: The Rekognition face collection ``index`` fills (``--collection``); None: DetectFaces only.
    collection: str | None
    #: How many shards ``index --shard auto`` splits the source into; None: not set.
    shards: int | None = None


def env_var(name: str) -> str:
    return f"INDEXER_{name.upper()}"


def default_config_path() -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "indexer" / "config.toml"


def _coerce(setting: Setting, value: Any, where: str) -> Any:
    if value is None:
        return None
    result: int | float | str
    try:
        if setting.type is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            result = int(value)
        elif setting.type is float:
            if isinstance(value, bool):
                raise ValueError
            result = float(value)
        else:
            if not isinstance(value, str):
                raise ValueError
            result = value
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {setting.name} must be {setting.type.__name__}, got {value!r}") from None
    if isinstance(result, str):
        if setting.name == "engine" and result not in ENGINE_NAMES:
            raise ConfigError(f"{where}: engine must be {' or '.join(map(repr, ENGINE_NAMES))}, got {value!r}")
        return result
    if result <= 0 and setting.name != "min_confidence":
        raise ConfigError(f"{where}: {setting.name} must be positive, got {value!r}")
    if setting.name == "min_confidence" and not 0 <= result <= 100:
        raise ConfigError(f"{where}: min_confidence must be between 0 and 100, got {value!r}")
    return result


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings of a TOML file, validated; sections are [index], [aws], [search], [local]."""
    import tomllib  # only when there is a file to read: not on every command's path

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            for subkey, subvalue in value.items():
                _accept(values, subkey, subvalue, f"{path} [{key}]", section=key)
        else:
            _accept(values, key, value, str(path), section="")
    return values


def _accept(values: dict[str, Any], key: str, value: Any, where: str, section: str) -> None:
    setting = _BY_NAME.get(key)
    if setting is None or setting.section != section:
        place = f"[{setting.section}]" if setting and setting.section else "the top level"
        hint = f" (it belongs in {place})" if setting else ""
        raise ConfigError(f"{where}: unknown setting {key!r}{hint}")
    values[key] = _coerce(setting, value, where)


def read_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    values = {}
    for setting in SETTINGS:
        raw = environ.get(env_var(setting.name))
        if raw not in (None, ""):
            values[setting.name] = _coerce(setting, raw, env_var(setting.name))
    return values


def load_config(
    config_file: str | Path | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Resolve every setting: defaults < config file < environment < flags (None = not given)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {s.name: s.default for s in SETTINGS}
    path = Path(config_file).expanduser() if config_file else None
    if path is None and environ.get("INDEXER_CONFIG"):
        path = Path(environ["INDEXER_CONFIG"]).expanduser()
    if path is None and default_config_path().is_file():
        path = default_config_path()
    if path is not None:
        values.update(read_config_file(path))
    values.update(read_environment(environ))
    for name, value in (flags or {}).items():
        if value is not None:
            values[name] = _coerce(_BY_NAME[name], value, f"--{name.replace('_', '-')}")
    if not values["db_url"]:
        values["db_url"] = default_db_url()
    return Config(**values)
