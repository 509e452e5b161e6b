"""Immutable values: addresses, packets, rules, chains, tables, routes and nodes."""
