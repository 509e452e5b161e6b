"""Load: assemble nodes and clusters from their inputs (node and cluster loading, kubectl input with
its per-node dump folders, the model cache, YAML-or-kubectl detection). ``parse`` turns text into
model records; this stage decides which texts make a node and a cluster and fills in what a cluster
description leaves out (a node without dumps gets what ``generate`` writes)."""
