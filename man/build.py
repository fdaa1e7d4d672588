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
import subprocess
import sys
import tomllib
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAN = ROOT / "man"
MAN_DATE = "2026-12-03"


def commands() -> dict[str, str]:
    """Executable name -> module, from pyproject.toml's [project.scripts]."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {name: target.split(":")[0] for name, target in project["scripts"].items()}


def render(name: str, module: str) -> str:
    command = importlib.import_module(module).COMMAND
    from vexpipe import __version__

    epoch = int(datetime.fromisoformat(MAN_DATE).replace(tzinfo=timezone.utc).timestamp())
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
    out = subprocess.run(
        [sys.executable, "-c", "import sys; from argparse_manpage.cli import main; sys.exit(main())", "--module", module, "--function", "build_parser",
         "--project-name", "vexpipe", "--version", __version__, "--manual-title", "vexpipe manual",
         "--description", command.summary, "--prog", name],
        env=env, capture_output=True, text=True, check=True)
    return out.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    stale = []
    for name, module in commands().items():
        page = MAN / f"{name}.1"
        text = render(name, module)
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
