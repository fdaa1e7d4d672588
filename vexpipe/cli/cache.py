"""vex-cache: look after the shared lookup cache."""

from __future__ import annotations

import orjson

from vexpipe import config as configuration
from vexpipe.runtime import ArgumentParser, Exit, Filter, StageError
from vexpipe.store import Store

EPILOG = """\
actions:
  stats    one JSON object: file, size, entries by provider/mode/type/verdict,
           expired entries, requests per API-key hash this minute, today, this month
  clear    remove every cached answer (rate-limit state is kept)
  prune    remove expired answers
  export   every cached answer as NDJSON (raw answers included) on stdout
  import   read exported NDJSON (FILEs or stdin); an entry replaces a cached one only
           when it was fetched later, so importing twice changes nothing

examples:
  vex-cache export > vt-cache.ndjson                  on the connected machine
  vex-cache import vt-cache.ndjson                    on the air-gapped one, then:
  vex-detect -f case.log | vex-lookup --offline
"""


class Cache(Filter):
    prog = "vex-cache"
    stage = "cache"
    summary = "inspect, prune, export and import the lookup cache"
    description = "Inspect, prune, export and import the cache that vex-lookup shares between processes."
    epilog = EPILOG

    @classmethod
    def add_arguments(cls, p: ArgumentParser) -> None:
        p.add_argument("action", choices=("stats", "clear", "prune", "export", "import"))
        p.add_argument("--cache", metavar="PATH",
                       help="cache file (default $VEXPIPE_CACHE, config, or $XDG_CACHE_HOME/vexpipe/cache.sqlite3)")

    def run(self) -> None:
        if self.args.action != "import" and (self.args.files or self.args.more_files):
            raise StageError(f"{self.args.action} takes no FILE", Exit.USAGE)
        try:
            cfg = configuration.load({"cache": self.args.cache}, self.warn)
        except configuration.ConfigError as e:
            raise StageError(f"configuration: {e}", Exit.CONFIG) from None
        store = Store(cfg.cache_path, self.warn)
        action = self.args.action
        if action == "stats":
            self.emit(store.stats())
        elif action == "clear":
            self.warn(f"removed {store.clear()} cached answers")
        elif action == "prune":
            self.warn(f"removed {store.prune()} expired answers")
        elif action == "export":
            for entry in store.export():
                self.emit(entry)
        else:
            self.warn(f"imported {self.import_entries(store)} answers")

    def import_entries(self, store: Store) -> int:
        fields = ("provider", "mode", "type", "ioc", "fetched_at", "expires_at", "found", "raw")
        imported = 0
        for source, line, entry in self.json_values(bare_values=False):
            if not isinstance(entry, dict) or any(k not in entry for k in fields):
                self.bad_line(source, line, str(entry)[:1000], "bad_entry",
                              "not a cache entry (vex-cache export writes them)")
                continue
            try:
                fetched = float(entry["fetched_at"])
                expires = float(entry["expires_at"])
            except (TypeError, ValueError):
                self.bad_line(source, line, str(entry)[:1000], "bad_entry", "fetched_at/expires_at are not times")
                continue
            if not store.newer_than_cached(entry["provider"], entry["mode"], entry["type"], entry["ioc"], fetched):
                continue
            # Summary version 0: vex-lookup re-derives the summary from the raw answer.
            store.put(entry["provider"], entry["mode"], entry["type"], entry["ioc"], fetched_at=fetched,
                      expires_at=expires, verdict=entry.get("verdict"), found=bool(entry["found"]),
                      summary_version=0, summary=b"{}", raw=orjson.dumps(entry["raw"]))
            imported += 1
        return imported
