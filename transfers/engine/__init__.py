"""The transfer engine: source gateway → bounded spool → destination gateway, instance by instance.

Its modules, and which threads use what, are described in docs/engine.md ("Modules"). In short: `run`
(one pass), `lease` (ownership and the one heartbeat), `limits` (gateway slots and the retry policy),
`plan` (the source's counts; its listing only on resume or shortfall), `presence` (what the destination
already holds), `pipeline` (retrieve pump and store streams), `ledger` (the per-instance record),
`refusals`, `verification` (the count check), `spool`, `errors`. Only the thread that runs a pass uses the
database; its helper threads talk to gateways only. Transfers end in transfers.completion.
"""

from .errors import AgreementWithdrawn, Busy, NoSlot, Stopped, TransientTransferError
from .lease import claim, heartbeat_interval, note_waiting, release
from .limits import next_retry_delay
from .pipeline import Clients
from .run import clients_for, fail, finish, run
from .spool import spool_dir

__all__ = [
    "AgreementWithdrawn",
    "Busy",
    "Clients",
    "NoSlot",
    "Stopped",
    "TransientTransferError",
    "claim",
    "clients_for",
    "fail",
    "finish",
    "heartbeat_interval",
    "next_retry_delay",
    "note_waiting",
    "release",
    "run",
    "spool_dir",
]
