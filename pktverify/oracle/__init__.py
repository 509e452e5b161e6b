"""The kernel oracle: pktverify checked against the real Linux kernel in network namespaces.

Not part of the users' testing kit (:mod:`pktverify.testing`): these modules build throwaway
labs (root, ``ip netns``, ``iptables-restore``) and compare what the kernel does with what
pktverify predicts.

* :mod:`.kernel_lab` and :mod:`.kernel_observe` — one node between a pod and a LAN; a probe
  loads a rule set, sends one packet and observes the kernel's verdict, NAT and interface.
* :mod:`.kernel_campaign` — random rule sets and packets, the kernel's answer against
  ``pktverify trace`` (the trace function is passed in: the CLI's ``selftest-kernel`` gives its own).
* :mod:`.cluster_lab`, :mod:`.cluster_agent` — a whole drawn cluster emulated in namespaces,
  an agent in each answering the flows.
* :mod:`.cluster_compare`, :mod:`.cluster_selftest`, :mod:`.cluster_campaign` — what the
  verifier predicts for each connection, judged against what the lab observed.
"""
