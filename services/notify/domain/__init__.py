"""Notify's pure logic: what an event tells whom and why, when it may go, and how it reads. No I/O."""
