"""Who is calling, and what each kind of caller may see and do.

Writes on the native API need no session: an envelope's signature already
says who did it. Everything else a caller may read, and every FHIR write the
node signs on a member's behalf, is decided here from a bearer credential.

Credentials (``medledger.node.credentials``) bind a token to a ledger member;
what the member *may do* is read here from world state at each request, so
revoking the member (or its key) on the ledger ends the credential at once,
and no node operator can grant a role the ledger did not.

The policy below is the one table the routes consult; ``docs/api.md`` shows it
and ``tests/api/test_api_access.py`` holds an independent copy written out by
hand, so a change here that nobody meant fails a test.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from medledger.api import problems
from medledger.api.fhir.outcome import is_fhir_path
from medledger.errors import AccessError, MedledgerError
from medledger.ledger.identity import ADMIN, AUDITOR, NODE, REGULATOR
from medledger.ledger.keys import SigningKey
from medledger.node.credentials import Credentials

# -- the roles a caller can have (DESIGN §2), derived from ledger state ----------------------------------------

ROLE_REGULATOR = "regulator"
ROLE_AUDITOR = "auditor"
ROLE_HOSPITAL = "hospital"
ROLE_PHARMACY = "pharmacy"
ROLE_INSURER = "insurer"
ROLE_PUBLIC = "public"
ROLES = (ROLE_REGULATOR, ROLE_AUDITOR, ROLE_HOSPITAL, ROLE_PHARMACY, ROLE_INSURER, ROLE_PUBLIC)

_EVERYONE = frozenset(ROLES)
_MEMBERS = _EVERYONE - {ROLE_PUBLIC}
_SUPERVISORS = frozenset({ROLE_REGULATOR, ROLE_AUDITOR})
_WRITERS = frozenset({ROLE_REGULATOR, ROLE_HOSPITAL, ROLE_PHARMACY, ROLE_INSURER})

#: permission -> roles allowed. Routes name a permission; scoping inside an allowed role (a hospital sees
#: its own alerts only) is done by the route and documented beside it.
POLICY: Mapping[str, frozenset[str]] = {
    # the signature on the envelope authenticates; anyone may carry a signed envelope to the node
    "transactions.submit": _EVERYONE,
    "transactions.read": _MEMBERS,
    "blocks.read": _MEMBERS,
    # a receipt holder (often a patient) must be able to check it without an account
    "proofs.read": _EVERYONE,
    "alerts.read": _MEMBERS,
    "registry.read": _MEMBERS,
    "trace.read": _MEMBERS,
    "stream.read": _SUPERVISORS,
    "public.read": _EVERYONE,
    "public.write": _EVERYONE,
    "health.read": _EVERYONE,
    "fhir.metadata": _EVERYONE,
    "fhir.read": _MEMBERS,
    "fhir.write": _WRITERS,
}

#: what a role sees within an allowed permission, for the docs (the routes implement it)
SCOPES: Mapping[str, str] = {
    "alerts.read": "hospitals and pharmacies: alerts about their own institution; insurers: CLAIM-MATCH alerts",
    "trace.read": "hospitals, pharmacies and insurers: prescriptions whose chain one of their members signed",
    "fhir.read": "hospitals, pharmacies and insurers: resources their own institution recorded",
}


@dataclass(frozen=True)
class Caller:
    """The party behind a request, as the ledger knows it now."""

    role: str
    member: str | None = None
    org: str | None = None
    #: the key the node signs FHIR writes with for this caller; None for read-only credentials
    key: SigningKey | None = None

    @property
    def supervisor(self) -> bool:
        """Regulators and auditors see every institution's records."""
        return self.role in _SUPERVISORS


PUBLIC = Caller(ROLE_PUBLIC)


def _unauthorised(message: str, code: str = "unauthorised") -> AccessError:
    return AccessError(message, code=code, status=401)


def role_of(member: Mapping[str, Any], institution: Mapping[str, Any] | None) -> str | None:
    """The caller role of an active ledger member, or None if the member's role earns no API access.

    Institution kind decides for institution members (a pharmacy's admin is a pharmacy); without an
    admitted institution the ledger role does (the demo hospital's admin is registered before its
    institution is admitted).
    """
    ledger_role = member.get("role")
    if ledger_role in (REGULATOR, NODE):
        return ROLE_REGULATOR
    if ledger_role == AUDITOR:
        return ROLE_AUDITOR
    kind = institution.get("kind") if institution is not None else None
    if kind == "pharmacy":
        return ROLE_PHARMACY
    if kind == "insurer" or ledger_role == "insurer":
        return ROLE_INSURER
    if kind in ("internet-hospital", "hospital", "clinic"):
        return ROLE_HOSPITAL
    if ledger_role == "pharmacist":
        return ROLE_PHARMACY
    if ledger_role in (ADMIN, "doctor", "gateway"):
        return ROLE_HOSPITAL
    return None


# -- resolving a request --------------------------------------------------------------------------------------

#: documents the scheme in /openapi.json; the token itself is checked by Access below
bearer_scheme = HTTPBearer(auto_error=False, description="a credential from `medledger credentials issue`")

StateGet = Callable[[str], Any]


