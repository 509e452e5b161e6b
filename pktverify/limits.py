"""The bounds on work and input that keep every command finite on adversarial input.

Each bound stops the command with one line that names it and the option that
raises it; nothing is ever silently truncated. The README's "Safety" section
lists them.  They are defined here, and imported by the modules that enforce
them, so that the command line can show them without importing those modules.
"""

from __future__ import annotations

__all__ = ["MAX_BRANCHES", "MAX_PATHS", "MAX_NODE_HOPS", "MAX_INPUT_BYTES", "MAX_YAML_BYTES", "MAX_YAML_DEPTH",
           "MAX_YAML_VALUES"]

MAX_BRANCHES = 100_000                  # outcomes of one packet through one node (--max-branches)
MAX_NODE_HOPS = 32                      # more node visits than this is a routing loop
MAX_PATHS = 10_000                      # paths of one flow across the cluster (--max-paths)
MAX_INPUT_BYTES = 512 * 1024 * 1024     # a 100k-rule kube-proxy dump is ~25 MB; kubectl JSON of 30k pods ~300 MB
MAX_YAML_BYTES = 32 * 1024 * 1024       # a cluster description of 3,000 pods is ~1 MB; PyYAML needs ~100x in memory
# A cluster description needs neither deep nesting nor many aliases, and an alias bomb
# ("billion laughs") is small as text but huge when expanded.
MAX_YAML_DEPTH = 64
MAX_YAML_VALUES = 2_000_000
