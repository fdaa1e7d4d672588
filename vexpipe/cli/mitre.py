"""vex-mitre: add MITRE ATT&CK techniques to enriched IOC records."""

from __future__ import annotations

import argparse
import os
from typing import Any

import orjson

from vexpipe import mitre, records, vtmodel
from vexpipe.cli import add_attack_table_argument, load_attack_table
from vexpipe.runtime import ArgumentParser, Exit, Filter, StageError

EPILOG = """\
examples:
  vex-detect auth.log | vex-lookup --investigate | vex-mitre | jq -c '{ioc, mitre: [.mitre[].id]}'
  vex-mitre --layer layer.json < enriched.ndjson > mapped.ndjson
  vex-mitre --attack-table attack-v20.json < enriched.ndjson

record: adds mitre (list of {id, name, tactics, source, evidence, confidence, url,
  reported_as if the reported ID was revoked, deprecated if it is}) and
  mitre_version (the ATT&CK version used) to every IOC record that has vt;
  records without vt pass through untouched.
sources: vt-sandbox, vt-sandbox-tree (VirusTotal's own ATT&CK data), tag,
  sandbox-tag, yara, sigma, threat-category (whole-token keyword map), behaviour
  (patterns over command lines, processes, registry keys, files)

MITRE ATT&CK® data: © The MITRE Corporation, reproduced with its permission
(see the notice and licence in the table).
"""

LAYER_IOCS = 50  # IOCs named in a layer comment; the score counts them all


class Mitre(Filter):
    prog = "vex-mitre"
    stage = "mitre"
    summary = "map enriched IOC records to MITRE ATT&CK techniques"
    description = ("Add MITRE ATT&CK® techniques to IOC records enriched by vex-lookup (or events carrying "
                   "them): VirusTotal's sandbox ATT&CK data first, then tags, YARA/Sigma names, threat "
                   "categories and behaviour strings.")
    epilog = EPILOG

    @classmethod
    def add_arguments(cls, p: ArgumentParser) -> None:
        p.add_argument("--layer", metavar="FILE",
                       help="also write an ATT&CK Navigator layer (4.5) scoring each technique by its IOCs")
        add_attack_table_argument(p)

    def __init__(self, args: argparse.Namespace):
        super().__init__(args)
        self.table = load_attack_table(args.attack_table)
        self.memo: dict[tuple, Any] = {}
        self.layer: dict[str, list] = {}  # technique id -> [count, first IOCs]

    def run(self) -> None:
        version = self.table.version
        for _source, _line, value in self.json_values():
            for rec in records.ioc_records(value):
                vt = vtmodel.summary_of(rec)
                if vt is None or "skipped" in vt:
                    continue
                key = (rec.get("type"), rec.get("ioc"), vt.get("fetched_at"), vt.get("id"))
                if not all(isinstance(k, (str, int, float, type(None))) for k in key):
                    key = None  # a record of odd shape (another tool's): mapped, not memoised
                found = self.memo.get(key) if key else None
                if found is None:
                    techniques = mitre.map_techniques(vt, self.table)
                    # Serialised once per IOC and answer: repeats cost nothing.
                    found = (techniques, orjson.Fragment(orjson.dumps(techniques)))
                    if key:
                        if len(self.memo) >= 10_000:  # bounded: memory stays flat
                            del self.memo[next(iter(self.memo))]
                        self.memo[key] = found
                rec["mitre"] = found[1]
                rec["mitre_version"] = version
                if self.args.layer:
                    self.note(rec, found[0])
            self.emit(value)
        if self.args.layer:
            self.write_layer()

    def note(self, rec: dict, techniques: list[dict]) -> None:
        for t in techniques:
            entry = self.layer.setdefault(t["id"], [0, []])
            ioc = rec.get("ioc")
            if ioc in entry[1]:
                continue
            entry[0] += 1
            if len(entry[1]) < LAYER_IOCS:
                entry[1].append(ioc)

    def write_layer(self) -> None:
        """An ATT&CK Navigator layer: score = how many IOCs show the technique, IOCs in the comment."""
        techniques = []
        for tid in sorted(self.layer):
            count, iocs = self.layer[tid]
            more = f" and {count - len(iocs)} more" if count > len(iocs) else ""
            techniques.append({"techniqueID": tid, "score": count, "enabled": True, "showSubtechniques": True,
                               "comment": f"{count} IOC{'s' if count != 1 else ''}: {', '.join(iocs)}{more}"})
        top = max((t["score"] for t in techniques), default=1)
        layer = {
            "name": "vexpipe IOCs", "versions": {"attack": self.table.version.split(".")[0],
                                                 "navigator": "5.1.0", "layer": "4.5"},
            "domain": "enterprise-attack",
            "description": f"Techniques shown by the IOCs that passed through vex-mitre (ATT&CK v{self.table.version})",
            "sorting": 3, "hideDisabled": False, "techniques": techniques,
            "gradient": {"colors": ["#ffe766", "#ff6666"], "minValue": 0, "maxValue": top},
            "legendItems": [], "metadata": [{"name": "generated by", "value": "vexpipe vex-mitre"}],
            "showTacticRowBackground": False, "selectTechniquesAcrossTactics": True,
            "selectSubtechniquesWithParent": False,
        }
        tmp = f"{self.args.layer}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(orjson.dumps(layer, option=orjson.OPT_INDENT_2) + b"\n")
            os.replace(tmp, self.args.layer)
        except OSError as e:
            raise StageError(f"--layer {self.args.layer}: {e.strerror}", Exit.IOERR) from None
