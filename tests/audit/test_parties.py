"""Issue #19: arrival events (110107) showed From → To reversed in the IG console."""

from __future__ import annotations

from types import SimpleNamespace

from auditconsole.templatetags.audit_tags import parties


def test_an_import_reads_from_the_sender_to_the_trust_that_took_the_images_in():
    # Recorded at the receiving trust (trust), with the sender as the peer.
    assert parties(SimpleNamespace(event_id="110107", trust="R0A", peer_trust="R0B")) == "R0B → R0A"


def test_other_events_read_from_the_trust_holding_the_images():
    assert parties(SimpleNamespace(event_id="110102", trust="R0A", peer_trust="R0B")) == "R0A → R0B"
    assert parties(SimpleNamespace(event_id="110103", trust="R0A", peer_trust="")) == "R0A"
