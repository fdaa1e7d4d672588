"""One module per executable; what two of them share about their arguments lives here."""

from __future__ import annotations

from vexpipe import attack
from vexpipe.runtime import ArgumentParser, Exit, StageError


def add_attack_table_argument(p: ArgumentParser) -> None:
    p.add_argument("--attack-table", metavar="PATH",
                   help="use this ATT&CK table instead of the bundled one (make attack-table builds one "
                   "from MITRE's STIX bundle)")


def load_attack_table(path: str | None) -> attack.AttackTable:
    """The table for ``--attack-table`` (bundled when None); an unusable one exits 78."""
    try:
        return attack.load(path)
    except attack.TableError as e:
        raise StageError(f"--attack-table: {e}", Exit.CONFIG) from None
