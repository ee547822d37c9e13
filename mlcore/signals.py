"""Signals other apps connect to, so mlcore never imports them."""

from django.dispatch import Signal

# Sent after the transaction that activated a version commits; kwargs: version.
# A domain app that stores predictions (finance sentiment) re-scores its history on it.
model_version_activated = Signal()
