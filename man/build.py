"""Generate man/*.1 from the executables' argparse parsers (argparse-manpage).

    python man/build.py          write the pages
    python man/build.py --check  exit 1 when a committed page differs from its parser

Every console script in pyproject.toml gets a page. The date in the pages is
fixed (MAN_DATE) so that regenerating them gives the same bytes.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tomllib
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAN = ROOT / "man"
MAN_DATE = "2026-12-03"


def commands() -> dict[str, str]:
    """Executable name -> entry point (``module:Class.main``), from pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return dict(project["scripts"])


def render(name: str, target: str) -> str:
    """The man page of one executable, from its Filter class's parser."""
    from argparse_manpage.manpage import Manpage

    from vexpipe import __version__

    module, attr = target.split(":")
    command = getattr(importlib.import_module(module), attr.split(".")[0])
    epoch = int(datetime.fromisoformat(MAN_DATE).replace(tzinfo=timezone.utc).timestamp())
    os.environ["SOURCE_DATE_EPOCH"] = str(epoch)  # argparse-manpage dates the page with it
    data = {"authors": None, "description": command.summary, "long_description": None,
            "project_name": "vexpipe", "prog": name, "url": None, "version": __version__,
            "format": "pretty", "manual_section": "1", "manual_title": "vexpipe manual",
            "include": None, "manfile": None}
    return str(Manpage(command.parser(), format="pretty", _data=data))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    stale = []
    for name, target in commands().items():
        page = MAN / f"{name}.1"
        text = render(name, target)
        if args.check:
            if not page.exists() or page.read_text() != text:
                stale.append(page.name)
        else:
            page.write_text(text)
    if stale:
        print(f"stale man pages (run make man): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
