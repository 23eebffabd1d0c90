"""Full-pipeline benchmark (issue 3): prints JSON, then a one-line summary.

T/R: envelopes/s of prescription chains (consultation, doctor-signed
prescription, review, dispense, delivery, claim: 11 envelopes each) committed
durably through the node with every rule on, over raw Ed25519 verifications/s
on every core, measured in the same run.
Usage: python bench/pipeline.py [CHAINS]
"""

import json
import sys

from medledger.bench_pipeline import pipeline

if __name__ == "__main__":
    chains = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    result = pipeline(chains=chains, log=lambda m: print(m, file=sys.stderr))
    print(json.dumps(result, indent=2))
    print(result["summary"])
