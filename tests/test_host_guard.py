"""DNS rebinding: a dashboard bound to loopback answers only requests addressed to a loopback name.

A page on evil.example whose name the attacker re-points at 127.0.0.1 is same-origin with
the dashboard as far as the browser knows; the only trace is the Host header. The server
(started the way `make demo` and the browser tests start it) must answer such requests,
HTTP and WebSocket alike, with 403, and keep answering 127.0.0.1 / localhost / [::1].
"""
from __future__ import annotations

import base64
import http.client
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mer_core.hosts import host_is_loopback, is_loopback

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else (shutil.which("chromium") or "/usr/bin/chromium")  # Debian's first


@pytest.mark.parametrize("host, ok", [
    ("127.0.0.1:8501", True), ("127.0.0.1", True), ("127.8.9.10:80", True), ("localhost:8501", True),
    ("LOCALHOST", True), ("localhost.:8501", True), ("[::1]:8501", True), ("[::1]", True),
    ("evil.example:8501", False), ("evil.example", False), ("localhost.evil.example", False),
    ("127.0.0.1.evil.example:8501", False), ("0.0.0.0:8501", False), ("192.168.1.5:8501", False),
    ("[::ffff:7f00:1]:8501", False), ("", False), (None, False), ("[::1", False), ("::1", False),
])
def test_host_header_is_loopback(host, ok):
    assert host_is_loopback(host) is ok


def test_bind_address_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("") and not is_loopback("example.org")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A headless dashboard on 127.0.0.1 over an empty private cache: its port."""
    cache = tmp_path_factory.mktemp("host-guard-cache")
    env = {**os.environ, "MER_CACHE": str(cache)}
    for key in ("MER_STORE", "MER_DATASETS_TOML", "MER_ACCESS_TOKEN"):
        env.pop(key, None)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--server.fileWatcherType", "none"],
        env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if _get(port, "/_stcore/health", f"127.0.0.1:{port}")[0] == 200:
                break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("the Streamlit server did not start within 60 s")
    yield port
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _get(port: int, path: str, host: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", host)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _upgrade(port: int, host: str) -> bytes:
    """The status line a WebSocket upgrade of the app's stream gets."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               f"Sec-WebSocket-Protocol: streamlit\r\nOrigin: http://{host}\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request.encode())
        return s.recv(4096).split(b"\r\n", 1)[0]


def test_http_with_a_foreign_host_is_refused(served):
    for path in ("/", "/_stcore/health", "/_stcore/host-config", "/static/nothing.js"):
        status, body = _get(served, path, f"evil.example:{served}")
        assert status == 403, (path, status)
        assert b"evil.example" in body and b"127.0.0.1" in body
    assert _get(served, "/", f"127.0.0.1:{served}")[0] == 200
    assert _get(served, "/_stcore/health", f"localhost:{served}") == (200, b"ok")


def test_websocket_with_a_foreign_host_is_refused(served):
    assert b" 403 " in _upgrade(served, f"evil.example:{served}") + b" "
    assert b" 101 " in _upgrade(served, f"127.0.0.1:{served}") + b" "


@pytest.mark.browser
def test_a_rebound_page_in_chromium_cannot_reach_the_dashboard(served):
    """evil.example resolves to 127.0.0.1 in the browser; its page and its WebSocket are refused."""
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (make test installs it as root)")
    sync_api = pytest.importorskip("playwright.sync_api")
    port = served
    attack = f"""<html><body><pre id=out>running</pre><script>
      const out = document.getElementById('out'); const seen = [];
      fetch('/').then(r => seen.push('http ' + r.status)).catch(e => seen.push('http failed ' + e))
      .then(() => new Promise(done => {{
        const ws = new WebSocket('ws://evil.example:{port}/_stcore/stream', 'streamlit');
        ws.onopen = () => {{ seen.push('ws open'); ws.close(); done(); }};
        ws.onerror = () => {{ seen.push('ws refused'); done(); }};
      }})).then(() => {{ out.textContent = seen.join('; '); }});
    </script></body></html>"""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--host-resolver-rules=MAP evil.example 127.0.0.1",
            # a browser without Chromium's own Local Network Access checks, so the server's answer is what is seen
            "--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests"])
        try:
            page = browser.new_page()
            # the dashboard opened under the rebound name: the server's refusal, not the app
            resp = page.goto(f"http://evil.example:{port}/", wait_until="domcontentloaded")
            assert resp.status == 403
            assert "refused" in page.inner_text("body") and "evil.example" in page.inner_text("body")
            assert page.locator("[data-testid='stApp']").count() == 0
            # the attacker's page (served under that name before the rebinding) driving the dashboard
            page.route(f"http://evil.example:{port}/attack.html",
                       lambda route: route.fulfill(status=200, content_type="text/html", body=attack))
            page.goto(f"http://evil.example:{port}/attack.html")
            page.wait_for_function("document.getElementById('out').textContent !== 'running'", timeout=20000)
            assert page.inner_text("#out") == "http 403; ws refused"
            # the same browser on 127.0.0.1 still gets the dashboard
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']", timeout=90000)
        finally:
            browser.close()


# --- a page's address: Streamlit's frontend is told where the root is ---------------------------------
def test_a_page_address_is_served_with_the_servers_root_and_nothing_else_changes():
    """Without the hint the frontend probes /<page>/_stcore/health and host-config first: two 404s and two
    console errors on every page opened by its address (streamlit/streamlit#7074)."""
    import asyncio

    from dashboard.server import BaseUrlHint, page_depth

    html = b"<!DOCTYPE html><html><head><title>x</title></head><body></body></html>"
    seen: dict = {}

    async def inner(scope, receive, send):
        seen["headers"] = dict(scope["headers"])
        kind = b"text/html; charset=utf-8" if scope["path"] != "/_stcore/health" else b"text/plain"
        body = html if kind.startswith(b"text/html") else b"ok"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def get(path: str) -> tuple[dict, bytes]:
        sent: list = []

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": path, "headers": [(b"accept-encoding", b"gzip")]}
        asyncio.run(BaseUrlHint(inner)(scope, None, send))
        return dict(sent[0]["headers"]), b"".join(m.get("body", b"") for m in sent[1:])

    headers, body = get("/runs")
    assert body.startswith(b"<!DOCTYPE html><html><head><script>") and b"BACKEND_BASE_URL" in body
    assert b"p.splice(p.length-1,1)" in body and int(headers[b"content-length"]) == len(body)
    assert b"accept-encoding" not in seen["headers"]  # the page comes back uncompressed, to be edited
    for path in ("/", "/_stcore/health"):
        headers, body = get(path)
        assert body in (html, b"ok") and seen["headers"][b"accept-encoding"] == b"gzip"
    assert [page_depth(p) for p in ("/", "/runs", "/run/", "/static/js/a.js", "/favicon.png", "/media/x")] == \
        [0, 1, 1, 0, 0, 0]
    assert page_depth("/mer/runs", "mer") == 1 and page_depth("/mer", "/mer/") == 0


def test_the_served_page_carries_the_hint(served):
    status, body = _get(served, "/runs", f"127.0.0.1:{served}")
    assert status == 200 and b"<head><script>" in body and b"BACKEND_BASE_URL" in body
