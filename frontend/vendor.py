"""Copy the front-end builds npm installed (package.json, `npm ci`) into frontend/build/, served as our own
static files under /static/vendor/<package>/. Run by `make venv` and the Dockerfile after `npm ci`.

A package needs nothing here beyond its line in package.json: its published `dist/` folder is copied
whole. A package whose files need adjusting to be served from our own origin gets a function in FIXES.
No network, no Django: plain file copies.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = ROOT / "node_modules"
BUILD = ROOT / "frontend" / "build"


def _nhsuk_frontend(source: Path, target: Path) -> None:
    """NHS.UK frontend: the compiled CSS and JS (an ES module) and its images. Its CSS points at images
    under /assets/ and at the Frutiger web font on the NHS's own CDN: images are made relative to the CSS,
    and the font faces are dropped (the licensed font is not ours to serve; the stack falls back to Arial,
    as the design system intends)."""
    dist = source / "dist" / "nhsuk"
    target.mkdir(parents=True)
    css = (dist / "nhsuk-frontend.min.css").read_text(encoding="utf-8")
    css = re.sub(r"@font-face\{[^}]*assets\.nhs\.uk[^}]*\}", "", css)
    css = css.replace("url(/assets/", "url(assets/")
    if "assets.nhs.uk" in css:
        raise SystemExit("nhsuk-frontend: its CSS still names the NHS CDN; update frontend/vendor.py")
    (target / "nhsuk-frontend.min.css").write_text(css, encoding="utf-8")
    shutil.copy2(dist / "nhsuk-frontend.min.js", target / "nhsuk-frontend.min.js")
    # Both files name their source maps, and collectstatic's manifest storage fails on a missing one.
    for name in ("nhsuk-frontend.min.css.map", "nhsuk-frontend.min.js.map"):
        shutil.copy2(dist / name, target / name)
    shutil.copytree(dist / "assets", target / "assets")


FIXES: dict[str, Callable[[Path, Path], None]] = {"nhsuk-frontend": _nhsuk_frontend}


def _copy_dist(source: Path, target: Path) -> None:
    shutil.copytree(source / "dist", target)


def main() -> int:
    packages = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))["dependencies"]
    shutil.rmtree(BUILD, ignore_errors=True)
    BUILD.mkdir(parents=True)
    for name, version in packages.items():
        source = MODULES / name
        installed = json.loads((source / "package.json").read_text(encoding="utf-8"))["version"]
        if installed != version:
            print(f"{name}: {installed} installed, {version} pinned; run npm ci", file=sys.stderr)
            return 1
        FIXES.get(name, _copy_dist)(source, BUILD / name)
        print(f"frontend/build/{name} ← {name}@{version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
