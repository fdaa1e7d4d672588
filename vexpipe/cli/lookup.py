"""vex-lookup: enrich IOC records from VirusTotal (or another provider)."""

from __future__ import annotations

import argparse
import collections
import getpass
import os
import queue
import select
import sys
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable

from vexpipe import config as configuration
from vexpipe import kb, privacy, providers, records
from vexpipe.enrich import STAGE, Enricher, Outcome, apply
from vexpipe.http import BaseURLError
from vexpipe.ratelimit import RateLimiter, key_hash
from vexpipe.runtime import ArgumentParser, Exit, Filter, StageError
from vexpipe.store import Store

EPILOG = """\
examples:
  vex-detect auth.log | vex-lookup                     enrich, exit by verdict
  echo 8.8.8.8 | vex-lookup                             bare values work too
  vex-detect -f report.txt | vex-lookup -q --fail-on MALICIOUS    CI gate
  tail -F proxy.log | vex-detect | vex-lookup --alert SUSPICIOUS
  vex-lookup --investigate --raw < iocs.ndjson          relationships, sandbox data
  vex-lookup --offline < iocs.ndjson                    cache only, no network

record: adds vt (summary; vt.skipped for IOCs never sent), verdict (MALICIOUS,
  SUSPICIOUS, UNKNOWN, CLEAN), or errors [{stage: lookup, code, message}] with code
  quota_exceeded, rate_limited, http_5xx, timeout, bad_response, network, auth,
  offline_miss, interrupted (Ctrl-C: records in flight still come out)

files: $XDG_CONFIG_HOME/vexpipe/config.toml (settings), credentials.toml (key, 0600),
  $XDG_CACHE_HOME/vexpipe/cache.sqlite3 (cache and rate-limit state, shared)
environment: VT_API_KEY, VEXPIPE_BASE_URL, VEXPIPE_TIER, VEXPIPE_PER_MINUTE,
  VEXPIPE_PER_DAY, VEXPIPE_PER_MONTH, VEXPIPE_TIMEOUT, VEXPIPE_BACKOFF, VEXPIPE_CACHE,
  HTTPS_PROXY (HTTP_PROXY for an http base URL), NO_PROXY (precedence: flag >
  environment > file)

exit status: 0 nothing at or above --fail-on (default SUSPICIOUS), 1 SUSPICIOUS seen,
  2 MALICIOUS seen, 3 some IOC not enriched (and none MALICIOUS), 64 usage,
  65 bad input with --strict, 69 provider unreachable, 70 internal error, 77 API key
  missing or refused, 78 configuration error, 130 interrupted, 141 output closed
"""

LEVELS = ("CLEAN", "UNKNOWN", "SUSPICIOUS", "MALICIOUS")
# Outcomes kept in memory for repeats in a run (each holds a summary, up to tens of KB with
# --investigate): bounded so memory stays flat; an IOC forgotten here is answered by the cache.
MEMO = 4096


class Item:
    """One input record on its way out: the IOC records in it and their pending lookups."""

    __slots__ = ("record", "waits")  # one per input record: kept light

    def __init__(self, record: Any):
        self.record = record
        self.waits: list = []  # (ioc record, Future[Outcome] or Outcome, first lookup?)

    def done(self) -> bool:
        for _, future, _ in self.waits:
            if not future.done():
                return False
        return True


class Pool:
    """Daemon worker threads: a stuck request never keeps the process from exiting."""

    def __init__(self, workers: int, wake: Callable[[], None]):
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.wake = wake
        for _ in range(workers):
            threading.Thread(target=self._work, daemon=True).start()

    def submit(self, fn: Callable, *args: Any) -> Future:
        future: Future = Future()
        self.jobs.put((future, fn, args))
        return future

    def _work(self) -> None:
        while True:
            future, fn, args = self.jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as e:  # delivered to the main thread by Future.result()
                future.set_exception(e)
            self.wake()


