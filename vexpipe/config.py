"""Configuration: ``config.toml``, then the environment, then flags (each overrides the one before).

Files (``$XDG_CONFIG_HOME/vexpipe/``, default ``~/.config/vexpipe/``):
- ``config.toml``: settings (see vex-lookup(1) for every key);
- ``credentials.toml``: the API key, written 0600 by ``vex-lookup --set-key``.
  A key may also stand in config.toml; a warning says so when a file holding a
  key can be read by group or others.

Environment: ``VT_API_KEY``, ``VEXPIPE_BASE_URL``, ``VEXPIPE_TIER``,
``VEXPIPE_PER_MINUTE``, ``VEXPIPE_PER_DAY``, ``VEXPIPE_PER_MONTH``,
``VEXPIPE_CACHE`` (cache file), ``VEXPIPE_TIMEOUT``, ``VEXPIPE_BACKOFF``
(first retry delay, seconds), ``VEXPIPE_CONFIG_DIR``.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from vexpipe import store
from vexpipe.ratelimit import FREE, Limits
from vexpipe.verdict import Policy

DEFAULT_BASE_URL = "https://www.virustotal.com/api/v3"
# How long a cached answer is fresh, by verdict.
DEFAULT_TTL = {"MALICIOUS": 7 * 86400, "SUSPICIOUS": 86400, "CLEAN": 3 * 86400, "UNKNOWN": 86400,
               "NOT_FOUND": 6 * 3600}


class ConfigError(Exception):
    """Unusable configuration: exit 78."""


@dataclass
class Config:
    api_key: str | None = None
    key_source: str | None = None  # where the key came from: flag, environment, file
    base_url: str = DEFAULT_BASE_URL
    tier: str = "free"
    limits: Limits = FREE
    timeout: float = 30.0
    backoff: float = 1.0
    retries: int = 6
    policy: Policy = field(default_factory=Policy)
    ttl: dict = field(default_factory=lambda: dict(DEFAULT_TTL))
    cache_path: Path = field(default_factory=store.default_path)
    allowlist: list = field(default_factory=list)
    submit_wait: float = 120.0


def config_dir() -> Path:
    if os.environ.get("VEXPIPE_CONFIG_DIR"):
        return Path(os.environ["VEXPIPE_CONFIG_DIR"])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "vexpipe"


def _read_toml(path: Path, warn: Callable[[str], None]) -> dict:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror}") from None
    try:
        parsed = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: {e}") from None
    if _has_key(parsed):
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            warn(f"{path} holds an API key and is readable by others (mode {stat.filemode(mode)}); "
                 f"run: chmod 600 {path}")
    return parsed


def _has_key(parsed: dict) -> bool:
    section = parsed.get("virustotal")
    return isinstance(section, dict) and "api_key" in section


DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(value: Any, name: str) -> float:
    """``90``, ``"90s"``, ``"15m"``, ``"6h"``, ``"7d"`` -> seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    m = DURATION.match(str(value))
    if not m:
        raise ConfigError(f"{name}: {value!r} is not a duration (like 90s, 15m, 6h, 7d)")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _positive_int(value: Any, name: str) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: {value!r} is not a whole number") from None
    if n <= 0:
        raise ConfigError(f"{name}: must be at least 1")
    return n


def load(flags: dict, warn: Callable[[str], None]) -> Config:
    """The effective configuration. ``flags`` holds the command-line values (None: not given)."""
    directory = config_dir()
    file_cfg = _read_toml(directory / "config.toml", warn)
    creds = _read_toml(directory / "credentials.toml", warn)
    vt = {**_section(file_cfg, "virustotal"), **_section(creds, "virustotal")}
    env = os.environ
    cfg = Config()

    def pick(flag: str, env_name: str, file_key: str, section: dict = vt) -> tuple[Any, str | None]:
        if flags.get(flag) is not None:
            return flags[flag], "flag"
        if env.get(env_name):
            return env[env_name], "environment"
        if file_key in section:
            return section[file_key], "file"
        return None, None

    cfg.api_key, cfg.key_source = pick("api_key", "VT_API_KEY", "api_key")
    if cfg.api_key is not None:
        cfg.api_key = str(cfg.api_key).strip() or None
    base, _ = pick("base_url", "VEXPIPE_BASE_URL", "base_url")
    cfg.base_url = str(base) if base else DEFAULT_BASE_URL
    tier, _ = pick("tier", "VEXPIPE_TIER", "tier")
    cfg.tier = str(tier or "free").lower()
    if cfg.tier not in ("free", "premium"):
        raise ConfigError(f"tier: {tier!r} is neither free nor premium")
    base_limits = FREE if cfg.tier == "free" else Limits()
    limits = {}
    for name in ("per_minute", "per_day", "per_month"):
        value, _ = pick(name, f"VEXPIPE_{name.upper()}", name)
        limits[name] = _positive_int(value, name) if value is not None else getattr(base_limits, name)
    cfg.limits = Limits(**limits)
    timeout, _ = pick("timeout", "VEXPIPE_TIMEOUT", "timeout")
    if timeout is not None:
        cfg.timeout = parse_duration(timeout, "timeout")
    backoff, _ = pick("backoff", "VEXPIPE_BACKOFF", "backoff")
    if backoff is not None:
        cfg.backoff = parse_duration(backoff, "backoff")
    if "retries" in vt:
        cfg.retries = _positive_int(vt["retries"], "retries")
    if "submit_wait" in vt:
        cfg.submit_wait = parse_duration(vt["submit_wait"], "submit_wait")

    verdict = _section(file_cfg, "verdict")
    try:
        cfg.policy = Policy(**{k: _positive_int(v, f"verdict.{k}") for k, v in verdict.items()})
    except TypeError as e:
        raise ConfigError(f"[verdict]: {e}") from None

    cache = _section(file_cfg, "cache")
    for verdict_name, value in _section(cache, "ttl").items():
        if verdict_name.upper() not in DEFAULT_TTL:
            raise ConfigError(f"cache.ttl: unknown class {verdict_name!r} (one of {', '.join(DEFAULT_TTL)})")
        cfg.ttl[verdict_name.upper()] = parse_duration(value, f"cache.ttl.{verdict_name}")
    path, _ = pick("cache", "VEXPIPE_CACHE", "path", cache)
    if path:
        cfg.cache_path = Path(os.path.expanduser(str(path)))

    allow = _section(file_cfg, "privacy").get("allowlist", [])
    if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
        raise ConfigError("privacy.allowlist: must be a list of strings")
    cfg.allowlist = allow
    return cfg


def _section(parsed: dict, name: str) -> dict:
    value = parsed.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table")
    return value


def store_key(api_key: str) -> Path:
    """Write the key to credentials.toml, created 0600 (and its directory 0700)."""
    if not re.fullmatch(r"[A-Za-z0-9_\-]{8,128}", api_key):
        raise ConfigError("that does not look like an API key (8-128 letters, digits, - or _)")
    directory = config_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / "credentials.toml"
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f'# written by vex-lookup --set-key\n[virustotal]\napi_key = "{api_key}"\n')
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path
