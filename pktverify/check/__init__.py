"""Check: invariants, lint and diff on loaded nodes and clusters, and the verify run that lint and diff share."""
