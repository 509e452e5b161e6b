"""``pktverify diff``: which packets two rule sets of one node treat differently, exactly.

:mod:`.run` reads both rule sets onto one node (and, with a cluster, compares the invariants);
:mod:`.compare` finds the changed rules and compares one packet per cell; :mod:`.region` finds
the packets that may be treated differently and the boxes that cut them; :mod:`.cells` cuts the
cells within a work bound; :mod:`.result` holds what was found.
"""

from .cells import MAX_WORK
from .compare import MAX_CELLS, changed_rules, diff_rulesets
from .result import DiffClass, DiffResult
from .run import DiffRun, run_diff

__all__ = ["DiffClass", "DiffResult", "DiffRun", "MAX_CELLS", "MAX_WORK", "changed_rules", "diff_rulesets", "run_diff"]
