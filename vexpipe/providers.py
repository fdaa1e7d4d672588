"""The provider interface: what vex-lookup asks of an enrichment source.

VirusTotal (:mod:`vexpipe.vtprovider`) is built in. A third-party provider is a
class registered under the entry-point group ``vexpipe.providers`` and chosen
with ``vex-lookup --provider NAME``; it is constructed with the effective
:class:`~vexpipe.config.Config` and a :class:`Context`.

A provider splits its work in two so the cache can keep raw answers:
``fetch`` does the I/O and returns a JSON-ready raw answer; ``summarize`` is
pure and turns that raw answer into the record's summary (it runs again on a
cached raw answer when ``summary_version`` changes); ``verdict`` judges a
summary.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable, Protocol

ERROR_CODES = ("quota_exceeded", "rate_limited", "http_5xx", "timeout", "bad_response", "network", "auth",
               "offline_miss")


class LookupFailed(Exception):
    """One IOC could not be enriched; the record carries ``{stage, code, message}``."""

    def __init__(self, code: str, message: str, requests: int = 0):
        super().__init__(message)
        self.code = code
        self.requests = requests


class CredentialsRefused(Exception):
    """The provider refused the API key (401): the run stops with exit 77."""


@dataclass
class Fetched:
    """What one fetch brought back: the raw answer (JSON-ready), whether the object
    exists, and how many HTTP requests it cost."""

    raw: dict
    found: bool
    requests: int


@dataclass
class Context:
    """Run-wide services a provider may use."""

    stop: threading.Event = field(default_factory=threading.Event)
    acquire: Callable[[], None] = lambda: None  # wait for the rate limiter before each request
    penalize: Callable[[float], None] = lambda seconds: None  # shared back-off after a 429
    submit: bool = False  # the user asked for submission of unknown URLs
    warn: Callable[[str], None] = lambda message: None


class Provider(Protocol):
    name: str  # cache namespace and --provider value
    record_key: str  # the record key its summary goes under ("vt")
    summary_version: int
    types: frozenset[str]  # IOC types it can look up

    def fetch(self, ioc_type: str, ioc: str, mode: str) -> Fetched:
        """Ask the source (``mode``: triage or investigate); raise LookupFailed or CredentialsRefused."""
        ...

    def summarize(self, raw: dict, found: bool) -> dict:
        """The record's summary of a raw answer (pure)."""
        ...

    def verdict(self, summary: dict) -> tuple[str, str]:
        """``(verdict, one-line reason)`` for a summary (pure, cheap: runs on every cache hit,
        so a changed policy applies to cached answers too)."""
        ...


def load(name: str, config: Any, ctx: Context) -> Provider:
    """The provider called ``name``: built-in ``virustotal`` or an entry point."""
    if name in ("virustotal", "vt"):
        from vexpipe.vtprovider import VirusTotal

        return VirusTotal(config, ctx)
    for ep in entry_points(group="vexpipe.providers"):
        if ep.name == name:
            return ep.load()(config, ctx)
    known = ["virustotal"] + sorted(ep.name for ep in entry_points(group="vexpipe.providers"))
    raise LookupError(f"no provider {name!r} (installed: {', '.join(known)})")
