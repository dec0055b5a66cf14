"""Start and stop a real Orthanc for tests and benchmarks: own config, own storage, loopback ports."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ORTHANC_BIN = "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def orthanc_available() -> bool:
    return os.access(ORTHANC_BIN, os.X_OK) and os.path.exists(DICOMWEB_PLUGIN)


@dataclass
class OrthancProcess:
    """One Orthanc server. `modalities` maps a name to (AE, host, port); `users` enables basic auth."""

    workdir: Path
    aet: str = "ORTHANC"
    modalities: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)
    check_called_aet: bool = False
    http_port: int = field(default_factory=free_port)
    dicom_port: int = field(default_factory=free_port)
    extra: dict[str, Any] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    @property
    def auth(self) -> tuple[str, str] | None:
        return next(iter(self.users.items())) if self.users else None

    def config(self) -> dict[str, Any]:
        storage = self.workdir / "storage"
        cfg: dict[str, Any] = {
            "Name": self.aet,
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.aet,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": bool(self.users),
            "RegisteredUsers": self.users,
            "DicomCheckCalledAet": self.check_called_aet,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomModalities": {
                name: {
                    "AET": ae,
                    "Host": host,
                    "Port": port,
                    "AllowEcho": True,
                    "AllowFind": True,
                    "AllowGet": True,
                    "AllowMove": True,
                    "AllowStore": True,
                }
                for name, (ae, host, port) in self.modalities.items()
            },
            "DicomScuTimeout": 10,
            "StableAge": 2,
            "SyncStorageArea": False,
            "HttpTimeout": 60,
            "LimitFindResults": 0,
            "LimitFindInstances": 0,
            "Plugins": [DICOMWEB_PLUGIN],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "StudiesMetadata": "MainDicomTags"},
            "ConcurrentJobs": 2,
            "StorageCompression": False,
        }
        cfg.update(self.extra)
        return cfg

    def start(self, timeout: float = 20.0) -> OrthancProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "orthanc.json"
        config_path.write_text(json.dumps(self.config(), indent=2))
        env = {**os.environ, "TCP_NODELAY": "1"}
        log = open(self.workdir / "orthanc.log", "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen([ORTHANC_BIN, str(config_path)], stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited at start: {(self.workdir / 'orthanc.log').read_text()[-2000:]}")
            try:
                if self.session().get(f"{self.url}/system", timeout=1).ok and self._dicom_listening():
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Orthanc did not start within {timeout} s")

    def _dicom_listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.dicom_port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # --- REST helpers used to prove what Orthanc holds -------------------------------------------

    def session(self) -> requests.Session:
        s = requests.Session()
        s.auth = self.auth
        return s

    def upload(self, paths: list[Path]) -> None:
        s = self.session()
        for path in paths:
            r = s.post(f"{self.url}/instances", data=Path(path).read_bytes(), timeout=30)
            r.raise_for_status()

    def find(self, level: str, query: dict[str, str], expand: bool = False) -> list[Any]:
        r = self.session().post(
            f"{self.url}/tools/find", json={"Level": level, "Query": query, "Expand": expand}, timeout=30
        )
        r.raise_for_status()
        return r.json()

    def instance_tags(self, orthanc_id: str) -> dict[str, Any]:
        r = self.session().get(f"{self.url}/instances/{orthanc_id}/simplified-tags", timeout=30)
        r.raise_for_status()
        return r.json()

    def instance_file(self, orthanc_id: str) -> bytes:
        r = self.session().get(f"{self.url}/instances/{orthanc_id}/file", timeout=30)
        r.raise_for_status()
        return r.content

    def instance_metadata(self, orthanc_id: str, name: str) -> str:
        r = self.session().get(f"{self.url}/instances/{orthanc_id}/metadata/{name}", timeout=30)
        r.raise_for_status()
        return r.text

    def delete_study(self, study_uid: str) -> None:
        for oid in self.find("Study", {"StudyInstanceUID": study_uid}):
            self.session().delete(f"{self.url}/studies/{oid}", timeout=30).raise_for_status()
