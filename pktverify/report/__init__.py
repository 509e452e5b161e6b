"""Trace and findings → text, JSON (and pcapng, which is where scapy lives)."""
