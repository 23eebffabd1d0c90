"""What this machine allows at best: verification on every core plus the durable insert, nothing else.

The node's ingest figures (bench/ingest.py) are read against this floor,
measured in the same run as R; see medledger.bench_floor for what it does and
does not do. Prints JSON, then a one-line summary.
Usage: python bench/floor.py [COUNT] [R_SECONDS]
"""

import json
import sys

from medledger.bench_floor import floor

if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 40_000
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    result = floor(count, seconds)
    print(json.dumps(result, indent=2))
    print(result["summary"])
