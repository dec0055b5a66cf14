"""Signals other apps subscribe to instead of being imported by transfers (it sits below them)."""

from django.dispatch import Signal

# Sent once a transfer's final state has committed (transfers.completion); kwargs: transfer_id.
transfer_ended = Signal()

# Sent inside the transaction that writes a transfer's final state and its 110104 event (transfers.completion),
# so what receivers write is true from the same moment (copies: instances stored become copies held);
# kwargs: transfer_id. A receiver that raises rolls the ending back: keep them small.
transfer_recorded = Signal()
