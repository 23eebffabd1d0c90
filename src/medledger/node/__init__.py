"""A medledger peer: admit envelopes, order them, execute, commit, sign tree heads."""

from medledger.node.node import Node, NodeConfig, Receipt

__all__ = ["Node", "NodeConfig", "Receipt"]
