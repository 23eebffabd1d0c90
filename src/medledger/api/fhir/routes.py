"""Mounting the facade on the API app: the read side and the write side, one call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any

from fastapi import FastAPI, Request

from medledger.api.fhir.reads import install_reads
from medledger.api.fhir.writes import install_writes
from medledger.ledger.receipt import Receipt
from medledger.node.node import Node


def install_fhir(
    app: FastAPI,
    node: Node,
    *,
    read_body: Callable[[Request, int], Awaitable[bytes]],
    receipts: Callable[[Future[list[Receipt]]], Awaitable[list[dict[str, Any]]]],
) -> None:
    """Add every ``/fhir`` route; the app's capped body reader and receipt waiting are reused."""
    install_reads(app, node)
    install_writes(app, node, read_body=read_body, receipts=receipts)
