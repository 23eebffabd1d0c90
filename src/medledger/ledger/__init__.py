"""The ledger layer: canonical bytes, keys, envelopes, the Merkle log, blocks, stores, verification.

It knows nothing about medicine: transaction types are registered from above.
"""
