"""The shared state file: lookup cache and rate-limit state in one sqlite3 database.

One file (default ``$XDG_CACHE_HOME/vexpipe/cache.sqlite3``) shared by every
vexpipe process on the machine, in WAL mode with a busy timeout, so parallel
pipelines read concurrently and serialise their short writes. Each thread gets
its own connection. A file that is not a database, or is damaged, is reported
once, moved aside (``*.corrupt-<time>``) and rebuilt: never fatal.

Tables:
- ``cache``: one row per (provider, mode, type, ioc): the raw provider answer
  (so a later version can re-derive fields), the summary made from it and the
  summary's version, verdict, fetch and expiry times.
- ``requests``: the send time of each request in the last minute, per key hash
  (the sliding window of :mod:`vexpipe.ratelimit`); ``counters``: requests per
  UTC day and month; ``penalty``: a shared back-off after a 429.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import orjson

SCHEMA = """
CREATE TABLE IF NOT EXISTS cache (
    provider TEXT NOT NULL, mode TEXT NOT NULL, type TEXT NOT NULL, ioc TEXT NOT NULL,
    fetched_at REAL NOT NULL, expires_at REAL NOT NULL, verdict TEXT, found INTEGER NOT NULL,
    summary_version INTEGER NOT NULL, summary BLOB NOT NULL, raw BLOB NOT NULL,
    PRIMARY KEY (provider, mode, type, ioc)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cache_expiry ON cache (expires_at);
CREATE TABLE IF NOT EXISTS requests (key TEXT NOT NULL, ts REAL NOT NULL);
CREATE INDEX IF NOT EXISTS requests_key_ts ON requests (key, ts);
CREATE TABLE IF NOT EXISTS counters (
    key TEXT NOT NULL, period TEXT NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (key, period));
CREATE TABLE IF NOT EXISTS penalty (key TEXT PRIMARY KEY, until REAL NOT NULL);
"""
BUSY_TIMEOUT_MS = 30_000


def default_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vexpipe" / "cache.sqlite3"


class Store:
    """The cache and rate-limit database. ``warn`` receives one-line diagnostics."""

    def __init__(self, path: Path, warn: Callable[[str], None] = lambda m: None):
        self.path = Path(path)
        self.warn = warn
        self._local = threading.local()
        self._lock = threading.Lock()
        # Threads of one process take turns for writes here: SQLite's own busy
        # handler sleeps with back-off (1 to 100 ms), which would cap lookups
        # at a few hundred per second. Other processes still meet the busy timeout.
        self._write_lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.connect()  # fail early (and heal) in the opening thread

    # --- connections -------------------------------------------------------

    def connect(self) -> sqlite3.Connection:
        """This thread's connection, opened (and the file healed) on first use."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        with self._lock:
            try:
                conn = self._open()
            except sqlite3.DatabaseError as e:
                self._move_aside(e)
                conn = self._open()
        self._local.conn = conn
        return conn

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.executescript(SCHEMA)
            conn.execute("SELECT 1 FROM cache LIMIT 1").fetchall()
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    def _move_aside(self, err: Exception) -> None:
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        self.warn(f"cache {self.path} is unreadable ({err}); moved to {aside.name}, starting a new one")
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(self.path) + suffix)
            if p.exists():
                p.replace(Path(str(aside) + suffix))

    def transaction(self) -> "_Immediate":
        """``with store.transaction() as conn:`` BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error)."""
        return _Immediate(self.connect(), self._write_lock)

    def write(self, fn: Callable, *args):
        """:meth:`guarded` for a function that writes, one thread of this process at a time."""
        with self._write_lock:
            return self.guarded(fn, *args)

    def guarded(self, fn: Callable, *args):
        """Run ``fn(conn, *args)``; if the file turns out damaged mid-run, heal once and retry."""
        try:
            return fn(self.connect(), *args)
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError) and "locked" in str(e):
                raise
            with self._lock:
                conn = getattr(self._local, "conn", None)
                if conn is not None:
                    conn.close()
                    self._local.conn = None
                self._move_aside(e)
            return fn(self.connect(), *args)

    # --- cache -------------------------------------------------------------

    def get(self, provider: str, mode: str, ioc_type: str, ioc: str) -> dict | None:
        """The cached entry (fresh or not) or None."""
        row = self.guarded(lambda c: c.execute(
            "SELECT fetched_at, expires_at, verdict, found, summary_version, summary, raw FROM cache "
            "WHERE provider = ? AND mode = ? AND type = ? AND ioc = ?",
            (provider, mode, ioc_type, ioc)).fetchone())
        if row is None:
            return None
        fetched, expires, verdict, found, version, summary, raw = row
        return {"fetched_at": fetched, "expires_at": expires, "verdict": verdict, "found": bool(found),
                "summary_version": version, "summary": summary, "raw": raw}

    def put(self, provider: str, mode: str, ioc_type: str, ioc: str, *, fetched_at: float, expires_at: float,
            verdict: str | None, found: bool, summary_version: int, summary: bytes, raw: bytes) -> None:
        self.write(lambda c: c.execute(
            "INSERT OR REPLACE INTO cache VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (provider, mode, ioc_type, ioc, fetched_at, expires_at, verdict, int(found), summary_version,
             summary, raw)))

    def stats(self) -> dict:
        conn = self.connect()
        now = time.time()
        total, expired = conn.execute(
            "SELECT count(*), coalesce(sum(expires_at <= ?), 0) FROM cache", (now,)).fetchone()
        by = [dict(zip(("provider", "mode", "type", "verdict", "entries"), row)) for row in conn.execute(
            "SELECT provider, mode, type, coalesce(verdict, 'NOT_FOUND'), count(*) FROM cache "
            "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4")]
        keys = [dict(zip(("key", "last_minute"), row)) for row in conn.execute(
            "SELECT key, count(*) FROM requests WHERE ts > ? GROUP BY key", (now - 60,))]
        periods = {(k, p): n for k, p, n in conn.execute("SELECT key, period, count FROM counters")}
        today, month = utc_periods(now)
        for k in keys:
            k["today"] = periods.get((k["key"], today), 0)
            k["this_month"] = periods.get((k["key"], month), 0)
        size = sum(Path(str(self.path) + s).stat().st_size for s in ("", "-wal") if Path(str(self.path) + s).exists())
        return {"path": str(self.path), "bytes": size, "entries": total, "expired": expired,
                "by": by, "keys": keys}

    def clear(self) -> int:
        with self.transaction() as conn:
            n = conn.execute("DELETE FROM cache").rowcount
        self.connect().execute("VACUUM")
        return n

    def prune(self, now: float | None = None) -> int:
        with self.transaction() as conn:
            return conn.execute("DELETE FROM cache WHERE expires_at <= ?", (now or time.time(),)).rowcount

    def export(self) -> Iterator[dict]:
        """Every cache entry as a JSON-ready dict (raw answer included; summary re-derivable)."""
        conn = self.connect()
        for row in conn.execute("SELECT provider, mode, type, ioc, fetched_at, expires_at, verdict, found, raw "
                                "FROM cache ORDER BY provider, mode, type, ioc"):
            provider, mode, ioc_type, ioc, fetched, expires, verdict, found, raw = row
            yield {"provider": provider, "mode": mode, "type": ioc_type, "ioc": ioc, "fetched_at": fetched,
                   "expires_at": expires, "verdict": verdict, "found": bool(found), "raw": orjson.loads(raw)}

    def newer_than_cached(self, provider: str, mode: str, ioc_type: str, ioc: str, fetched_at: float) -> bool:
        row = self.connect().execute(
            "SELECT fetched_at FROM cache WHERE provider = ? AND mode = ? AND type = ? AND ioc = ?",
            (provider, mode, ioc_type, ioc)).fetchone()
        return row is None or row[0] < fetched_at


class _Immediate:
    def __init__(self, conn: sqlite3.Connection, lock: threading.Lock):
        self.conn = conn
        self.lock = lock

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.lock.release()


def utc_periods(now: float) -> tuple[str, str]:
    """The quota periods ``now`` falls in: ``d:YYYY-MM-DD`` and ``m:YYYY-MM`` (UTC, as VirusTotal counts)."""
    t = time.gmtime(now)
    return f"d:{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}", f"m:{t.tm_year:04d}-{t.tm_mon:02d}"
