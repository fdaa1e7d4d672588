"""vex-stix: enriched records in, STIX 2.1 out."""

from __future__ import annotations

import argparse
import hashlib
import time
from typing import Any

import orjson

from vexpipe import records, stix
from vexpipe.cli import add_attack_table_argument, load_attack_table
from vexpipe.runtime import ArgumentParser, Filter

EPILOG = """\
examples:
  vex-detect case.log | vex-lookup | vex-mitre | vex-stix --report "Case 42" --tlp amber > bundle.json
  vex-stix --ndjson < enriched.ndjson          one STIX object a line
  vex-stix --taxii < enriched.ndjson           a TAXII 2.1 envelope {"objects": [...]}

per IOC: the observable (file with every known hash, ipv4-addr, ipv6-addr,
domain-name, url, email-addr), an observed-data object referring to it, an
indicator (STIX pattern, indicator_types from the verdict, confidence from the
detection ratio, a VirusTotal external reference) based-on that observed-data; a malware object for VirusTotal's popular threat label; an
attack-pattern for each mitre technique, linked by indicates. One producer
identity is the created_by_ref of every object that takes one.

Deterministic: observables have the spec's UUIDv5 ids, other ids come from their
content and times from the data (the lookup's fetched_at), unless --now, so the
same input gives byte-identical output. Memory holds only the ids written.
"""


class Stix(Filter):
    prog = "vex-stix"
    stage = "stix"
    summary = "export enriched IOC records as STIX 2.1"
    description = ("Write STIX 2.1 for enriched IOC records: one bundle (default), objects as NDJSON, or a "
                   "TAXII 2.1 envelope, streamed object by object.")
    epilog = EPILOG

    @classmethod
    def add_arguments(cls, p: ArgumentParser) -> None:
        form = p.add_mutually_exclusive_group()
        form.add_argument("--ndjson", action="store_true", help="one STIX object a line instead of a bundle")
        form.add_argument("--taxii", action="store_true", help='a TAXII 2.1 envelope {"objects": [...], "more": false}')
        p.add_argument("--report", metavar="NAME", help="wrap everything in a report called NAME")
        p.add_argument("--tlp", choices=sorted(stix.TLP), help="mark every object with this TLP 2.0 level")
        p.add_argument("--now", action="store_true",
                       help="use the current time for created/modified/valid_from (output no longer reproducible)")
        add_attack_table_argument(p)

    def __init__(self, args: argparse.Namespace):
        super().__init__(args)
        self.table = load_attack_table(args.attack_table)
        self.written: set[str] = set()
        self.order = hashlib.sha256()
        self.count = 0
        self.latest = stix.EPOCH
        self.skipped = 0
        self.marking = [stix.TLP[args.tlp]] if args.tlp else None
        self.now = (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000Z") if args.now else None

    def run(self) -> None:
        if not self.args.ndjson:
            self.emit_raw(b'{"type":"bundle","objects":[' if not self.args.taxii
                          else b'{"objects":[')
        creator = stix.identity()
        if self.args.tlp:
            self.write(stix.tlp_marking(self.args.tlp), mark=False)
        self.write(creator)
        for _source, _line, value in self.json_values():
            found = False
            for rec in records.ioc_records(value):
                for obj in stix.objects_for(rec, self.table, creator["id"], self.now):
                    found = True
                    self.write(obj)
            if not found:
                self.skipped += 1
        if self.args.report and self.written:
            self.write_report(creator["id"])
        if not self.args.ndjson:
            tail = b'],"more":false}' if self.args.taxii else (
                b'],"id":"' + stix.content_id("bundle", self.order.hexdigest()).encode() + b'"}')
            self.emit_raw(tail)
        if self.skipped:
            self.warn(f"{self.skipped} input record(s) without a valid IOC were left out")

    def write(self, obj: dict, mark: bool = True) -> None:
        if obj["id"] in self.written:
            return
        self.written.add(obj["id"])
        self.order.update(obj["id"].encode())
        if mark and self.marking:
            obj["object_marking_refs"] = self.marking
        if obj.get("created", "") > self.latest and obj["type"] not in ("identity", "attack-pattern"):
            self.latest = obj["created"]
        line = orjson.dumps(obj)
        if not self.args.ndjson and self.count:
            line = b"," + line
        self.count += 1
        self.emit_raw(line)

    def write_report(self, creator: str) -> None:
        refs = sorted(i for i in self.written if not i.startswith("marking-definition--"))
        when = self.now or self.latest
        report: dict[str, Any] = {
            "type": "report", "spec_version": "2.1",
            "id": stix.content_id("report", self.args.report, self.order.hexdigest()),
            "created_by_ref": creator, "created": when, "modified": when, "name": self.args.report,
            "description": f"IOCs exported by vexpipe ({len(refs)} objects)",
            "report_types": ["threat-report"], "published": when, "object_refs": refs,
        }
        self.write(report)
