"""C-STORE through dcmtk's `dcmsend`, driven as a process: DCMTK sends at C speed where pynetdicom
spends a CPU-second per ~35 MB in Python at a PACS's 16 kB PDUs. Every file's outcome comes from
dcmsend's per-file report (`--create-report-file`: the peer's DIMSE status per SOP instance); a file
the report gives no status for is not reported stored (the caller may send it another way)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .config import GatewayConfig
from .errors import AssociationRejected, GatewayError, GatewayTimeout, GatewayUnreachable

DCMSEND = "dcmsend"
_ENTRY = re.compile(r"^Filename\s*:\s*(?P<path>.+)$|^DIMSE Status\s*:\s*0x(?P<status>[0-9A-Fa-f]{4})(?P<rest>.*)$")
# dcmsend's exit codes (dcmsend.cc, DCMTK 3.6.7) for an association it could not open.
_NO_ASSOCIATION = {60, 61, 62}


def available() -> bool:
    return shutil.which(DCMSEND) is not None


@dataclass(frozen=True)
class Answer:
    """The peer's answer to one file, as dcmsend's report gives it."""

    status: int
    text: str


def send(config: GatewayConfig, local_ae_title: str, paths: Sequence[Path]) -> dict[Path, Answer]:
    """Send `paths` over one dcmsend run; the peer's answer per file the report names. Raises
    GatewayError when no association could be opened (nothing was sent)."""
    with tempfile.TemporaryDirectory(prefix="dcmsend-") as folder:
        report = Path(folder) / "report.txt"
        command = [
            DCMSEND,
            "--no-halt",  # a file it cannot send is reported, the rest still go
            "--decompress-never",  # what the peer does not accept is left to pynetdicom, which can decode
            "--call",
            config.ae_title,
            "--aetitle",
            local_ae_title,
            "--timeout",
            str(max(1, int(config.connect_timeout))),
            "--acse-timeout",
            str(max(1, int(config.acse_timeout))),
            "--dimse-timeout",
            str(max(1, int(config.dimse_timeout))),
            "--max-pdu",
            "131072",  # what we ask the peer to send us (its responses); the peer's own limit rules our sends
            "--create-report-file",
            str(report),
            config.host,
            str(int(config.port)),
            *(str(p) for p in paths),
        ]
        env = {**os.environ, "TCP_NODELAY": "1"}  # else every C-STORE waits on Nagle and delayed ACKs
        timeout = config.network_timeout + config.dimse_timeout * max(1, len(paths))
        try:
            done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise GatewayTimeout(f"{config.name} did not finish answering a batch of {len(paths)} instances.") from exc
        answers = _parse(report.read_text(errors="replace")) if report.exists() else {}
    if not answers and done.returncode in _NO_ASSOCIATION:
        raise _association_error(config, done.stderr)
    return answers


def _parse(report: str) -> dict[Path, Answer]:
    answers: dict[Path, Answer] = {}
    current: Path | None = None
    for line in report.splitlines():
        match = _ENTRY.match(line.strip())
        if match is None:
            continue
        if match["path"]:
            current = Path(match["path"].strip())
        elif current is not None:
            answers[current] = Answer(int(match["status"], 16), match["rest"].strip(" ()"))
            current = None
    return answers


def _association_error(config: GatewayConfig, stderr: str) -> GatewayError:
    where = f"{config.name} ({config.ae_title}@{config.address})"
    detail = " ".join(line.removeprefix("F: ").removeprefix("E: ") for line in stderr.splitlines() if line.strip())
    if "Association Rejected" in stderr:
        permanent = "Rejected Permanent" in stderr
        return AssociationRejected(f"{config.name} refused the association: {detail}", permanent=permanent)
    if "Connection refused" in stderr or "connect" in stderr.lower():
        return GatewayUnreachable(f"{where} could not be reached: {detail}")
    return GatewayError(f"{where}: dcmsend could not open an association: {detail}")
