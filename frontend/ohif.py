"""Install OHIF's published viewer build (`@ohif/app`, pinned with its integrity under "prebuilt" in
package.json) into frontend/ohif/, for the portal to serve as its own files (dicomweb/ohif.py).

`npm pack` fetches the package's tarball alone: its dist/ is the built viewer, and its own dependencies
are neither needed nor installable (npm cannot resolve them: @ohif/i18n 3.13.2 is not published). The
tarball's sha512 must equal the pin. dist/ goes to frontend/ohif/dist/ (served at the site root, as the
build expects), except the files the portal serves itself (index.html, kept beside dist/ as the page
template, and app-config.js) or must never serve (the service worker, which loads code from a CDN, and
hosting files). Run by `make venv` and the Dockerfile; does nothing when the pinned build is in place.
No Django.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "frontend" / "ohif"
PACKAGE = "@ohif/app"
NOT_SERVED = (
    "app-config.js",
    "init-service-worker.js",
    "sw.js",
    "google.js",
    "silent-refresh.html",
    "serve.json",
    "_headers",
    "_redirects",
)


def pin() -> tuple[str, str]:
    entry = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))["prebuilt"][PACKAGE]
    return entry["version"], entry["integrity"]


def integrity_of(path: Path) -> str:
    digest = hashlib.sha512()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def fetch(version: str, workdir: Path) -> Path:
    out = subprocess.run(
        ["npm", "pack", f"{PACKAGE}@{version}", "--pack-destination", str(workdir), "--json", "--silent"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return workdir / json.loads(out)[0]["filename"]


def extract(tarball: Path, target: Path) -> None:
    """dist/ of the tarball into target/dist, refusing anything that would land outside it."""
    dist = target / "dist"
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive.getmembers():
            if not member.name.startswith("package/dist/") or not (member.isfile() or member.isdir()):
                continue
            relative = Path(member.name).relative_to("package/dist")
            destination = (dist / relative).resolve()
            if dist.resolve() not in destination.parents and destination != dist.resolve():
                raise SystemExit(f"{PACKAGE}: {member.name} would land outside {dist}")
            if member.isdir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.extractfile(member) as source, open(destination, "wb") as out:  # type: ignore[union-attr]
                shutil.copyfileobj(source, out)
    (dist / "index.html").replace(target / "index.html")
    for name in NOT_SERVED:
        (dist / name).unlink(missing_ok=True)


def main() -> int:
    version, integrity = pin()
    stamp = TARGET / ".installed"
    if stamp.exists() and stamp.read_text(encoding="utf-8") == f"{version} {integrity}":
        return 0
    with tempfile.TemporaryDirectory(dir=ROOT / "frontend") as tmp:
        work = Path(tmp)
        tarball = fetch(version, work)
        got = integrity_of(tarball)
        if got != integrity:
            print(f"{PACKAGE}@{version}: integrity {got} differs from the pin {integrity}", file=sys.stderr)
            return 1
        fresh = work / "ohif"
        extract(tarball, fresh)
        (fresh / ".installed").write_text(f"{version} {integrity}", encoding="utf-8")
        shutil.rmtree(TARGET, ignore_errors=True)
        fresh.replace(TARGET)
    print(f"frontend/ohif ← {PACKAGE}@{version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
