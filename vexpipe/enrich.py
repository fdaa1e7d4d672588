"""Enriching one IOC: privacy guard, cache, provider, and what goes into the record.

:meth:`Enricher.settle` answers at once when it can (private or allowlisted
IOC, unsupported type, cache hit, offline miss); otherwise :meth:`Enricher.fetch`
asks the provider (in a worker thread) and caches the answer. :func:`apply`
writes an :class:`Outcome` into an IOC record. vex-lookup's own module only
schedules these calls and keeps the output in order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from vexpipe import privacy, records, vtmodel
from vexpipe.providers import CredentialsRefused, LookupFailed, Provider
from vexpipe.ratelimit import Cancelled, QuotaExhausted
from vexpipe.store import Store

STAGE = "lookup"


@dataclass
class Outcome:
    """What became of one IOC: a summary and verdict, an error, or a reason it was skipped."""

    summary: dict | None = None
    verdict: str | None = None
    reason: str = ""
    error: tuple[str, str] | None = None
    skipped: str | None = None
    cached: bool = False
    stale: bool = False
    fetched_at: float | None = None
    requests: int = 0
    raw: Any = None

    def render(self, requests: int | None = None) -> dict:
        """The record's summary key for this outcome. Built once per outcome and request
        count and shared by every record of the same IOC in a run (they are written, not
        mutated, afterwards), so repeats cost nothing."""
        key = self.requests if requests is None else requests
        cache = self.__dict__.setdefault("_rendered", {})
        rendered = cache.get(key)
        if rendered is None:
            rendered = dict(self.summary or {})
            rendered["verdict_reason"] = self.reason
            rendered["cached"] = self.cached
            if self.stale:
                rendered["stale"] = True
            if self.fetched_at:
                rendered["fetched_at"] = vtmodel.iso(self.fetched_at)
            rendered["requests"] = key
            if self.raw is not None:
                rendered["raw"] = self.raw
            cache[key] = rendered
        return rendered

    def serialized(self, requests: int | None = None) -> orjson.Fragment:
        """:meth:`render` already serialised: a record of an IOC seen before in the run
        then costs no serialisation of its (large) summary."""
        key = ("json", self.requests if requests is None else requests)
        cache = self.__dict__.setdefault("_rendered", {})
        fragment = cache.get(key)
        if fragment is None:
            fragment = cache[key] = orjson.Fragment(orjson.dumps(self.render(requests)))
        return fragment

    # Outcomes stand in for finished futures (see vex-lookup's memo).
    def done(self) -> bool:
        return True

    def result(self) -> "Outcome":
        return self


class Enricher:
    """Settles or fetches lookups for one provider and mode (triage or investigate)."""

    def __init__(self, provider: Provider, store: Store | None, *, mode: str, ttl: dict,
                 read_cache: bool = True, write_cache: bool = True, offline: bool = False,
                 include_raw: bool = False, allowlist: privacy.Allowlist | None = None):
        self.provider = provider
        self.store = store
        self.mode = mode
        self.ttl = ttl
        self.read_cache = read_cache and store is not None
        self.write_cache = write_cache and store is not None
        self.offline = offline
        self.include_raw = include_raw
        self.allowlist = allowlist or privacy.Allowlist()
        # Answers fetched from now on were fetched in this run: they are served even when
        # the cache is not to be read (--refresh, --no-cache), so an IOC is asked once a run.
        self.since = time.time()

    def settle(self, ioc_type: str, ioc: str) -> Outcome | None:
        """The outcome known without asking the provider, or None when it must be fetched."""
        if ioc_type not in self.provider.types:
            return Outcome(skipped=f"unsupported-type ({self.provider.name} has no {ioc_type} objects)")
        reason = privacy.private_reason(ioc_type, ioc)
        if reason:
            return Outcome(skipped=reason)
        if self.allowlist and self.allowlist.matches(ioc_type, ioc):
            return Outcome(skipped="allowlisted")
        if self.store is not None:
            hit = self._from_cache(ioc_type, ioc)
            if hit is not None:
                return hit
        if self.offline:
            return Outcome(error=("offline_miss", "not in the cache and --offline forbids asking"))
        return None

    def _from_cache(self, ioc_type: str, ioc: str) -> Outcome | None:
        # An investigate answer holds everything a triage answer does.
        modes = ("triage", "investigate") if self.mode == "triage" else ("investigate",)
        now = time.time()
        for mode in modes:
            entry = self.store.get(self.provider.name, mode, ioc_type, ioc)
            if entry is None or not (self.read_cache or self.offline or entry["fetched_at"] >= self.since):
                continue
            fresh = entry["expires_at"] > now
            if not fresh and not self.offline:
                continue
            raw = None
            if entry["summary_version"] == self.provider.summary_version:
                summary = orjson.loads(entry["summary"])
            else:
                raw = orjson.loads(entry["raw"])
                summary = self.provider.summarize(raw, entry["found"])
            if self.include_raw and raw is None:
                raw = orjson.loads(entry["raw"])
            verdict, reason = self.provider.verdict(summary)
            return Outcome(summary=summary, verdict=verdict, reason=reason, cached=True, stale=not fresh,
                           fetched_at=entry["fetched_at"], raw=raw if self.include_raw else None)
        return None

    def fetch(self, ioc_type: str, ioc: str) -> Outcome:
        """Ask the provider. Per-IOC failures become error outcomes; a refused key and a
        cancelled run propagate."""
        try:
            got = self.provider.fetch(ioc_type, ioc, self.mode)
        except LookupFailed as e:
            return Outcome(error=(e.code, str(e)), requests=e.requests)
        except QuotaExhausted as e:
            return Outcome(error=("quota_exceeded", str(e)))
        except (CredentialsRefused, Cancelled):
            raise
        summary = self.provider.summarize(got.raw, got.found)
        verdict, reason = self.provider.verdict(summary)
        fetched_at = time.time()
        if self.write_cache:
            ttl = self.ttl.get(verdict if got.found else "NOT_FOUND", self.ttl["UNKNOWN"])
            self.store.put(self.provider.name, self.mode, ioc_type, ioc, fetched_at=fetched_at,
                           expires_at=fetched_at + ttl, verdict=verdict if got.found else None,
                           found=got.found, summary_version=self.provider.summary_version,
                           summary=orjson.dumps(summary), raw=orjson.dumps(got.raw))
        return Outcome(summary=summary, verdict=verdict, reason=reason, fetched_at=fetched_at,
                       requests=got.requests,
                       raw=got.raw if self.include_raw else None)


def apply(record: dict, key: str, outcome: Outcome, requests: int | None = None) -> None:
    """Write an outcome into an IOC record: ``record[key]``, ``verdict``, ``errors``.

    The stage owns ``key``, ``verdict`` and its own entries in ``errors``: earlier
    lookup errors are replaced, everything else in the record is kept.
    ``requests`` overrides the request count (0 for an IOC already looked up
    earlier in this run).
    """
    if "errors" in record and isinstance(record["errors"], list):
        kept = [e for e in record["errors"] if not (isinstance(e, dict) and e.get("stage") == STAGE)]
        if kept:
            record["errors"] = kept
        else:
            del record["errors"]
    if outcome.skipped:
        record[key] = {"skipped": outcome.skipped}
        return
    if outcome.error:
        code, message = outcome.error
        records.add_error(record, STAGE, code, message)
        return
    # Serialised once per IOC and request count: a repeat costs no serialisation.
    record[key] = outcome.serialized(requests)
    record["verdict"] = outcome.verdict
