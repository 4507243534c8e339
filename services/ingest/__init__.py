"""Ingest: verifies, normalises and de-duplicates vendor incident events into ``IncidentClosed``."""
