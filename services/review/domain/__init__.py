"""Pure review logic: the record, the policy, the events. No storage, no transport."""
