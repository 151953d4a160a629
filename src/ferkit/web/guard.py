"""The app's outer layer, before any route: which hosts and pages may talk to the server, the security headers of
every response, and the upload budget (503 before a body is read).

- **Host**: DNS rebinding makes a browser send an attacker's host name to a local server, so a Host header must
  name the server: the bound address (with its port), or localhost / 127.0.0.1 / [::1] when bound to loopback.
  Bound to every interface (0.0.0.0 or ::), any IP address, localhost and this machine's own name are accepted;
  other names need ``--allowed-host``. Anything else gets 400.
- **Origin**: a page on another site can post a multipart form to 127.0.0.1 without a CORS preflight, so a request
  whose Origin is not the server's own gets 403 unless ``--allow-origin`` names it. Requests without an Origin
  (curl, scripts) are not affected.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import logging
import socket
from urllib.parse import urlsplit

from ferkit.web.limits import UploadBudget
from ferkit.web.uploads import MULTIPART_OVERHEAD

log = logging.getLogger("uvicorn.error")

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")

# The page loads its own script and stylesheet only; photos are shown from blob: URLs, the annotated image is a
# data: URL, the webcam is a MediaStream (CSP does not govern getUserMedia).
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
            "media-src 'self' data: blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# The API docs pages (ferkit.web.docs) run Swagger UI and ReDoc from this server's files. Their inline scripts
# are allowed one by one by hash; styles may be inline (ReDoc injects its own <style> elements); ReDoc's search
# runs in a worker made from a blob: URL.
DOCS_CSP = ("default-src 'self'; script-src 'self'{hashes}; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; font-src 'self'; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = ((b"x-frame-options", b"DENY"), (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"), (b"cross-origin-opener-policy", b"same-origin"),
                    (b"cross-origin-resource-policy", b"same-origin"),
                    (b"permissions-policy", b"camera=(self), microphone=(), geolocation=()"))


def _default_port(scheme: str) -> int:
    return 443 if scheme in ("https", "wss") else 80


def split_host(value: str, scheme: str = "http") -> tuple[str, int] | None:
    """(host name or address, port) of a Host header; None when it is malformed."""
    value = value.strip().lower()
    if not value or any(c.isspace() or c in "/\\@?#" for c in value):
        return None
    parts = urlsplit(f"{scheme}://{value}")
    try:
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").rstrip(".")
    return (host, port or _default_port(scheme)) if host else None


def split_origin(value: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin such as ``http://localhost:8000``; None for "null" or anything else."""
    parts = urlsplit(value.strip().lower())
    if parts.scheme not in ("http", "https") or parts.path not in ("", "/") or parts.query or parts.username:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").rstrip(".")
    return (parts.scheme, host, port or _default_port(parts.scheme)) if host else None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Guard:
    """ASGI middleware: Host and Origin checks, security headers, the upload budget."""

    def __init__(self, app, settings, budget: UploadBudget):
        self.app = app
        self.settings = settings
        self.budget = budget
        self.allow_origins = {split_origin(o) for o in settings.allow_origins}
        self.allowed_hosts = {h.strip().lower().rstrip(".") for h in settings.allowed_hosts}
        name = socket.gethostname().lower()
        self.own_names = {name, name.split(".")[0], name.split(".")[0] + ".local"}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        send = self._with_headers(scope, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        problem = self.check_host(scope, headers.get("host")) or self.check_origin(scope, headers)
        if problem:
            return await _json(send, *problem)
        size = self._body_size(headers)
        if not self.budget.reserve(size):
            return await _json(send, 503, "busy", "too many uploads are being received; try again in a moment",
                               {"retry-after": "2"})
        started = False

        async def tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:  # noqa: BLE001 - a bug answers JSON and logs one line, never a traceback
            log.error("%s %r failed: %s: %s", scope.get("method"), scope.get("path"), type(exc).__name__,
                      str(exc)[:300], exc_info=log.isEnabledFor(logging.DEBUG))
            if not started:
                await _json(send, 500, "server_error", f"internal error ({type(exc).__name__})")
        finally:
            self.budget.release(size)

    # ------------------------------------------------------------------------------------------ checks

    def _bound(self, scope) -> tuple[str, int | None]:
        server = scope.get("server") or (None, None)
        host = self.settings.host if self.settings.host is not None else (server[0] or "")
        return host.strip("[]").lower(), server[1]

    def check_host(self, scope, value: str | None):
        if value is None:
            return None  # HTTP/1.0 without a Host: not a browser, nothing to rebind
        bad = (400, "bad_host", f"this server does not answer to the host {value[:100]!r}; "
                                "start it with --allowed-host NAME to allow a name")
        parsed = split_host(value, scope.get("scheme", "http"))
        if parsed is None:
            return bad
        host, port = parsed
        if "*" in self.allowed_hosts or host in self.allowed_hosts or f"{host}:{port}" in self.allowed_hosts:
            return None
        bound, bound_port = self._bound(scope)
        port_ok = bound_port is None or port == bound_port
        if bound in WILDCARD_HOSTS:  # names other than these could be an attacker's, rebound to this machine
            return None if _is_ip(host) or host == "localhost" or host in self.own_names else bad
        if _is_loopback(bound):
            return None if host in LOOPBACK_NAMES and port_ok else bad
        return None if host == bound and port_ok else bad

    def check_origin(self, scope, headers: dict):
        value = headers.get("origin")
        if value is None:
            return None
        refused = (403, "forbidden_origin", f"requests from {value[:100]!r} are not allowed; start the server with "
                                            "--allow-origin ORIGIN to allow a page of another origin")
        origin = split_origin(value)
        if origin is None:
            return refused
        if origin in self.allow_origins:
            return None
        scheme = scope.get("scheme", "http")
        own = split_host(headers.get("host", ""), scheme)
        if own is not None and origin == (scheme, *own):
            return None
        bound, bound_port = self._bound(scope)
        if _is_loopback(bound) and origin[0] == "http" and origin[1] in LOOPBACK_NAMES and origin[2] == bound_port:
            return None
        return refused

    def _body_size(self, headers: dict) -> int:
        """Bytes reserved for this request's body: its Content-Length, or the largest upload when it is sent in
        chunks. A Content-Length over the limit reserves nothing: the route answers 413 without reading it."""
        limit = self.settings.max_upload_bytes + MULTIPART_OVERHEAD
        length = headers.get("content-length")
        if length is not None:
            return int(length) if length.isdigit() and int(length) <= limit else 0
        return limit if "transfer-encoding" in headers else 0

    def _with_headers(self, scope, send):
        csp = PAGE_CSP.encode()  # unless the response has its own (the API docs pages: docs_csp)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for key, value in ((b"content-security-policy", csp), *SECURITY_HEADERS):
                    if key not in present:
                        headers.append((key, value))
                message = {**message, "headers": headers}
            await send(message)

        return send_with_headers


def docs_csp(inline_scripts=()) -> str:
    """The Content-Security-Policy of an API docs page whose inline scripts are exactly these."""
    hashes = "".join(f" 'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
                     for s in inline_scripts)
    return DOCS_CSP.format(hashes=hashes)


async def _json(send, status: int, code: str, detail: str, headers: dict | None = None):
    body = json.dumps({"error": code, "detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
