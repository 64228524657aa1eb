"""Rebuild static/icons/bootstrap-icons.svg: only the Bootstrap Icons the templates use, as one sprite.

    npm pack bootstrap-icons@1.13.2 && tar xzf bootstrap-icons-1.13.2.tgz
    python tools/build-icon-sprite.py package trash3 chevron-left chevron-right chevron-double-left \
        arrow-up arrow-down pencil copy plus-lg clock-history broadcast arrow-repeat exclamation-triangle \
        shield-exclamation

Templates draw them with the `icon` macro (templates/_ui.html), which needs the names listed here.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

SPRITE = Path(__file__).resolve().parent.parent / "static" / "icons" / "bootstrap-icons.svg"


def main(package: Path, names: list[str]) -> None:
    version = re.search(r'"version":\s*"([^"]+)"', (package / "package.json").read_text())
    symbols = []
    for name in sorted(set(names)):
        svg = (package / "icons" / f"{name}.svg").read_text()
        body = re.search(r"<svg[^>]*>(.*)</svg>", svg, re.S)
        if body is None:
            raise SystemExit(f"{name}.svg has no <svg> element")
        symbols.append(f'<symbol id="{name}" viewBox="0 0 16 16">{body.group(1).strip()}</symbol>')
    SPRITE.write_text(
        f"<!-- Bootstrap Icons {version.group(1) if version else ''} (MIT, see LICENSE): the icons the templates use. "
        "Rebuilt by tools/build-icon-sprite.py. -->\n"
        '<svg xmlns="http://www.w3.org/2000/svg">\n' + "\n".join(symbols) + "\n</svg>\n")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), sys.argv[2:])
