"""The knowledge base: tags, notes, watchlists, the allowlist and verdict history.

One sqlite3 file, ``$XDG_DATA_HOME/vexpipe/kb.sqlite3`` (``~/.local/share``;
``VEXPIPE_KB`` overrides it), WAL mode like the cache. IOCs are stored
refanged and canonical (``evil[.]com`` and ``EVIL.com`` are one entry), keyed
by (type, ioc). Allowlist entries may also be CIDR networks. Verdict history
is kept here, not in the cache, because the cache forgets (TTL).
"""

from __future__ import annotations

import ipaddress
import os
import sqlite3
import time
from pathlib import Path
from typing import Iterator

from vexpipe import grammar, records

SCHEMA = """
CREATE TABLE IF NOT EXISTS tags (type TEXT NOT NULL, ioc TEXT NOT NULL, tag TEXT NOT NULL,
    PRIMARY KEY (type, ioc, tag)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, type TEXT NOT NULL, ioc TEXT NOT NULL,
    text TEXT NOT NULL, created TEXT NOT NULL, UNIQUE (type, ioc, text, created));
CREATE TABLE IF NOT EXISTS watchlists (name TEXT NOT NULL, type TEXT NOT NULL, ioc TEXT NOT NULL,
    added TEXT NOT NULL, PRIMARY KEY (name, type, ioc)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS allow (type TEXT NOT NULL, ioc TEXT NOT NULL, added TEXT NOT NULL,
    PRIMARY KEY (type, ioc)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS verdicts (type TEXT NOT NULL, ioc TEXT NOT NULL, verdict TEXT NOT NULL,
    checked TEXT NOT NULL, PRIMARY KEY (type, ioc, checked)) WITHOUT ROWID;
"""


class NotAnIOC(ValueError):
    """A value given on the command line is not an IOC (usage error)."""


def default_path() -> Path:
    if os.environ.get("VEXPIPE_KB"):
        return Path(os.environ["VEXPIPE_KB"])
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "vexpipe" / "kb.sqlite3"


def now(precise: bool = False) -> str:
    """UTC now, ISO 8601; ``precise`` adds milliseconds (verdict checks may come
    several a second, and each is a row of history)."""
    t = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
    return f"{stamp}.{int(t * 1000) % 1000:03d}Z" if precise else stamp + "Z"


