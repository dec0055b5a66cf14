"""Opening and closing DIMSE associations the way pynetdicom documents, with readable failures.

Everything that creates a pynetdicom AE in this package goes through `new_ae()` so that the
process-wide pynetdicom switches are set once and every socket gets TCP_NODELAY.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, _config, evt
from pynetdicom.association import Association
from pynetdicom.pdu_primitives import A_ASSOCIATE
from pynetdicom.status import (
    QR_FIND_SERVICE_CLASS_STATUS,
    QR_GET_SERVICE_CLASS_STATUS,
    QR_MOVE_SERVICE_CLASS_STATUS,
    VERIFICATION_SERVICE_CLASS_STATUS,
    code_to_category,
)

from .config import GatewayConfig
from .errors import AssociationRejected, GatewayError, GatewayTimeout, GatewayUnreachable, ProtocolError

log = logging.getLogger(__name__)

# Largest PDU we ask peers to send us: bigger PDUs mean fewer round trips through pynetdicom's
# reactor; DCMTK peers cap what they send at their own limit anyway.
MAX_PDU = 262_144

EventHandlers = list[tuple[Any, Callable[..., Any]]]

_MEANINGS = {
    "C-ECHO": VERIFICATION_SERVICE_CLASS_STATUS,
    "C-FIND": QR_FIND_SERVICE_CLASS_STATUS,
    "C-GET": QR_GET_SERVICE_CLASS_STATUS,
    "C-MOVE": QR_MOVE_SERVICE_CLASS_STATUS,
}


def configure_pynetdicom() -> None:
    """Set pynetdicom's process-wide switches this package relies on (idempotent).

    * Identifiers carry patient names and NHS numbers: keep them out of the logs.
    * Send files from disk in PDU-sized chunks instead of decoding whole datasets into memory
      (pynetdicom then needs an exact transfer-syntax match, which `store` arranges).
    * Write each received C-STORE data set to a temporary file as its PDUs arrive (in the process's
      temp folder, `tempfile.gettempdir()`), never whole in memory: a 256 MB instance took a receiver
      from 142 to 399 MB before. `intake` copies it from there into the spool.
    """
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    _config.STORE_SEND_CHUNKED_DATASET = True
    _config.STORE_RECV_CHUNKED_DATASET = True


def _set_nodelay(event: evt.Event) -> None:
    # pynetdicom leaves Nagle on; with DIMSE's small command PDUs followed by data, every C-STORE
    # then waits on the peer's delayed ACK (~7 MB/s measured instead of ~30).
    sock = getattr(event.assoc.dul.socket, "socket", None)
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # the peer may already have gone; nothing to tune then
            pass


NODELAY_HANDLERS: EventHandlers = [(evt.EVT_CONN_OPEN, _set_nodelay)]


def new_ae(ae_title: str, config: GatewayConfig | None = None) -> AE:
    """An AE with our settings; timeouts from `config` when it is given."""
    configure_pynetdicom()
    ae = AE(ae_title=ae_title)
    ae.maximum_pdu_size = MAX_PDU
    if config is not None:
        ae.connection_timeout = config.connect_timeout
        ae.acse_timeout = config.acse_timeout
        ae.dimse_timeout = config.dimse_timeout
        ae.network_timeout = config.network_timeout
    return ae


@contextmanager
def open_association(
    ae: AE,
    config: GatewayConfig,
    *,
    ext_neg: list[Any] | None = None,
    evt_handlers: EventHandlers | None = None,
) -> Iterator[Association]:
    """Associate with the gateway using `ae`'s requested contexts; release (or abort) on exit."""
    _resolve(config)
    opened: list[bool] = []

    def _mark_open(event: evt.Event) -> None:
        opened.append(True)

    handlers = [*NODELAY_HANDLERS, (evt.EVT_CONN_OPEN, _mark_open), *(evt_handlers or [])]
    started = time.monotonic()
    assoc = ae.associate(
        config.host,
        int(config.port),
        ae_title=config.ae_title,
        max_pdu=MAX_PDU,
        ext_neg=ext_neg,
        evt_handlers=handlers,
    )
    if not assoc.is_established:
        raise _association_failure(assoc, config, bool(opened), time.monotonic() - started)
    try:
        yield assoc
    except BaseException:
        if assoc.is_established:
            assoc.abort()
        raise
    else:
        if assoc.is_established:
            assoc.release()


