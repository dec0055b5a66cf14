"""The deployed processes, started for fault tests: a Redis server of our own (restartable), a TCP proxy
in front of PostgreSQL that can be cut (a real outage for every process that connects through it), the
web process (gunicorn), the DICOM receiver and Celery beat. The worker is tests/transfers/worker.py's."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.dicom.orthanc import free_port
from tests.transfers.worker import BASE_DIR

REDIS_SERVER = "/usr/bin/redis-server"


def wait_until(predicate, timeout: float, what: str, log=lambda: ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{log()[-6000:]}")


@dataclass
class RedisServer:
    """redis-server as docker-compose runs it (`--appendonly yes`), on a port of its own."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir)]
        command += ["--appendonly", "yes", "--save", "", "--protected-mode", "no"]
        log = (self.workdir / "redis.log").open("ab")
        self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self._answers, 20, "redis-server to start", lambda: (self.workdir / "redis.log").read_text())
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM: Redis writes its append-only file and exits, as `docker compose restart redis` does."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        self.proc = None


class TcpProxy:
    """127.0.0.1:<port> → target. `cut()` closes every connection and stops listening (clients see a server
    that went away, then connection refused); `restore()` listens again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if listener is not self._listener:  # cut meanwhile
                client.close()
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            with self._lock:
                self._conns -= {src, dst}

    def cut(self) -> None:
        if self._listener:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept(); close() would not
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def restore(self) -> None:
        self.start()


@dataclass
class Process:
    """A manage.py/celery/gunicorn process in its own process group, logging to a file."""

    name: str
    command: list[str]
    env: dict[str, str]
    workdir: Path
    ready: str = ""  # a line in its log that says it is up
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def start(self, timeout: float = 60.0) -> Process:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"{self.name}-{uuid.uuid4().hex[:6]}.log"
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.command, cwd=BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        if self.ready:
            wait_until(lambda: self.ready in self.log() or self.proc.poll() is not None, timeout, self.name, self.log)
            assert self.proc.poll() is None, f"{self.name} exited at start:\n{self.log()[-4000:]}"
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None


def web(env: dict[str, str], workdir: Path) -> tuple[Process, str]:
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "portal.wsgi:application", "--bind", f"127.0.0.1:{port}"]
    command += ["--workers", "1", "--threads", "4", "--timeout", "60"]
    proc = Process("web", command, env, workdir)
    proc.start()
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            requests.get(f"{base}/healthz", timeout=5)
        except requests.RequestException:
            return False
        return True

    wait_until(up, 60, "gunicorn to answer", proc.log)
    return proc, base


def receiver(env: dict[str, str], workdir: Path, port: int) -> Process:
    command = [sys.executable, "manage.py", "run_dicom_receiver", "--port", str(port), "--bind", "127.0.0.1"]
    return Process("receiver", command, env, workdir, ready="listening on")


def beat(env: dict[str, str], workdir: Path) -> Process:
    """`celery -A portal beat` with the schedule tests/deployment/celery_beat.py sets, its state file kept
    across restarts (as the Procfile's is)."""
    command = [sys.executable, "-m", "tests.deployment.celery_beat", "--schedule", str(workdir / "beat-schedule")]
    return Process("beat", command, env, workdir, ready="beat: Starting")