class Lookup(Filter):
    prog = "vex-lookup"
    stage = STAGE
    summary = "enrich IOC records from VirusTotal"
    description = (
        "Enrich IOC records (or events carrying iocs, or bare IOC values, one a line) from "
        "VirusTotal API v3, with a cache and a rate limiter shared by every process on the "
        "machine. Every record comes out, in input order: enriched with vt and verdict, or "
        "carrying an error; private and allowlisted IOCs are never sent."
    )
    epilog = EPILOG
    default_fail_on = "SUSPICIOUS"

    @classmethod
    def add_arguments(cls, p: ArgumentParser) -> None:
        what = p.add_argument_group("what to ask")
        what.add_argument("--investigate", action="store_true",
                          help="also relationships and sandbox behaviour (more requests per IOC)")
        what.add_argument("--raw", action="store_true", help="add the raw API answer as vt.raw")
        what.add_argument("--submit", action="store_true",
                          help="submit URLs VirusTotal does not know for scanning (a disclosure: "
                          "never done without this flag)")
        what.add_argument("--provider", default="virustotal", metavar="NAME",
                          help="enrichment provider (default virustotal; others via the "
                          "vexpipe.providers entry point)")
        cache = p.add_argument_group("cache")
        cache.add_argument("--no-cache", action="store_true", help="do not read the cache (still write it)")
        cache.add_argument("--refresh", action="store_true", help="read nothing from the cache, write fresh answers")
        cache.add_argument("--offline", action="store_true",
                           help="answer only from the cache (expired entries too), never touch the network")
        cache.add_argument("--cache", metavar="PATH", help="cache file (default $XDG_CACHE_HOME/vexpipe/cache.sqlite3)")
        rate = p.add_argument_group("quota and concurrency")
        rate.add_argument("--tier", choices=("free", "premium"), help="API tier (default from config: free)")
        rate.add_argument("--per-minute", type=int, metavar="N", help="requests per minute for this run")
        rate.add_argument("--per-day", type=int, metavar="N", help="requests per UTC day")
        rate.add_argument("--per-month", type=int, metavar="N", help="requests per UTC month")
        rate.add_argument("--wait-quota", action="store_true",
                          help="when the daily quota is used up, wait for it instead of marking "
                          "records quota_exceeded")
        rate.add_argument("-j", "--jobs", type=int, metavar="N",
                          help="concurrent requests (default 4 on free, 16 on premium)")
        rate.add_argument("--unordered", action="store_true", help="write records as they complete")
        rate.add_argument("--timeout", type=float, metavar="SECONDS", help="read timeout per request (default 30)")
        out = p.add_argument_group("output")
        out.add_argument("--alert", type=str.upper, choices=LEVELS, metavar="LEVEL",
                         help="write only records with a verdict at or above LEVEL (and records "
                         "whose lookup failed, so nothing is lost silently)")
        out.add_argument("--summary", action="store_true",
                         help="counts per verdict and per error on stderr at the end")
        key = p.add_argument_group("API key and server")
        key.add_argument("-k", "--api-key", metavar="KEY",
                         help="API key (visible in ps: prefer VT_API_KEY or --set-key)")
        key.add_argument("--set-key", action="store_true",
                         help="read a key from standard input (or a prompt) and store it 0600 in "
                         "$XDG_CONFIG_HOME/vexpipe/credentials.toml, then exit")
        key.add_argument("--base-url", metavar="URL", help="API base URL (https; http only to loopback)")

    def __init__(self, args: argparse.Namespace):
        super().__init__(args)
        for name in ("jobs", "per_minute", "per_day", "per_month"):
            value = getattr(args, name)
            if value is not None and value < 1:
                raise StageError(f"--{name.replace('_', '-')} must be at least 1", Exit.USAGE)
        if args.offline and (args.refresh or args.submit):
            raise StageError("--offline cannot be combined with --refresh or --submit", Exit.USAGE)
        self.pending: collections.deque[Item] = collections.deque()
        self.memo: dict[tuple[str, str], Future | Outcome] = {}
        self.counts: collections.Counter = collections.Counter()
        self.errors: collections.Counter = collections.Counter()
        self.answered = 0
        self.network_failures = 0
        self.stop = threading.Event()
        self.started = time.monotonic()
        self.progress_at = 0.0
        self.show_progress = not self.quiet and sys.stderr.isatty()

    # --- set-up --------------------------------------------------------------

    def run(self) -> None:
        if self.args.set_key:
            self.set_key()
            return
        try:
            cfg = configuration.load({
                "api_key": self.args.api_key, "base_url": self.args.base_url, "tier": self.args.tier,
                "per_minute": self.args.per_minute, "per_day": self.args.per_day,
                "per_month": self.args.per_month, "timeout": self.args.timeout, "cache": self.args.cache,
            }, self.warn)
        except configuration.ConfigError as e:
            raise StageError(f"configuration: {e}", Exit.CONFIG) from None
        if cfg.key_source == "flag":
            self.warn("an API key given with -k shows in ps and shell history; "
                      "prefer VT_API_KEY or vex-lookup --set-key")
        if not cfg.api_key and not self.args.offline and self.args.provider in ("virustotal", "vt"):
            raise StageError("no VirusTotal API key: set VT_API_KEY, or run vex-lookup --set-key "
                             "(or use --offline to answer from the cache)", Exit.NOPERM)
        jobs = self.args.jobs or (4 if cfg.tier == "free" else 16)
        store = Store(cfg.cache_path, self.warn)
        limiter = RateLimiter(store, key_hash(cfg.api_key or "offline"), cfg.limits)
        self.limiter = limiter
        self.limits = cfg.limits
        ctx = providers.Context(
            stop=self.stop, acquire=lambda: limiter.acquire(self.stop, self.args.wait_quota),
            penalize=limiter.penalize, submit=self.args.submit, warn=self.warn)
        try:
            provider = providers.load(self.args.provider, cfg, ctx)
        except BaseURLError as e:
            raise StageError(f"configuration: {e}", Exit.CONFIG) from None
        except LookupError as e:
            raise StageError(str(e), Exit.USAGE) from None
        self.key = provider.record_key
        self.enricher = Enricher(
            provider, store, mode="investigate" if self.args.investigate else "triage", ttl=cfg.ttl,
            read_cache=not (self.args.no_cache or self.args.refresh), offline=self.args.offline,
            include_raw=self.args.raw, allowlist=privacy.Allowlist(cfg.allowlist + kb_allowlist()))
        self.window = max(64, jobs * 8)
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        self.pool = Pool(jobs, self.wake)
        try:
            self.loop()
        finally:
            self.stop.set()
            self.clear_progress()
            if self.args.summary:
                self.print_summary()

    def set_key(self) -> None:
        if sys.stdin.isatty():
            key = getpass.getpass("VirusTotal API key: ")
        else:
            key = sys.stdin.readline()
        try:
            path = configuration.store_key(key.strip())
        except configuration.ConfigError as e:
            raise StageError(str(e), Exit.USAGE) from None
        self.error(f"key stored in {path} (mode 600)")

    # --- the loop ----------------------------------------------------------

    def loop(self) -> None:
        try:
            for _source, _line, value in self.json_values():
                self.take(value)
                self.drain(block=False)
                while len(self.pending) >= self.window:
                    self.drain(block=True)
                    self.flush()
            while self.pending:
                self.drain(block=True)
                self.flush()
        except KeyboardInterrupt:
            self.write_interrupted()
            raise

    def write_interrupted(self) -> None:
        """Ctrl-C: the records read but not yet written still come out (nothing vanishes),
        those whose lookup had not finished with an ``interrupted`` error."""
        self.stop.set()
        cut = Outcome(error=("interrupted", "the run was interrupted before this IOC was looked up"))
        for item in self.pending:
            item.waits = [(rec, future if _answered(future) else cut, first) for rec, future, first in item.waits]
            self.finish(item)
        self.pending.clear()

    def take(self, value: Any) -> None:
        item = Item(value)
        for rec in records.ioc_records(value):
            key = records.canonical(rec)
            if key is None:
                records.add_error(rec, STAGE, "bad_record", "ioc is not a valid IOC of its type")
                continue
            future = self.memo.pop(key, None)
            first = future is None
            if first:
                # A settled Outcome answers done()/result() like a finished Future.
                future = self.enricher.settle(*key) or self.pool.submit(self.enricher.fetch, *key)
                if len(self.memo) >= MEMO:  # forget the least recently used; the cache still has it
                    del self.memo[next(iter(self.memo))]
            self.memo[key] = future  # (re)inserted last: the dict's order is the LRU order
            item.waits.append((rec, future, first))
        self.pending.append(item)

    def pass_on(self, record: Any) -> None:
        self.pending.append(Item(record))

    def drain(self, block: bool) -> None:
        """Write the records whose lookups are done: from the head of the queue in order, or
        any of them with --unordered. ``block`` waits until at least one can go."""
        while self.pending:
            if self.args.unordered:
                ready = [item for item in self.pending if item.done()]
                if not ready:
                    if not block:
                        return
                    self.wait_any()
                    continue
                for item in ready:
                    self.pending.remove(item)
                    self.finish(item)
                return
            head = self.pending[0]
            if not head.done():
                if not block:
                    return
                self.wait_any()
                continue
            self.pending.popleft()
            self.finish(head)
            block = False
        self.show()

    def wait_any(self) -> None:
        """Sleep until a lookup completes (woken by the workers), showing progress meanwhile."""
        self.show()
        select.select([self.wake_r], [], [], 0.25)
        self.take_wakes()

    def wake(self) -> None:
        try:
            os.write(self.wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass  # the pipe is full of wake-ups already

    def take_wakes(self) -> None:
        while select.select([self.wake_r], [], [], 0)[0]:
            if not os.read(self.wake_r, 65536):
                return

    def wait_readable(self, fd: int) -> None:
        """While lookups are in flight and no input comes, keep writing what finishes."""
        while self.pending:
            self.drain(block=False)
            self.flush()
            if not self.pending:
                return
            ready, _, _ = select.select([fd, self.wake_r], [], [], 0.25)
            if self.wake_r in ready:
                self.take_wakes()
            if fd in ready:
                return

    def finish(self, item: Item) -> None:
        alert = self.args.alert is None
        for rec, future, first in item.waits:
            try:
                outcome: Outcome = future.result()
            except providers.CredentialsRefused as e:
                raise StageError(str(e), Exit.NOPERM) from None
            apply(rec, self.key, outcome, requests=None if first else 0)
            self.count(outcome, first)
            if not alert and (outcome.error or (outcome.verdict and
                              LEVELS.index(outcome.verdict) >= LEVELS.index(self.args.alert))):
                alert = True
        if not item.waits and self.args.alert is not None:
            # No IOC in it: an error record for bad input, or something else; never lost.
            alert = not isinstance(item.record, dict) or "raw" in item.record or "ioc" not in item.record
        if alert:
            self.emit(item.record)

    def count(self, outcome: Outcome, first: bool) -> None:
        if outcome.skipped:
            self.counts["skipped"] += 1
        elif outcome.error:
            self.errors[outcome.error[0]] += 1
            if first and outcome.error[0] in ("network", "timeout"):
                self.network_failures += 1
        else:
            self.counts[outcome.verdict or "UNKNOWN"] += 1
            if outcome.cached:
                self.counts["cache hits"] += 1
            if first:
                self.answered += 1

    def exit_code(self) -> int:
        if self.network_failures and not self.answered:
            self.error("the provider could not be reached")
            return Exit.UNAVAILABLE
        return super().exit_code()

    # --- progress and summary ------------------------------------------------

    def show(self) -> None:
        if not self.show_progress:
            return
        now = time.monotonic()
        if now - self.progress_at < 0.2:
            return
        self.progress_at = now
        done = sum(self.counts[k] for k in LEVELS) + self.counts["skipped"] + sum(self.errors.values())
        waiting = sum(1 for item in self.pending for _, f, first in item.waits if first and not f.done())
        elapsed = max(now - self.started, 1e-6)
        line = f"{done} done, {waiting} in flight, {self.counts['cache hits']} cache hits, {done / elapsed:.1f}/s"
        try:
            used = self.limiter.usage()
        except Exception:  # progress must never break a run
            used = None
        if used is not None:
            if self.limits.per_minute:
                line += f", {max(self.limits.per_minute - used['minute'], 0)} requests left this minute"
            if self.limits.per_day:
                line += f", {max(self.limits.per_day - used['day'], 0)} today"
            if self.limits.per_minute and waiting:
                line += f", ETA {waiting * 60 / self.limits.per_minute:.0f}s"
        sys.stderr.write(f"\r\x1b[K{self.prog}: {line}")
        sys.stderr.flush()

    def clear_progress(self) -> None:
        if self.show_progress:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()

    def print_summary(self) -> None:
        parts = [f"{self.counts[v]} {v}" for v in reversed(LEVELS) if self.counts[v]]
        if self.counts["skipped"]:
            parts.append(f"{self.counts['skipped']} skipped (private, allowlisted or unsupported)")
        total = sum(self.counts[k] for k in LEVELS) + self.counts["skipped"] + sum(self.errors.values())
        line = f"{total} IOCs: " + (", ".join(parts) or "none enriched")
        if self.counts["cache hits"]:
            line += f"; {self.counts['cache hits']} from the cache"
        if self.errors:
            line += "; errors: " + ", ".join(f"{code} {n}" for code, n in self.errors.most_common())
        self.error(line)


def kb_allowlist() -> list[str]:
    """The allowlist kept with vex-kb allow (empty when there is no knowledge base)."""
    path = kb.default_path()
    if not path.exists():
        return []
    return kb.KnowledgeBase(path, create=False).allowlist()


def _answered(future: Future | Outcome) -> bool:
    """Done with an outcome (not with an exception, such as the cancellation a stop causes)."""
    return future.done() and (isinstance(future, Outcome) or future.exception() is None)
