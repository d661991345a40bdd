"""The dashboard's server side: what Streamlit's ASGI server answers before any page runs.

``dashboard/app.py`` declares ``app = st.App(..., middleware=server.middleware())``, so every way
of starting it (``make demo``, ``mer dashboard``, ``streamlit run dashboard/app.py``) serves
through :class:`LoopbackHostGuard`: bound to a loopback address, the server answers only
requests whose ``Host`` header is a loopback name or address (``localhost``, 127.0.0.0/8,
``[::1]``), HTTP and WebSocket alike. Anything else is a page on another name that a DNS
rebinding pointed at 127.0.0.1: it gets 403 before Streamlit sees it. Bound beyond loopback,
the access token (:mod:`dashboard.access`) is what keeps strangers out, so without one the
server refuses to start (:func:`refuse_to_start_open`).

A page opened by its address (``/runs``, a shared ``/run?run=...`` link) is served Streamlit's
``index.html`` with one line added by :class:`BaseUrlHint`: where the server's root is. Without
it Streamlit's frontend first asks ``/runs/_stcore/health`` and ``/runs/_stcore/host-config``,
as if the page were the server's base path; both answer 404 (two console errors on every page
but the first, streamlit/streamlit#7074) before it tries the root.
"""
from __future__ import annotations

import sys
from typing import Any, Awaitable, Callable

from starlette.middleware import Middleware
from streamlit import config
from streamlit.config_option import ConfigOption

from dashboard.access import TOKEN_ENV, required_token
from mer_core.hosts import host_is_loopback, is_loopback
from mer_core.streamlit_settings import project_settings, settings_file

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def bind_address() -> str:
    """The address the server binds (Streamlit's ``server.address``; empty means every interface)."""
    return str(config.get_option("server.address") or "")


def _host(scope: Scope) -> str:
    for name, value in scope.get("headers") or ():
        if name == b"host":
            return value.decode("latin-1")
    return ""


def refusal(host: str, address: str, port: Any) -> str:
    """The 403 text: which Host was refused and which addresses the dashboard answers."""
    shown = "".join(c if c.isprintable() else "?" for c in host)[:200] or "(none)"
    return (f"MER Bench refused this request: Host {shown!r} is not this machine.\n"
            f"The dashboard is bound to {address} and answers only http://127.0.0.1:{port}/ or "
            f"http://localhost:{port}/. A page on another name that reaches it is a DNS-rebinding attempt.\n")


class LoopbackHostGuard:
    """ASGI middleware: on a loopback-bound server, 403 for any request whose Host is not loopback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            address = bind_address()
            host = _host(scope)
            if is_loopback(address) and not host_is_loopback(host):
                if scope["type"] == "websocket":
                    # closing before accepting: the server answers the upgrade with 403
                    await send({"type": "websocket.close", "code": 1008})
                    return
                port = (scope.get("server") or ("", ""))[1]
                body = refusal(host, address, port).encode("utf-8")
                await send({"type": "http.response.start", "status": 403, "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                    (b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store")]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


# first path segments of Streamlit's own routes: never a page, so their responses pass untouched
ASSET_ROOTS = frozenset({"_stcore", "static", "media", "component", "app"})


def page_depth(path: str, base_url_path: str = "") -> int:
    """Path segments of a page address beyond the server's base path: ``/runs`` 1, ``/`` 0; 0 for
    Streamlit's own routes (``/_stcore/health``, ``/static/...``) and files (``/favicon.png``)."""
    base = [p for p in base_url_path.split("/") if p]
    parts = [p for p in path.split("/") if p]
    if parts[:len(base)] != base:
        return 0
    parts = parts[len(base):]
    if not parts or parts[0] in ASSET_ROOTS or "." in parts[-1]:
        return 0
    return len(parts)


