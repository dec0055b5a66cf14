"""Signals other apps subscribe to instead of being imported by transfers (it sits below them)."""

from django.dispatch import Signal

# Sent once a transfer's final state has committed (transfers.completion); kwargs: transfer_id.
transfer_ended = Signal()
