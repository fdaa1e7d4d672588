"""The shared rate limiter: VirusTotal's quotas, kept across every process on the machine.

VirusTotal allows "at most N requests in any 60 s window" (and so many per UTC
day and month). A token bucket that refills one token every 15 s after a burst
of 4 would break that, so this is a sliding log instead: the send time of every
request of the last minute is stored in the shared sqlite file, and a request
goes only when fewer than N were sent in the window. Each decision is one
BEGIN IMMEDIATE transaction, so parallel vex-lookup processes on one key stay
within the limit together. The window is widened by a second of slack because
requests reach the server a little after they are counted here.

Keys are stored by a hash of the API key, never the key itself.
"""

from __future__ import annotations

import calendar
import hashlib
import threading
import time
from dataclasses import dataclass

from vexpipe.store import Store, utc_periods

WINDOW = 60.0
SLACK = 1.0


class QuotaExhausted(Exception):
    """The daily or monthly quota is used up; ``resets_at`` is when it comes back (epoch)."""

    def __init__(self, period: str, resets_at: float):
        super().__init__(f"{period}ly quota used up; it resets at "
                         f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(resets_at))}")
        self.period = period
        self.resets_at = resets_at


class Cancelled(Exception):
    """The run is stopping (Ctrl-C, closed pipe): do not start another request."""


@dataclass(frozen=True)
class Limits:
    per_minute: int | None = None
    per_day: int | None = None
    per_month: int | None = None


FREE = Limits(per_minute=4, per_day=500, per_month=15_500)


def key_hash(api_key: str) -> str:
    return hashlib.sha256(b"vexpipe-ratelimit:" + api_key.encode()).hexdigest()[:16]


def _next_reset(period: str, now: float) -> float:
    t = time.gmtime(now)
    if period == "day":
        return calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0)) + 86400
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return calendar.timegm((year, month, 1, 0, 0, 0))


class RateLimiter:
    def __init__(self, store: Store, key: str, limits: Limits):
        self.store = store
        self.key = key
        self.limits = limits

    def try_acquire(self, now: float | None = None) -> float:
        """Record one request and return 0, or return how long to wait first.

        Raises :class:`QuotaExhausted` when the day's or month's quota is gone.
        """
        return self.store.write(self._try_acquire, now)

    def _try_acquire(self, conn, now: float | None) -> float:
        key, limits = self.key, self.limits
        conn.execute("BEGIN IMMEDIATE")
        try:
            now = time.time() if now is None else now
            window = WINDOW + SLACK
            if limits.per_minute:  # the sliding log is kept only where a per-minute limit needs it
                conn.execute("DELETE FROM requests WHERE key = ? AND ts <= ?", (key, now - window))
            row = conn.execute("SELECT until FROM penalty WHERE key = ?", (key,)).fetchone()
            if row and row[0] > now:
                conn.execute("COMMIT")
                return row[0] - now
            if limits.per_minute:
                sent = [ts for (ts,) in conn.execute(
                    "SELECT ts FROM requests WHERE key = ? ORDER BY ts", (key,))]
                if len(sent) >= limits.per_minute:
                    conn.execute("COMMIT")
                    return max(sent[len(sent) - limits.per_minute] + window - now, 0.001)
            day, month = utc_periods(now)
            for period, limit, name in ((day, limits.per_day, "day"), (month, limits.per_month, "month")):
                if limit:
                    row = conn.execute("SELECT count FROM counters WHERE key = ? AND period = ?",
                                       (key, period)).fetchone()
                    if row and row[0] >= limit:
                        conn.execute("COMMIT")
                        raise QuotaExhausted(name, _next_reset(name, now))
            if limits.per_minute:
                conn.execute("INSERT INTO requests (key, ts) VALUES (?, ?)", (key, now))
            for period in (day, month):
                conn.execute("INSERT INTO counters (key, period, count) VALUES (?, ?, 1) "
                             "ON CONFLICT (key, period) DO UPDATE SET count = count + 1", (key, period))
            conn.execute("COMMIT")
            return 0.0
        except QuotaExhausted:
            raise
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def acquire(self, stop: threading.Event, wait_quota: bool = False) -> None:
        """Block until a request may be sent (and count it). Interruptible through ``stop``."""
        while True:
            if stop.is_set():
                raise Cancelled()
            try:
                wait = self.try_acquire()
            except QuotaExhausted as e:
                if not wait_quota:
                    raise
                wait = e.resets_at - time.time() + 1
            if wait <= 0:
                return
            if stop.wait(min(wait, 1.0)):
                raise Cancelled()

    def penalize(self, seconds: float) -> None:
        """After a 429: every process on this key holds off for ``seconds``."""
        until = time.time() + seconds

        def write(conn):
            conn.execute("INSERT INTO penalty (key, until) VALUES (?, ?) ON CONFLICT (key) "
                         "DO UPDATE SET until = max(until, excluded.until)", (self.key, until))
        self.store.write(write)

    def usage(self, now: float | None = None) -> dict:
        """Requests sent in the current minute window, today and this month (for progress)."""
        now = time.time() if now is None else now
        day, month = utc_periods(now)

        def read(conn):
            minute = conn.execute("SELECT count(*) FROM requests WHERE key = ? AND ts > ?",
                                  (self.key, now - WINDOW - SLACK)).fetchone()[0]
            counts = dict(conn.execute("SELECT period, count FROM counters WHERE key = ? AND period IN (?, ?)",
                                       (self.key, day, month)).fetchall())
            return {"minute": minute, "day": counts.get(day, 0), "month": counts.get(month, 0)}
        return self.store.guarded(read)
