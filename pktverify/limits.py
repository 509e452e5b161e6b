"""The bounds on work and input that keep every command finite on adversarial input.

Each bound stops the command with one line that names it and the option that
raises it; nothing is ever silently truncated. The README's "Safety" section
lists them.
"""

from __future__ import annotations

from .eval.cluster_walk import MAX_NODE_HOPS, MAX_PATHS
from .eval.state import MAX_BRANCHES, LimitExceeded
from .parse.cluster_yaml import MAX_DEPTH as MAX_YAML_DEPTH, MAX_EXPANDED_NODES as MAX_YAML_VALUES
from .parse.source import MAX_INPUT_BYTES

__all__ = ["MAX_BRANCHES", "MAX_PATHS", "MAX_NODE_HOPS", "MAX_INPUT_BYTES", "MAX_YAML_DEPTH", "MAX_YAML_VALUES",
           "LimitExceeded"]
