"""Model + packet → trace: matches, chain walks, NAT, conntrack, FIB and the hook pipeline."""
