"""vex-kb: the knowledge base (tags, notes, watchlists, allowlist, verdict history)."""

from __future__ import annotations

import argparse

from vexpipe import kb, records
from vexpipe.runtime import ArgumentParser, Exit, Filter, StageError, add_file_arguments

EPILOG = """\
examples:
  vex-kb tag evil[.]com --add c2 --add case-42        stored refanged: evil.com
  vex-kb note 45.83.193.150 --add "scanner seen in the DMZ"
  vex-kb watchlist prio --add evil.com --add 45.83.193.150
  vex-kb allow corp.example.com        never sent to a provider (vex-lookup reads it)
  vex-kb show evil.com
  vex-detect case.log | vex-lookup | vex-kb annotate | vex-fmt
  vex-kb watchlist prio --emit | vex-lookup --refresh | vex-kb changed     (cron: exit 1 if worse)

database: $XDG_DATA_HOME/vexpipe/kb.sqlite3 (VEXPIPE_KB overrides)
"""


class KB(Filter):
    prog = "vex-kb"
    stage = "kb"
    summary = "tags, notes, watchlists, allowlist and verdict history for IOCs"
    description = ("A local knowledge base of IOCs: tags, notes, watchlists, the allowlist vex-lookup "
                   "honours, and the verdict history behind 'changed'. IOCs are stored refanged and "
                   "canonical.")
    epilog = EPILOG
    takes_files = False

    @classmethod
    def add_arguments(cls, p: ArgumentParser) -> None:
        sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=ArgumentParser)
        c = sub.add_parser("tag", help="add or remove tags of an IOC, then show them")
        c.add_argument("ioc")
        c.add_argument("--add", action="append", default=[], metavar="TAG")
        c.add_argument("--remove", action="append", default=[], metavar="TAG")
        c = sub.add_parser("note", help="add or delete notes of an IOC, then show them")
        c.add_argument("ioc")
        c.add_argument("--add", metavar="TEXT")
        c.add_argument("--delete", type=int, metavar="ID")
        c = sub.add_parser("watchlist", help="edit, list or emit a watchlist")
        c.add_argument("name")
        c.add_argument("--add", action="append", default=[], metavar="IOC")
        c.add_argument("--remove", action="append", default=[], metavar="IOC")
        c.add_argument("--list", action="store_true", help="one line per entry (the default)")
        c.add_argument("--emit", action="store_true", help="write the list as IOC records (for vex-lookup)")
        c = sub.add_parser("allow", help="add an IOC or network to the allowlist (or --remove it)")
        c.add_argument("ioc")
        c.add_argument("--remove", action="store_true")
        c = sub.add_parser("show", help="everything known about an IOC")
        c.add_argument("ioc")
        for name, text in (("annotate", "add kb to every IOC record the base knows"),
                           ("export", "every entry as NDJSON"),
                           ("import", "read exported NDJSON (idempotent)"),
                           ("changed", "record verdicts; write the IOCs whose verdict changed, exit 1 if any got worse")):
            c = sub.add_parser(name, help=text)
            if name != "export":
                add_file_arguments(c)
        p.add_argument("--kb", metavar="PATH", help="database file (default $XDG_DATA_HOME/vexpipe/kb.sqlite3)")

    def __init__(self, args: argparse.Namespace):
        super().__init__(args)
        self.kb = kb.KnowledgeBase(args.kb)
        self.worse = False

    def key(self, value: str, allow_network: bool = False) -> tuple[str, str]:
        try:
            return kb.key_of(value, allow_network)
        except kb.NotAnIOC as e:
            raise StageError(str(e), Exit.USAGE) from None

    def run(self) -> None:
        getattr(self, "do_" + self.args.command)()

    def do_tag(self) -> None:
        key = self.key(self.args.ioc)
        self.kb.tag(key, self.args.add, self.args.remove)
        self.emit({"ioc": key[1], "type": key[0], "tags": self.kb.about(key)["tags"]})

    def do_note(self) -> None:
        key = self.key(self.args.ioc)
        if self.args.add:
            self.kb.note(key, self.args.add)
        if self.args.delete is not None and not self.kb.delete_note(self.args.delete):
            raise StageError(f"no note {self.args.delete}", Exit.DATA)
        self.emit({"ioc": key[1], "type": key[0], "notes": self.kb.about(key)["notes"]})

    def do_watchlist(self) -> None:
        name = self.args.name
        for value in self.args.add:
            self.kb.watch(name, self.key(value))
        for value in self.args.remove:
            self.kb.watch(name, self.key(value), on=False)
        for entry in self.kb.watchlist(name):
            if self.args.emit:
                self.emit({"ioc": entry["ioc"], "type": entry["type"]})
            elif self.args.list or not (self.args.add or self.args.remove):
                self.emit({"watchlist": name, **entry})

    def do_allow(self) -> None:
        key = self.key(self.args.ioc, allow_network=True)
        self.kb.allow(key, on=not self.args.remove)
        self.emit({"ioc": key[1], "type": key[0], "allowlisted": not self.args.remove})

    def do_show(self) -> None:
        key = self.key(self.args.ioc)
        self.emit({"ioc": key[1], "type": key[0], **self.kb.about(key), "verdicts": self.kb.history(key)})

    def do_annotate(self) -> None:
        for _source, _line, value in self.json_values():
            for rec in records.ioc_records(value):
                found = records.canonical(rec)
                if found:
                    about = self.kb.about(found)
                    if about["tags"] or about["notes"] or about["watchlists"] or about["allowlisted"]:
                        rec["kb"] = about
            self.emit(value)

    def do_export(self) -> None:
        for entry in self.kb.export():
            self.emit(entry)

    def do_import(self) -> None:
        added = 0
        for source, line, value in self.json_values(bare_values=False):
            if isinstance(value, dict) and self.kb.import_entry(value):
                added += 1
            elif not isinstance(value, dict) or value.get("kind") not in ("tag", "note", "watchlist", "allow", "verdict"):
                self.bad_line(source, line, str(value)[:1000], "bad_entry", "not a vex-kb export entry")
        self.warn(f"imported {added} new entries")

    def do_changed(self) -> None:
        for _source, _line, value in self.json_values():
            changed = []
            for rec in records.ioc_records(value):
                found = records.canonical(rec)
                verdict = records.verdict(rec)
                if not found or verdict is None:
                    continue
                before = self.kb.record_verdict(found, verdict)
                if before is not None and before != verdict:
                    worse = kb.severity(verdict) > kb.severity(before)
                    rec["kb_change"] = {"from": before, "to": verdict, "worse": worse}
                    self.worse = self.worse or worse
                    changed.append(rec)
            if changed:
                self.emit(value)

    def exit_code(self) -> int:
        code = super().exit_code()
        return code or (Exit.SUSPICIOUS if self.worse else Exit.OK)
