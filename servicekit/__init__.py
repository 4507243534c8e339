"""Plumbing shared by the services: settings sections, Kafka and MongoDB wiring, batch consumption, DLQ, ops.

Plumbing only: nothing here knows about incidents or reviews, and no ``services`` module is imported. Domain code
never imports this package.
"""