class Access:
    """Turns a request's bearer token into a :class:`Caller` and enforces :data:`POLICY`."""

    def __init__(self, credentials: Credentials, get_state: StateGet) -> None:
        self.credentials = credentials
        self.get_state = get_state

    def caller(self, authorization: str | None) -> Caller:
        """Who sent ``authorization`` (None: no header, the public); a header that is sent must be valid."""
        if authorization is None:
            return PUBLIC
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorised("the Authorization header must be `Bearer <token>`", "bad-credentials")
        credential = self.credentials.lookup(token)
        if credential is None:
            raise _unauthorised("this token is not a credential of this node", "bad-credentials")
        member = self.get_state("member/" + credential.member)
        if not isinstance(member, dict):
            raise _unauthorised(
                f"the credential's member {credential.member!r} is not on the ledger", "bad-credentials"
            )
        if member.get("status") != "active":
            raise _unauthorised(
                f"member {credential.member!r} is {member.get('status')} on the ledger", "revoked-member"
            )
        org = member.get("org")
        institution = self.get_state("inst/" + org) if isinstance(org, str) else None
        role = role_of(member, institution if isinstance(institution, dict) else None)
        if role is None:
            raise AccessError(
                f"member {credential.member!r} has ledger role {member.get('role')!r}, which has no API access"
            )
        key = self.credentials.signing_key(credential)
        if key is not None:
            record = self.get_state("key/" + key.key_id)
            if not isinstance(record, dict) or record.get("member") != credential.member:
                raise AccessError(f"the credential's signing key is not a key of {credential.member!r} on the ledger")
            if record.get("status") != "active":
                raise AccessError(f"the credential's signing key is {record.get('status')} on the ledger")
        return Caller(role, credential.member, org if isinstance(org, str) else None, key)

    @staticmethod
    def check(permission: str, caller: Caller) -> Caller:
        """The caller, if ``permission`` allows their role; 401 (no credential) or 403 otherwise."""
        if caller.role not in POLICY[permission]:
            if caller.role == ROLE_PUBLIC:
                raise _unauthorised(
                    f"this route needs a member credential ({permission}); send `Authorization: Bearer <token>`"
                )
            raise AccessError(f"a {caller.role} may not use this route ({permission})")
        return caller


#: where :class:`Authenticate` leaves the resolved caller in the ASGI scope
CALLER_SCOPE_KEY = "medledger.caller"


class Authenticate:
    """ASGI middleware resolving every HTTP request's credential once, before routing.

    It runs for every request, whatever route (public ones, ``/healthz``, ``/metrics``,
    ``/docs``, FHIR, unknown paths) it is for, so "a request that carries an
    Authorization header must carry a valid credential" holds in one place:
    a client that sends a credential means to be someone, and serving it as the
    public would hide its bug (and file a complaint anonymously that it meant
    to sign). Requests without the header are the public; routes then decide
    with :func:`requires` what the caller may do.
    """

    def __init__(
        self,
        app: ASGIApp,
        access: Access,
        hook: problems.ProblemHook | None = None,
        operator_log: problems.OperatorLog | None = None,
    ) -> None:
        self.app = app
        self.access = access
        self.hook = hook
        self.operator_log = operator_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = [value for name, value in scope["headers"] if name == b"authorization"]
        try:
            if len(given) > 1:
                raise _unauthorised("send one Authorization header, not several", "bad-credentials")
            caller = (
                # the lookup reads ledger state (SQLite): off the event loop
                await anyio.to_thread.run_sync(self.access.caller, given[0].decode("latin-1"))
                if given
                else PUBLIC
            )
        except MedledgerError as exc:
            response = problems.error_response(
                exc, fhir=is_fhir_path(scope["path"]), hook=self.hook, operator_log=self.operator_log
            )
            await response(scope, receive, send)
            return
        scope[CALLER_SCOPE_KEY] = caller
        await self.app(scope, receive, send)


def requires(permission: str) -> Callable[..., Awaitable[Caller]]:
    """A FastAPI dependency: the caller :class:`Authenticate` resolved, if ``permission`` admits them.

    Module-level so route signatures can name it in annotations.
    """
    if permission not in POLICY:
        raise KeyError(f"no permission {permission!r} in access.POLICY")

    async def dependency(
        request: Request, _documented: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)]
    ) -> Caller:
        caller: Caller = request.scope[CALLER_SCOPE_KEY]
        return Access.check(permission, caller)

    return dependency


#: permission -> the routes that check it (for the docs table; the routes name their permission in code)
ROUTES: Mapping[str, str] = {
    "transactions.submit": "`POST /v1/transactions`",
    "transactions.read": "`GET /v1/transactions/{tx_id}`",
    "blocks.read": "`GET /v1/blocks/{height}`",
    "proofs.read": "`GET /v1/tree-head`, `GET /v1/proofs/*`",
    "alerts.read": "`GET /v1/alerts`",
    "registry.read": "`GET /v1/institutions`, `GET /v1/practitioners`",
    "trace.read": "`GET /v1/prescriptions/{rx_id}/trace`",
    "stream.read": "`GET /v1/stream`",
    "public.read": "`GET /v1/public/institutions`",
    "public.write": "`POST /v1/public/complaints`, `POST /v1/public/adverse-events`",
    "health.read": "`GET /healthz`, `GET /metrics`",
    "fhir.metadata": "`GET /fhir/metadata`",
    "fhir.read": "`GET /fhir/{Type}/{id}`, `GET /fhir/{Type}`",
    "fhir.write": "`POST /fhir`, `POST /fhir/{Type}` (the credential must carry a signing key)",
}


def policy_markdown() -> str:
    """The access table of ``docs/api.md``, generated from :data:`POLICY` so the two cannot drift."""
    lines = [
        "| routes | " + " | ".join(ROLES) + " | within an allowed role |",
        "|---|" + "---|" * len(ROLES) + "---|",
    ]
    for permission, allowed in POLICY.items():
        marks = " | ".join("yes" if role in allowed else "—" for role in ROLES)
        lines.append(f"| {ROUTES[permission]} | {marks} | {SCOPES.get(permission, '')} |")
    return "\n".join(lines) + "\n"
