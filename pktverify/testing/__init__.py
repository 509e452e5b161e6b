"""Helpers for testing pktverify against the real kernel."""
