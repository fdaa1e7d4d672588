"""MITRE ATT&CK® Enterprise: the technique table vex-mitre and vex-stix use.

The table ships as package data (``vexpipe/data/attack-enterprise.json``, ATT&CK
v19.2, with MITRE's copyright notice and licence kept in it) and can be
replaced at run time with ``--attack-table PATH`` (same format, made by
``make attack-table`` from MITRE's official STIX bundle; see
:mod:`vexpipe.attack_table`).

VirusTotal still reports revoked and deprecated IDs, so they stay in the
table: a revoked ID is followed along its ``revoked_by`` chain to the current
technique (the original is kept as ``reported_as``); a deprecated one is kept
and marked.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

URL = "https://attack.mitre.org"


class TableError(ValueError):
    """An ATT&CK table that cannot be used (configuration error, exit 78)."""


@dataclass(frozen=True)
class Technique:
    id: str
    name: str
    tactics: tuple[str, ...]  # tactic shortnames, e.g. ("persistence", "privilege-escalation")
    status: str  # active, revoked, deprecated
    reported_as: str | None = None  # the revoked ID this was reached from

    @property
    def url(self) -> str:
        return f"{URL}/techniques/{self.id.replace('.', '/')}/"


class AttackTable:
    def __init__(self, data: dict):
        try:
            self.version: str = str(data["attack_version"])
            self.notice: str = data.get("notice", "")
            self.license: str = data.get("license", "")
            self.tactics: list[dict] = list(data["tactics"])
            self.techniques: dict[str, dict] = dict(data["techniques"])
        except (KeyError, TypeError) as e:
            raise TableError(f"not an ATT&CK table: missing {e}") from None
        self.tactic_by_short = {t["shortname"]: t for t in self.tactics}

    def lookup(self, technique_id: str) -> Technique | None:
        """The technique for an ID as reported (case-insensitive), following revocations."""
        tid = technique_id.strip().upper()
        entry = self.techniques.get(tid)
        if entry is None:
            return None
        reported = None
        seen = {tid}
        while entry.get("status") == "revoked" and entry.get("revoked_by") in self.techniques:
            reported = reported or tid
            tid = entry["revoked_by"]
            if tid in seen:  # a cycle would be a broken table; stop where we are
                break
            seen.add(tid)
            entry = self.techniques[tid]
        return Technique(tid, entry.get("name", tid), tuple(entry.get("tactics", ())),
                         entry.get("status", "active"), reported)

    def tactic(self, shortname: str) -> dict | None:
        return self.tactic_by_short.get(shortname)


def load(path: str | Path | None = None) -> AttackTable:
    """The bundled table, or the one at ``path``."""
    if path is None:
        return _bundled()
    try:
        return AttackTable(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError) as e:
        raise TableError(f"{path}: {e}") from None


@functools.cache
def _bundled() -> AttackTable:
    text = resources.files("vexpipe.data").joinpath("attack-enterprise.json").read_text(encoding="utf-8")
    return AttackTable(json.loads(text))