def key_of(value: str, allow_network: bool = False) -> tuple[str, str]:
    """(type, canonical ioc) for a value as a user typed it, defanged or not."""
    found = grammar.classify(value)
    if found:
        return found
    if allow_network:
        try:
            return "network", str(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            pass
    raise NotAnIOC(f"{value!r} is not an IOC" + (" or a network" if allow_network else ""))


class KnowledgeBase:
    def __init__(self, path: Path | None = None, create: bool = True):
        self.path = Path(path or default_path())
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path if create or self.path.exists() else ":memory:",
                                    timeout=30, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.executescript(SCHEMA)

    # --- edits -----------------------------------------------------------------

    def tag(self, key: tuple[str, str], add=(), remove=()) -> None:
        self.conn.executemany("INSERT OR IGNORE INTO tags VALUES (?, ?, ?)", [(*key, t) for t in add])
        self.conn.executemany("DELETE FROM tags WHERE type = ? AND ioc = ? AND tag = ?", [(*key, t) for t in remove])

    def note(self, key: tuple[str, str], text: str) -> int:
        return self.conn.execute("INSERT INTO notes (type, ioc, text, created) VALUES (?, ?, ?, ?)",
                                 (*key, text, now())).lastrowid

    def delete_note(self, note_id: int) -> bool:
        return self.conn.execute("DELETE FROM notes WHERE id = ?", (note_id,)).rowcount > 0

    def watch(self, name: str, key: tuple[str, str], on: bool = True) -> None:
        if on:
            self.conn.execute("INSERT OR IGNORE INTO watchlists VALUES (?, ?, ?, ?)", (name, *key, now()))
        else:
            self.conn.execute("DELETE FROM watchlists WHERE name = ? AND type = ? AND ioc = ?", (name, *key))

    def allow(self, key: tuple[str, str], on: bool = True) -> None:
        if on:
            self.conn.execute("INSERT OR IGNORE INTO allow VALUES (?, ?, ?)", (*key, now()))
        else:
            self.conn.execute("DELETE FROM allow WHERE type = ? AND ioc = ?", key)

    def record_verdict(self, key: tuple[str, str], verdict: str, checked: str | None = None) -> str | None:
        """Store a verdict; return the previous one (None the first time)."""
        row = self.conn.execute("SELECT verdict FROM verdicts WHERE type = ? AND ioc = ? ORDER BY checked DESC "
                                "LIMIT 1", key).fetchone()
        self.conn.execute("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?)", (*key, verdict, checked or now(precise=True)))
        return row[0] if row else None

    # --- reads -----------------------------------------------------------------

    def about(self, key: tuple[str, str]) -> dict:
        """Everything known about one IOC: tags, notes, watchlists, allowlisted."""
        c = self.conn
        tags = [t for (t,) in c.execute("SELECT tag FROM tags WHERE type = ? AND ioc = ? ORDER BY tag", key)]
        notes = [{"id": i, "text": t, "created": d} for i, t, d in c.execute(
            "SELECT id, text, created FROM notes WHERE type = ? AND ioc = ? ORDER BY id", key)]
        lists = [n for (n,) in c.execute("SELECT name FROM watchlists WHERE type = ? AND ioc = ? ORDER BY name", key)]
        allowed = c.execute("SELECT 1 FROM allow WHERE type = ? AND ioc = ?", key).fetchone() is not None
        return {"tags": tags, "notes": notes, "watchlists": lists, "allowlisted": allowed}

    def history(self, key: tuple[str, str]) -> list[dict]:
        return [{"verdict": v, "checked": d} for v, d in self.conn.execute(
            "SELECT verdict, checked FROM verdicts WHERE type = ? AND ioc = ? ORDER BY checked", key)]

    def watchlist(self, name: str) -> list[dict]:
        return [{"ioc": i, "type": t, "added": a} for t, i, a in self.conn.execute(
            "SELECT type, ioc, added FROM watchlists WHERE name = ? ORDER BY type, ioc", (name,))]

    def allowlist(self) -> list[str]:
        return [i for (i,) in self.conn.execute("SELECT ioc FROM allow ORDER BY ioc")]

    def export(self) -> Iterator[dict]:
        c = self.conn
        for t, i, tag in c.execute("SELECT type, ioc, tag FROM tags ORDER BY 1, 2, 3"):
            yield {"kind": "tag", "type": t, "ioc": i, "tag": tag}
        for t, i, text, created in c.execute("SELECT type, ioc, text, created FROM notes ORDER BY id"):
            yield {"kind": "note", "type": t, "ioc": i, "text": text, "created": created}
        for n, t, i, a in c.execute("SELECT name, type, ioc, added FROM watchlists ORDER BY 1, 2, 3"):
            yield {"kind": "watchlist", "name": n, "type": t, "ioc": i, "added": a}
        for t, i, a in c.execute("SELECT type, ioc, added FROM allow ORDER BY 1, 2"):
            yield {"kind": "allow", "type": t, "ioc": i, "added": a}
        for t, i, v, d in c.execute("SELECT type, ioc, verdict, checked FROM verdicts ORDER BY 1, 2, 4"):
            yield {"kind": "verdict", "type": t, "ioc": i, "verdict": v, "checked": d}

    def import_entry(self, e: dict) -> bool:
        """Add one exported entry; True if it was new (importing twice changes nothing)."""
        kind, key = e.get("kind"), (e.get("type"), e.get("ioc"))
        if not all(isinstance(v, str) for v in key):
            return False
        sql = {"tag": ("INSERT OR IGNORE INTO tags VALUES (?, ?, ?)", (*key, e.get("tag"))),
               "note": ("INSERT OR IGNORE INTO notes (type, ioc, text, created) VALUES (?, ?, ?, ?)",
                        (*key, e.get("text"), e.get("created"))),
               "watchlist": ("INSERT OR IGNORE INTO watchlists VALUES (?, ?, ?, ?)",
                             (e.get("name"), *key, e.get("added"))),
               "allow": ("INSERT OR IGNORE INTO allow VALUES (?, ?, ?)", (*key, e.get("added"))),
               "verdict": ("INSERT OR IGNORE INTO verdicts VALUES (?, ?, ?, ?)",
                           (*key, e.get("verdict"), e.get("checked")))}.get(kind)
        if sql is None or any(v is None for v in sql[1]):
            return False
        return self.conn.execute(*sql).rowcount > 0


def severity(verdict: str | None) -> int:
    return records.SEVERITY.get(verdict or "", -1)
