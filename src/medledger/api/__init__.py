"""HTTP API (FastAPI): submissions, receipts, blocks, tree heads, proofs, metrics."""

from medledger.api.app import create_app

__all__ = ["create_app"]
