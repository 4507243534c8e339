"""Pure follow-up logic: no storage, no transport, no clock reads."""
