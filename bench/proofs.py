"""Proof latency benchmark (issue 2): prints JSON, then a one-line summary.

Usage: python bench/proofs.py [SIZE]   (default 1,000,000 entries)
"""

import json
import sys

from medledger.benchmarks import proofs

if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    result = proofs(size=size, log=lambda m: print(m, file=sys.stderr))
    print(json.dumps(result, indent=2))
    print(result["summary"])
