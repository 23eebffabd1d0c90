"""Headers every HTTP response carries, whatever produced it.

Responses carry member data (alerts, prescriptions' chains, FHIR resources),
so no browser may guess another media type for them (``nosniff``: a JSON body
read as HTML is a script injection) and no shared cache or browser history may
keep a copy (``no-store``). Adding them here, outermost, means a handler, a
problem, a refusal by the authentication middleware and even the framework's
last-resort 500 all get them without any route having to remember.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: (name, value); a response that sets one of these itself keeps its own value (the static docs
#: assets may be cached: they hold no member data)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
)


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in SECURITY_HEADERS if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
