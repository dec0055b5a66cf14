from __future__ import annotations

import socket

import pytest
from pynetdicom.sop_class import Verification

from dicomkit.association import new_ae, open_association
from dicomkit.sim.pacs import SimulatedPacs

from .conftest import PORTAL_AE, sim_config

pytestmark = pytest.mark.interop


def test_association_sockets_have_nagle_off(sim_pacs: SimulatedPacs) -> None:
    cfg = sim_config(sim_pacs)
    ae = new_ae(PORTAL_AE, cfg)
    ae.add_requested_context(Verification)
    with open_association(ae, cfg) as assoc:
        sock = assoc.dul.socket.socket
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def test_timeouts_come_from_the_gateway_config(sim_pacs: SimulatedPacs) -> None:
    cfg = sim_config(sim_pacs, connect_timeout=3, acse_timeout=4, dimse_timeout=5, network_timeout=6)
    ae = new_ae(PORTAL_AE, cfg)
    assert (ae.connection_timeout, ae.acse_timeout, ae.dimse_timeout, ae.network_timeout) == (3, 4, 5, 6)