def base_url_script(depth: int) -> bytes:
    """A script for the page's ``<head>``: Streamlit's frontend reads ``window.__streamlit.BACKEND_BASE_URL``
    (its setting for embedding) and then connects to that root only, instead of probing the page's own
    path first. The root is the address without its last ``depth`` segments, so a proxy that serves the
    dashboard under a prefix keeps it."""
    return ("<script>(function(){var p=location.pathname.replace(/\\/+$/,'').split('/');"
            f"p.splice(p.length-{int(depth)},{int(depth)});window.__streamlit=Object.assign({{}},window.__streamlit,"
            "{BACKEND_BASE_URL:location.origin+p.join('/')+'/'});})();</script>").encode()


class BaseUrlHint:
    """ASGI middleware: the HTML of a page address gets :func:`base_url_script` as the first thing in its
    ``<head>`` (see the module docstring). The request goes on without ``Accept-Encoding`` so the page
    comes back uncompressed (a few kB); any other response passes untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        depth = 0
        if scope["type"] == "http" and scope.get("method") == "GET":
            depth = page_depth(scope.get("path", ""), _base_url_path())
        if not depth:
            await self.app(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope.get("headers") or () if k.lower() != b"accept-encoding"]
        held: dict[str, Any] = {}
        body: list[bytes] = []

        async def edit(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower(): v for k, v in message.get("headers", ())}
                if names.get(b"content-type", b"").startswith(b"text/html") and b"content-encoding" not in names:
                    held["start"] = message
                    return
            elif message["type"] == "http.response.body" and "start" in held:
                body.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                page = b"".join(body).replace(b"<head>", b"<head>" + base_url_script(depth), 1)
                start = held.pop("start")
                start = {**start, "headers": [(k, str(len(page)).encode() if k.lower() == b"content-length" else v)
                                              for k, v in start.get("headers", ())]}
                await send(start)
                await send({"type": "http.response.body", "body": page})
                return
            await send(message)

        await self.app({**scope, "headers": headers}, receive, edit)


def _base_url_path() -> str:
    return str(config.get_option("server.baseUrlPath") or "")


# fixed before the server imports the app: the socket is already bound as given (never re-read them)
BOUND_AT_START = ("server.address", "server.port", "server.headless")


def apply_project_settings() -> list[str]:
    """Apply the settings of the repository's ``.streamlit/config.toml`` that nobody gave (no flag,
    environment variable or config file of the working directory set them); returns their names.

    ``streamlit run /path/to/dashboard/app.py`` from another folder would otherwise send usage
    statistics and accept uploads beyond the limit. Runs on the server's import, before any
    session: the bind address and port are fixed by then, which is why ``mer dashboard`` and
    ``make demo`` pass everything as flags as well."""
    applied = []
    for name, value in project_settings().items():
        if name in BOUND_AT_START:
            continue
        try:
            given = config.get_where_defined(name) != ConfigOption.DEFAULT_DEFINITION
        except RuntimeError:  # not a Streamlit option (a newer file, an older Streamlit): left to Streamlit
            continue
        if not given:
            config.set_option(name, value, where_defined=str(settings_file()))
            applied.append(name)
    return applied


def refuse_to_start_open() -> None:
    """Exit before serving when bound beyond loopback without an access token (nobody would be asked for one).

    No ``--server.address`` at all binds every interface, so it counts as beyond loopback.
    """
    address = bind_address()
    if is_loopback(address) or required_token():
        return
    where = address or "every interface (0.0.0.0: no --server.address was given)"
    port = config.get_option("server.port")
    print(f"MER Bench refuses to start: bound to {where} without an access token, anyone who can reach port "
          f"{port} could use the dashboard. Start it with `mer dashboard` (127.0.0.1, this machine only), "
          f"with --server.address 127.0.0.1, or share it with `mer dashboard --host {address or '0.0.0.0'}`, "
          f"which sets {TOKEN_ENV} and prints the link (or set {TOKEN_ENV} to a secret yourself).",
          file=sys.stderr, flush=True)
    raise SystemExit(2)


def middleware() -> list[Any]:
    """The middleware ``st.App`` puts in front of Streamlit's own."""
    return [Middleware(LoopbackHostGuard), Middleware(BaseUrlHint)]