def _resolve(config: GatewayConfig) -> None:
    try:
        socket.getaddrinfo(config.host, int(config.port), type=socket.SOCK_STREAM)
    except OSError as exc:
        raise GatewayUnreachable(f"{config.name}: host {config.host!r} could not be found ({exc}).") from exc


def _association_failure(assoc: Association, config: GatewayConfig, connected: bool, elapsed: float) -> GatewayError:
    where = f"{config.name} ({config.ae_title}@{config.address})"
    if not connected:
        if elapsed >= config.connect_timeout * 0.9:
            return GatewayUnreachable(f"{where} did not answer within {config.connect_timeout:g} s.")
        return GatewayUnreachable(
            f"{where} refused the connection: nothing is listening on that port, or a firewall blocks it."
        )
    reply = _answer(assoc)
    if reply is not None and reply.result in (1, 2):
        reason = str(reply.reason_str)
        reason = reason[:1].lower() + reason[1:]  # "Called AE title..." reads mid-sentence
        hint = ""
        if reply.diagnostic == 7 and reply.result_source == 1:
            hint = f" (we called it {config.ae_title!r})"
        elif reply.diagnostic == 3 and reply.result_source == 1:
            hint = f" (we called as {assoc.requestor.ae_title!r}; the PACS must list us as a modality)"
        permanent = reply.result == 1
        return AssociationRejected(f"{config.name} refused the association: {reason}{hint}.", permanent=permanent)
    if reply is not None and reply.result == 0 and not assoc.accepted_contexts:
        return AssociationRejected(
            f"{config.name} accepted the association but none of the proposed services or transfer syntaxes.",
            permanent=True,
        )
    if reply is None and elapsed >= config.acse_timeout * 0.9:
        return GatewayTimeout(
            f"{where} accepted the connection but did not answer the association request "
            f"within {config.acse_timeout:g} s."
        )
    return GatewayError(f"{where} aborted the association request.")


def _answer(assoc: Association) -> A_ASSOCIATE | None:
    """The peer's A-ASSOCIATE answer, even when pynetdicom 3.0 lost track of it.

    pynetdicom checks that the socket is still connected only after sending the request; a peer
    that rejects at once and closes its end (Orthanc, dcmtk) can win that race on a busy machine.
    pynetdicom then "aborts" an association the peer had rejected, with the rejection still
    waiting in the DUL's queue: reading it from there keeps a wrong AE title reported as such.
    """
    reply = getattr(assoc.acceptor, "primitive", None)
    if reply is not None:
        return reply
    pending = getattr(getattr(assoc.dul, "to_user_queue", None), "queue", ())
    return next((item for item in list(pending) if isinstance(item, A_ASSOCIATE) and item.result in (1, 2)), None)


def settle(assoc: Association, timeout: float = 1.0) -> None:
    """Call between two requests on one association, to dodge a race in pynetdicom 3.0.

    The reactor marks itself paused before it blocks but only marks itself running again after it
    wakes; a request sent in that gap finds the stale "paused" flag, and the waking reactor then
    swallows its response ("Received unexpected C-STORE service message"), leaving us to a DIMSE
    timeout. Waiting here until the reactor has visibly resumed closes the gap.
    """
    deadline = time.monotonic() + timeout
    while getattr(assoc, "_is_paused", False) and assoc.is_established and time.monotonic() < deadline:
        time.sleep(0.0001)


def check_status(status: Dataset, config: GatewayConfig, operation: str) -> int:
    """Return the status code of a response, raising readable errors for timeouts and failures."""
    if "Status" not in status:
        raise GatewayTimeout(
            f"{config.name} stopped answering during {operation}: no response within "
            f"{config.dimse_timeout:g} s, or the association was aborted."
        )
    code = int(status.Status)
    if code_to_category(code) == "Failure":
        comment = str(status.get("ErrorComment", "") or "").strip()
        meaning = _MEANINGS.get(operation, {}).get(code, ("", ""))[1]
        detail = "".join(f" ({part})" for part in (meaning, comment) if part)
        # 0xA7xx is "out of resources": worth retrying later; other failures will not change.
        raise ProtocolError(
            f"{config.name} answered {operation} with failure status 0x{code:04X}{detail}.",
            permanent=not 0xA700 <= code <= 0xA7FF,
        )
    return code


def is_pending(code: int) -> bool:
    return code in (0xFF00, 0xFF01)
