"""A medledger peer: admit envelopes, order them, execute, commit, sign tree heads."""

from medledger.ledger.receipt import Receipt
from medledger.node.node import Node, NodeConfig

__all__ = ["Node", "NodeConfig", "Receipt"]
