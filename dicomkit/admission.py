"""Who may open an association with the receiver, and how many at once.

A receiver that answers anyone can be starved: ten idle associations took every one of pynetdicom's
default slots and a trust's C-ECHO was refused. So, in the order they are checked:

* **Connections per address** (at TCP accept, before a byte is read): an address may hold at most
  `max_pending_per_address` connections that have not been admitted (all addresses together, four times
  `max_associations`), so silence cannot hoard threads; a connection silent before its A-ASSOCIATE-RQ
  ends after the ACSE timeout, one stalled in the middle of a PDU after the network timeout.
* **Allow-list** (on the A-ASSOCIATE-RQ): the calling AE title must be a known caller's, calling from
  one of that caller's addresses (its host, resolved). Anyone else gets A-ASSOCIATE-RJ "calling AE title
  not recognised" (permanent) and the refusal is reported.
* **Per caller** (calling AE title at one address): at most `max_per_peer` admitted associations, so
  one peer cannot take them all; the next gets A-ASSOCIATE-RJ "local limit exceeded" (transient).
* **In all**: at most `max_associations` admitted associations. Connections refused or not yet admitted
  never count here, so strangers cannot fill the receiver for the callers it knows.

Idle associations end after the receiver's network timeout. An admitted association counts while its
thread lives, a connection not yet admitted while its socket is open (and its thread, once it has one):
a count cannot leak however an association ends.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.transport import ThreadedAssociationServer

log = logging.getLogger(__name__)

# A peer must send PDUs no longer than the receiver's maximum PDU size (PS3.8 D.1); pynetdicom reads a
# PDU whole into memory whatever length it claims, so a longer one closes the connection instead.
MAX_PDU_RECEIVED = 1024 * 1024

# A-ASSOCIATE-RJ (result, source, diagnostic), PS3.8 9.3.4
REJECT_UNKNOWN_CALLER = (0x01, 0x01, 0x03)  # rejected-permanent, service user, calling AE title not recognised
REJECT_LIMIT = (0x02, 0x03, 0x02)  # rejected-transient, service provider (presentation), local limit exceeded

UNKNOWN_CALLER = "unknown caller"
PEER_LIMIT = "peer limit"
RECEIVER_LIMIT = "receiver limit"
CONNECTION_LIMIT = "connection limit"


@dataclass(frozen=True)
class Caller:
    """A peer allowed to send: its AE title and the host it calls from (an address or a host name)."""

    ae_title: str
    host: str
    label: str = ""  # how logs and refusals name it ("trust RXH Main PACS")


@dataclass(frozen=True)
class Refusal:
    """An association refused; `repeats` counts the refusals of this kind from this caller since the last
    one reported (refusals are reported at most once a `report_every` per caller and kind)."""

    kind: str
    reason: str
    calling_ae: str
    called_ae: str
    address: str
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    repeats: int = 1


RefusalHook = Callable[[Refusal], None]


def normal_ip(address: str) -> str:
    """An address as compared here: IPv4-mapped IPv6 (::ffff:10.0.0.1) as plain IPv4; "" if not an IP."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return ""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def resolve(host: str) -> frozenset[str]:
    """The addresses a registered host stands for: itself if it is one, else what DNS says now."""
    literal = normal_ip(host)
    if literal:
        return frozenset({literal})
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        log.warning("Receiver allow-list: host %r does not resolve (%s); its gateway cannot call in", host, exc)
        return frozenset()
    return frozenset(filter(None, (normal_ip(str(entry[4][0])) for entry in found)))


