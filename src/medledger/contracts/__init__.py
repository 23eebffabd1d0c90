"""The regulatory rulebook: transaction types, world state, rules and alerts."""
