"""The FHIR R4 facade at ``/fhir``: hospitals' systems speak FHIR, the ledger speaks envelopes.

Writes are mapped to the contracts' transaction types and signed with the
calling member's gateway key (``medledger.api.access``); reads and searches
are answered from a projection of committed blocks, so a resource the facade
shows is always one the ledger holds, whichever path wrote it.
"""