class AllowList:
    """Callers from `load` (the gateway directory), each resolved to its addresses.

    Reloaded every `refresh_seconds` by a background thread, so a gateway removed or changed stops (or
    starts) matching within that time without a restart; and reloaded at once, at most once every
    `miss_reload_seconds`, when a caller it does not know calls, so a gateway registered a moment ago is
    let in on its first try. If a reload fails (the database is down), the last list stays in force.
    """

    def __init__(
        self,
        load: Callable[[], Iterable[Caller]],
        *,
        refresh_seconds: float = 30.0,
        miss_reload_seconds: float = 1.0,
        resolver: Callable[[str], frozenset[str]] = resolve,
    ) -> None:
        self._load = load
        self.refresh_seconds = refresh_seconds
        self.miss_reload_seconds = miss_reload_seconds
        self._resolve = resolver
        self._entries: dict[tuple[str, str], Caller] = {}  # (AE title, address) -> caller
        self._missed_at = float("-inf")  # when an unknown caller last made us reload
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def reload(self) -> int:
        """Read the callers again; returns how many (AE title, address) pairs are allowed."""
        callers = list(self._load())
        entries: dict[tuple[str, str], Caller] = {}
        for caller in callers:
            for address in self._resolve(caller.host.strip()):
                entries.setdefault((caller.ae_title.strip(), address), caller)
        with self._lock:
            self._entries = entries
        return len(entries)

    def match(self, ae_title: str, address: str) -> Caller | None:
        """The caller this AE title at this address is, or None."""
        key = (ae_title.strip(), normal_ip(address))
        with self._lock:
            found = self._entries.get(key)
            now = time.monotonic()
            reload = found is None and now - self._missed_at >= self.miss_reload_seconds
            if reload:
                self._missed_at = now
        if reload:
            try:
                self.reload()
            except Exception:
                log.exception("Receiver allow-list: reloading after an unknown caller failed")
            with self._lock:
                found = self._entries.get(key)
        return found

    def start(self) -> AllowList:
        """Load now (raising if that fails: a receiver that cannot read its directory should not start)
        and keep reloading in the background."""
        self.reload()
        self._stop.clear()
        self._thread = threading.Thread(target=self._refresh_forever, name="receiver-allow-list", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _refresh_forever(self) -> None:
        while not self._stop.wait(self.refresh_seconds):
            try:
                self.reload()
            except Exception:
                log.exception("Receiver allow-list: reload failed; the previous list stays in force")


class Admission:
    """The checks above, for one receiver. `admit` runs on EVT_REQUESTED; `may_connect` at TCP accept."""

    def __init__(
        self,
        *,
        allow_list: AllowList | None = None,
        max_associations: int = 50,
        max_per_peer: int = 10,
        max_pending_per_address: int = 8,
        on_refused: RefusalHook | None = None,
        report_every: float = 60.0,
    ) -> None:
        if min(max_associations, max_per_peer, max_pending_per_address) < 1:
            raise ValueError("association limits must be at least 1")
        self.allow_list = allow_list
        self.max_associations = max_associations
        self.max_per_peer = max_per_peer
        self.max_pending_per_address = max_pending_per_address
        self.on_refused = on_refused
        self.report_every = report_every
        self._admitted: weakref.WeakKeyDictionary[Association, tuple[str, str]] = weakref.WeakKeyDictionary()
        self._pending: dict[socket.socket, _Pending] = {}  # connections taken and not (yet) admitted
        self._lock = threading.Lock()
        self._reported: dict[tuple[str, str, str], tuple[float, int]] = {}  # key -> (last report, suppressed)

    # --- at TCP accept ---------------------------------------------------------------------------

    def may_connect(self, address: str) -> bool:
        """Whether to take a new connection from `address`, given the connections not yet admitted."""
        ip = normal_ip(address)
        with self._lock:
            self._forget_ended()
            pending = list(self._pending.values())
        if len(pending) >= 4 * self.max_associations:
            return False  # a crowd of silent connections from many addresses: each lasts a timeout at most
        return sum(1 for p in pending if p.ip == ip) < self.max_pending_per_address

    def opened(self, sock: socket.socket, address: str) -> None:
        """A connection taken (counted from here, before pynetdicom has started its threads)."""
        with self._lock:
            self._pending[sock] = _Pending(normal_ip(address), time.monotonic())

    def _forget_ended(self) -> None:
        """Drop pending connections that have closed, or whose association thread has ended."""
        now = time.monotonic()
        for sock, pending in list(self._pending.items()):
            assoc = pending.assoc() if pending.assoc is not None else None
            ended = sock.fileno() == -1 or (
                assoc is None and (pending.assoc is not None or now - pending.since > _STARTUP_GRACE)
            )
            if ended or (assoc is not None and not assoc.is_alive() and assoc.ident is not None):
                del self._pending[sock]

    # --- on the A-ASSOCIATE-RQ -------------------------------------------------------------------

    def admit(self, assoc: Association, calling_ae: str, called_ae: str) -> tuple[tuple[int, int, int], Refusal] | None:
        """None to go on with the association, or the A-ASSOCIATE-RJ to answer and the refusal to report."""
        ip = normal_ip(_address(assoc))
        calling = calling_ae.strip()
        if self.allow_list is not None and self.allow_list.match(calling, ip) is None:
            reason = f"calling AE title {calling!r} at {ip or '?'} is not a registered gateway"
            return REJECT_UNKNOWN_CALLER, Refusal(UNKNOWN_CALLER, reason, calling, called_ae.strip(), ip)
        with self._lock:
            live = [key for a, key in self._admitted.items() if a.is_alive() and a is not assoc]
            if len(live) >= self.max_associations:
                reason = f"the receiver already holds {len(live)} associations, its limit"
                return REJECT_LIMIT, Refusal(RECEIVER_LIMIT, reason, calling, called_ae.strip(), ip)
            mine = sum(1 for key in live if key == (calling, ip))
            if mine >= self.max_per_peer:
                reason = f"{calling!r} at {ip} already holds {mine} associations, the limit for one peer"
                return REJECT_LIMIT, Refusal(PEER_LIMIT, reason, calling, called_ae.strip(), ip)
            self._admitted[assoc] = (calling, ip)
            self._pending.pop(_socket_of(assoc), None)  # type: ignore[arg-type]
        return None

    def admitted_count(self) -> int:
        with self._lock:
            return sum(1 for a in self._admitted if a.is_alive())

    def report(self, refusal: Refusal) -> None:
        """Log the refusal and pass it to `on_refused`, at most once a `report_every` per caller and kind,
        with the number held back since: a peer hammering the port cannot flood the logs or the audit trail."""
        key = (refusal.kind, refusal.calling_ae, refusal.address)
        now = time.monotonic()
        with self._lock:
            last, held = self._reported.get(key, (float("-inf"), 0))
            if now - last < self.report_every:
                self._reported[key] = (last, held + 1)
                return
            self._reported[key] = (now, 0)
            if len(self._reported) > 10_000:  # forget the oldest callers rather than grow without bound
                for old in sorted(self._reported, key=lambda k: self._reported[k][0])[:5_000]:
                    del self._reported[old]
        refusal = Refusal(**{**refusal.__dict__, "repeats": held + 1})
        more = f" ({held} more since the last report)" if held else ""
        log.warning("Association refused (%s): %s%s", refusal.kind, refusal.reason, more)
        if self.on_refused is not None:
            try:
                self.on_refused(refusal)
            except Exception:
                log.exception("on_refused hook failed for %s", refusal.reason)

    # --- pynetdicom's side -----------------------------------------------------------------------

    def on_requested(self, event: evt.Event) -> None:
        """EVT_REQUESTED: answer A-ASSOCIATE-RJ here, before pynetdicom negotiates, when `admit` says so
        (pynetdicom's documented place to reject; the same steps as its own rejections)."""
        assoc = event.assoc
        request = assoc.requestor.primitive
        verdict = self.admit(assoc, str(request.calling_ae_title or ""), str(request.called_ae_title or ""))
        if verdict is None:
            return
        reject, refusal = verdict
        assoc.acse.send_reject(*reject)
        evt.trigger(assoc, evt.EVT_REJECTED, {})
        assoc.kill()  # waits for the rejection to go out and the peer to close
        self.report(refusal)

    def on_connection_open(self, event: evt.Event) -> None:
        """EVT_CONN_OPEN: tie the connection to its association, and refuse to read a PDU longer than
        MAX_PDU_RECEIVED (the connection closes)."""
        sock = event.assoc.dul.socket
        if sock is None:
            return
        with self._lock:
            pending = self._pending.get(sock.socket)
            if pending is not None:
                pending.assoc = weakref.ref(event.assoc)
        read = sock.recv

        def bounded_recv(nr_bytes: int) -> bytearray:
            if nr_bytes > MAX_PDU_RECEIVED:
                raise OSError(f"the peer sent a PDU of {nr_bytes} bytes; the limit is {MAX_PDU_RECEIVED}")
            return read(nr_bytes)

        sock.recv = bounded_recv

    def handlers(self) -> list[tuple[evt.EventType, Callable[[evt.Event], None]]]:
        return [(evt.EVT_CONN_OPEN, self.on_connection_open), (evt.EVT_REQUESTED, self.on_requested)]


class AdmittingServer(ThreadedAssociationServer):
    """pynetdicom's threaded server, asking an `Admission` before it takes each connection."""

    def __init__(self, *args: object, admission: Admission, **kwargs: object) -> None:
        self.admission = admission
        super().__init__(*args, **kwargs)

    def process_request(self, request: socket.socket, client_address: object) -> None:
        # An accepted socket blocks without limit: a peer that sends part of a PDU and then nothing held a
        # connection and two threads for ever. pynetdicom reads only when data is waiting, so this limits
        # a stall in the middle of a PDU (or of a send), never an idle association (network_timeout does).
        request.settimeout(self.ae.network_timeout)
        self.admission.opened(request, _host(client_address))
        super().process_request(request, client_address)

    def verify_request(self, request: object, client_address: object) -> bool:
        address = _host(client_address)
        if self.admission.may_connect(address):
            return True
        self.admission.report(
            Refusal(
                CONNECTION_LIMIT,
                f"{normal_ip(address)} holds too many connections that have not asked for an association",
                "",
                "",
                normal_ip(address),
            )
        )
        return False


@dataclass
class _Pending:
    ip: str
    since: float
    assoc: weakref.ref[Association] | None = None  # set once pynetdicom has built the association


_STARTUP_GRACE = 30.0  # seconds a connection counts before pynetdicom has built its association


def _host(client_address: object) -> str:
    return str(client_address[0]) if isinstance(client_address, tuple) else str(client_address)


def _socket_of(assoc: Association) -> socket.socket | None:
    return getattr(assoc.dul.socket, "socket", None)


def _address(assoc: Association) -> str:
    info = assoc.requestor.address_info
    return str(getattr(info, "address", "") or "")
