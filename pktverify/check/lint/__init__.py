"""``pktverify lint``: checks on iptables-save files and nftables rulesets, each with a stable id
(``PV1xx``-``PV4xx``).

:mod:`.run` reads the files and runs the checks; :mod:`.registry` is the rule table (id, the
check that finds it, its documentation); one module per family finds them: :mod:`.structure`
(PV1xx, what ``iptables-restore`` refuses), :mod:`.nft_structure` (PV150-PV162, what ``nft -f``
refuses, with :mod:`.nft_graph`), :mod:`.reachability` (PV2xx, rules no packet
reaches, with :mod:`.cover_index`), :mod:`.kubernetes` (PV3xx in the rules alone),
:mod:`.cluster` (PV3xx against a cluster's facts, with :mod:`.reaching`) and
:mod:`.invariants` (PV4xx: the cluster verified with the proposed rules).
"""

from .finding import SEVERITIES, Check, Finding
from .registry import REGISTRY, select
from .run import LintResult, lint_files, lint_text

__all__ = ["Check", "Finding", "LintResult", "REGISTRY", "SEVERITIES", "lint_files", "lint_text", "select"]
