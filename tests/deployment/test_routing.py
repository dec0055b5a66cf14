"""The routing contract (issue #18): every Celery task and every beat entry goes to a queue that the
workers of each deployment layout consume. Read from the files themselves: Procfile, Procfile.demo and
docker-compose.yml, and the app's task registry, routes and beat schedule."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml
from django.conf import settings

from portal.celery import app
from portal.demo import procfile_commands

BASE_DIR = Path(settings.BASE_DIR)
LAYOUTS = ("Procfile", "Procfile.demo", "docker-compose.yml")
# A caller may choose a task's queue per call instead of its route: a transfer's priority (Transfer.queue).
PER_CALL_QUEUES = {
    "transfers.run_transfer": {"urgent", "routine", "bulk"},
    "reconciliation.forward_held": {"urgent", "routine", "bulk"},
}


def worker_queues(argv: list[str]) -> set[str] | None:
    """The queues of a `celery ... worker` command line; None if it is not one. A worker without -Q
    consumes Celery's default queue."""
    if not argv or Path(argv[0]).name != "celery" or "worker" not in argv:
        return None
    queues: set[str] = set()
    for index, arg in enumerate(argv):
        if arg in ("-Q", "--queues") and index + 1 < len(argv):
            queues.update(argv[index + 1].split(","))
        elif arg.startswith("--queues="):
            queues.update(arg.removeprefix("--queues=").split(","))
        elif arg.startswith("-Q") and len(arg) > 2:
            queues.update(arg[2:].split(","))
    return {q.strip() for q in queues if q.strip()} or {app.conf.task_default_queue}


def consumed(layout: str) -> dict[str, set[str]]:
    """{process name: queues} for every Celery worker the layout starts."""
    path = BASE_DIR / layout
    if layout.endswith(".yml"):
        services = yaml.safe_load(path.read_text(encoding="utf-8"))["services"]
        commands = {}
        for name, service in services.items():
            command = service.get("command") or []
            commands[name] = command if isinstance(command, list) else shlex.split(command)
    else:
        commands = {name: shlex.split(command) for name, command in procfile_commands(path).items()}
    workers = {name: worker_queues(argv) for name, argv in commands.items()}
    return {name: queues for name, queues in workers.items() if queues is not None}


def route(task_name: str) -> str:
    queue = app.amqp.router.route({}, task_name)["queue"]
    return getattr(queue, "name", queue)


def project_tasks() -> list[str]:
    app.loader.import_default_modules()  # what a worker's autodiscovery imports
    return sorted(name for name in app.tasks if not name.startswith("celery."))


def test_the_layouts_start_workers():
    for layout in LAYOUTS:
        assert consumed(layout), f"{layout} starts no Celery worker"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_task_goes_to_a_queue_a_worker_of_the_layout_consumes(layout):
    queues = set().union(*consumed(layout).values())
    unconsumed = {}
    for name in project_tasks():
        for queue in {route(name)} | PER_CALL_QUEUES.get(name, set()):
            if queue not in queues:
                unconsumed[name] = queue
    assert not unconsumed, f"{layout}: no worker consumes the queue of {unconsumed} (workers read {sorted(queues)})"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_beat_entry_goes_to_a_queue_a_worker_of_the_layout_consumes(layout):
    queues = set().union(*consumed(layout).values())
    tasks = set(project_tasks())
    for key, entry in settings.CELERY_BEAT_SCHEDULE.items():
        assert entry["task"] in tasks, f"beat entry {key}: no task {entry['task']} is registered"
        assert "queue" not in entry.get("options", {}), f"beat entry {key} names its own queue: route it instead"
        assert route(entry["task"]) in queues, f"{layout}: beat entry {key} goes to {route(entry['task'])!r}"


def test_every_task_has_a_route_of_its_own():
    """Nothing falls through to the default by accident: each app's tasks are named in CELERY_TASK_ROUTES."""
    from celery.app.routes import MapRoute

    routes = MapRoute(settings.CELERY_TASK_ROUTES)
    unrouted = [name for name in project_tasks() if routes(name) is None]
    assert not unrouted, f"add these to CELERY_TASK_ROUTES: {unrouted}"
    assert app.conf.task_default_queue == "default"


def test_the_demo_runs_every_queue_priority_order_and_the_embedded_redis():
    workers = consumed("Procfile.demo")
    assert {"urgent", "routine", "default"} <= set().union(*workers.values())
    assert "python -m portal.demo redis" in procfile_commands(BASE_DIR / "Procfile.demo").values()


def test_the_parser_reads_the_ways_queues_are_written():
    assert worker_queues(["celery", "-A", "portal", "worker", "-Q", "a,b"]) == {"a", "b"}
    assert worker_queues(["celery", "-A", "portal", "worker", "--queues=c"]) == {"c"}
    assert worker_queues(["celery", "-A", "portal", "worker", "-Qd,e"]) == {"d", "e"}
    assert worker_queues(["celery", "-A", "portal", "worker"]) == {"default"}
    assert worker_queues(["celery", "-A", "portal", "beat"]) is None
