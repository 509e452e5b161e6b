"""What components would install on a node: kube-proxy rules (iptables mode), for tests and benchmarks."""
