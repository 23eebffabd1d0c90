"""One error hierarchy for the whole package.

Every refusal medledger makes carries a stable machine-readable ``code`` (what
HTTP clients switch on, what ``application/problem+json`` reports as its
``type``), a sentence saying exactly why, and the HTTP status a gateway should
answer with. Callers catch :class:`MedledgerError` and nothing else.
"""

from __future__ import annotations

from typing import Any


class MedledgerError(Exception):
    """Base of every error medledger raises on purpose."""

    code: str = "medledger-error"
    status: int = 400

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.detail: dict[str, Any] = detail

    def to_problem(self) -> dict[str, Any]:
        """RFC 9457 problem details for this error."""
        problem: dict[str, Any] = {
            "type": f"https://medledger.dev/problems/{self.code}",
            "title": self.code.replace("-", " "),
            "status": self.status,
            "detail": self.message,
            "code": self.code,
        }
        problem.update(self.detail)
        return problem


class EncodingError(MedledgerError):
    """Bytes that are not the one canonical encoding of a valid value."""

    code = "malformed"
    status = 400


class SignatureError(MedledgerError):
    """A signature that does not verify under the key it names."""

    code = "bad-signature"
    status = 401


class ProofError(MedledgerError):
    """A Merkle inclusion or consistency proof that does not check out."""

    code = "bad-proof"
    status = 400


class TrustError(ProofError):
    """A node whose log the client cannot tie to the tree head it trusts (a state file's, or this session's).

    Raised by :meth:`medledger.client.Client.submit`; ``committed`` says whether
    the envelopes were written (``tx_ids`` then names them, so nobody submits
    them twice) and ``state_file`` which trust state the node failed to extend.
    """

    code = "untrusted-history"
    status = 409

    def __init__(self, message: str, *, committed: bool, **detail: Any) -> None:
        super().__init__(message, committed=committed, **detail)
        self.committed = committed


class AdmissionError(MedledgerError):
    """The gateway refuses an envelope before it is ever ordered."""

    code = "refused"
    status = 403


class NotFoundError(MedledgerError):
    """The thing asked for does not exist (yet) on this ledger."""

    code = "not-found"
    status = 404


class StoreError(MedledgerError):
    """The store cannot be opened or written as asked."""

    code = "store-error"
    status = 503


class VerificationError(MedledgerError):
    """A committed ledger fails re-verification.

    ``height`` and ``tx_id`` name the first place found bad, so an auditor can
    go straight to the evidence.
    """

    code = "verification-failed"
    status = 500

    def __init__(self, message: str, *, height: int | None = None, tx_id: str | None = None, **detail: Any) -> None:
        super().__init__(message, height=height, tx_id=tx_id, **detail)
        self.height = height
        self.tx_id = tx_id


class AccessError(MedledgerError):
    """A request without the credential a route needs (401), or whose role the route refuses (403)."""

    code = "forbidden"
    status = 403


class OperatorError(StoreError):
    """A fault of the node's own files or setup, the operator's to fix and not the client's: an unreadable
    signing-key or credentials file, a store that cannot be opened (503: retry once it is fixed).

    ``message`` is what a client is told: one sentence, no server path (paths and OS errors describe the
    host, not the request). ``cause`` is what the operator needs; the HTTP layer logs it once per distinct
    cause and quiet period, not once per request, so a broken file cannot flood the log.
    """

    code = "operator-fault"
    status = 503

    def __init__(self, message: str, *, cause: str, code: str | None = None, **detail: Any) -> None:
        super().__init__(message, code=code, **detail)
        self.cause = cause
