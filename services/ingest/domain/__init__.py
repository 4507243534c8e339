"""Pure ingest logic: no Kafka, no HTTP, no clock reads."""
