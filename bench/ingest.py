"""Ingest benchmark (issue 2): prints JSON, then a one-line summary.

T/R: envelopes/s durably committed through the node (library) and through
POST /v1/transactions (HTTP), over raw Ed25519 verifications/s on every core.
Usage: python bench/ingest.py [COUNT] [HTTP_COUNT]
"""

import json
import sys

from medledger.benchmarks import ingest

if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 40_000
    http_count = int(sys.argv[2]) if len(sys.argv) > 2 else 20_000
    result = ingest(count=count, http_count=http_count, log=lambda m: print(m, file=sys.stderr))
    print(json.dumps(result, indent=2))
    print(result["summary"])
