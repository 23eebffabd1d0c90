"""medledger: a tamper-evident supervision ledger for Internet hospitals.

The public surface is small on purpose: :mod:`medledger.ledger` (bytes, keys,
Merkle log, stores, verification), :mod:`medledger.node` (the embedded peer),
:mod:`medledger.client` (a verifying light client) and :mod:`medledger.errors`
(one exception hierarchy, every error carrying a machine-readable code).
"""

__version__ = "0.1.0"
