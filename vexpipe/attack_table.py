"""Build vexpipe's ATT&CK table from MITRE's official STIX 2.1 bundle (enterprise-attack.json).

    python -m vexpipe.attack_table enterprise-attack.json > vexpipe/data/attack-enterprise.json
    make attack-table BUNDLE=enterprise-attack.json

The result has the bundled table's format: ``tactics`` (id, shortname, name, in
the matrix's order) and ``techniques`` keyed by ID (name, tactics, sub,
status, revoked_by), with MITRE's notice and licence. Revocations come from
the bundle's ``revoked-by`` relationships.
"""

from __future__ import annotations

import json
import sys

NOTICE = ("© {year} The MITRE Corporation. This work is reproduced and distributed with the permission "
          "of The MITRE Corporation.")
LICENSE = ("The MITRE Corporation (MITRE) hereby grants you a non-exclusive, royalty-free license to use "
           "ATT&CK® for research, development, and commercial purposes. Any copy you make for such purposes "
           "is authorized provided that you reproduce MITRE's copyright designation and this license in any "
           "such copy.")


def _external_id(obj: dict) -> str | None:
    for ref in obj.get("external_references") or []:
        if ref.get("source_name") == "mitre-attack" and ref.get("external_id"):
            return ref["external_id"]
    return None


def build(bundle: dict, source_name: str = "enterprise-attack.json") -> dict:
    """The table for one STIX bundle (pure)."""
    objects = bundle.get("objects") or []
    by_id = {o.get("id"): o for o in objects if isinstance(o, dict)}
    collection = next((o for o in objects if o.get("type") == "x-mitre-collection"), {})
    matrix = next((o for o in objects if o.get("type") == "x-mitre-matrix" and not o.get("revoked")), {})
    tactic_objs = [by_id[r] for r in matrix.get("tactic_refs", []) if r in by_id] or [
        o for o in objects if o.get("type") == "x-mitre-tactic"]
    tactics = [{"id": _external_id(t), "shortname": t.get("x_mitre_shortname"), "name": t.get("name")}
               for t in tactic_objs if not t.get("revoked") and not t.get("x_mitre_deprecated")]
    revoked_by = {}
    for o in objects:
        if o.get("type") == "relationship" and o.get("relationship_type") == "revoked-by":
            old, new = by_id.get(o.get("source_ref")), by_id.get(o.get("target_ref"))
            if old and new and _external_id(old) and _external_id(new):
                revoked_by[_external_id(old)] = _external_id(new)
    techniques = {}
    for o in objects:
        if o.get("type") != "attack-pattern":
            continue
        tid = _external_id(o)
        if not tid:
            continue
        status = "revoked" if o.get("revoked") else "deprecated" if o.get("x_mitre_deprecated") else "active"
        entry = {"name": o.get("name", tid),
                 "tactics": [p["phase_name"] for p in o.get("kill_chain_phases") or []
                             if p.get("kill_chain_name") == "mitre-attack"],
                 "sub": bool(o.get("x_mitre_is_subtechnique", "." in tid)), "status": status}
        if status == "revoked" and tid in revoked_by:
            entry["revoked_by"] = revoked_by[tid]
        techniques[tid] = entry
    modified = collection.get("modified") or max((o.get("modified", "") for o in objects), default="")
    return {
        "domain": "enterprise-attack",
        "attack_version": str(collection.get("x_mitre_version", "")),
        "source_modified": modified,
        "derived_from": source_name,
        "notice": NOTICE.format(year=(modified or "2026")[:4]),
        "license": LICENSE,
        "tactics": tactics,
        "techniques": dict(sorted(techniques.items())),
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m vexpipe.attack_table enterprise-attack.json > table.json", file=sys.stderr)
        return 64
    try:
        with open(args[0], encoding="utf-8") as f:
            bundle = json.load(f)
    except (OSError, ValueError) as e:
        print(f"attack_table: {args[0]}: {e}", file=sys.stderr)
        return 66
    json.dump(build(bundle, args[0].rsplit("/", 1)[-1]), sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
