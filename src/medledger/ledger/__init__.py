"""The ledger layer: canonical bytes, keys, envelopes, Merkle log, blocks, stores, verification. Knows nothing about medicine."""
