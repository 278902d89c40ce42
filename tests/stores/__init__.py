"""Store tests: one contract for every store, and proofs across processes."""
