"""``mer dashboard [--host 127.0.0.1] [--port 8501]``: start the dashboard with an explicit bind address.

The bind address and every setting of ``.streamlit/config.toml`` are given on
the command line, so they do not depend on which folder the server starts from
(Streamlit reads that file only from the working directory). Bound beyond
127.0.0.1 the server asks for an access token, printed here once, and shows
error details as type only; the command ``--print-command`` prints carries the
token, and the app refuses to start beyond loopback without one (dashboard.server).
"""
from __future__ import annotations

import argparse
import os
import secrets
import shlex
import subprocess
import sys
import urllib.parse

from mer_core.errors import ConfigError
from mer_core.hosts import is_loopback
from mer_core.paths import repo_root
from mer_core.streamlit_settings import settings_flags

__all__ = ["access_token", "cmd_dashboard", "is_loopback", "register", "streamlit_command"]

TOKEN_ENV = "MER_ACCESS_TOKEN"  # read by dashboard.access


def streamlit_command(host: str, port: int, *, public: bool) -> list[str]:
    """The server command: every setting of .streamlit/config.toml as a flag, so it holds from any folder."""
    overrides = {"server.address": host, "server.port": port, "server.headless": True,
                 "server.fileWatcherType": "none", "browser.gatherUsageStats": False}
    if public:
        overrides["client.showErrorDetails"] = "type"
    return [sys.executable, "-m", "streamlit", "run", str(repo_root() / "dashboard" / "app.py"),
            *settings_flags(overrides)]


def access_token(env: dict[str, str]) -> str:
    """The token a public server asks for: ``MER_ACCESS_TOKEN`` when it holds one, else a new one
    (an empty or blank variable would let everyone in, so it counts as none)."""
    return (env.get(TOKEN_ENV) or "").strip() or secrets.token_urlsafe(24)


def cmd_dashboard(args: argparse.Namespace) -> int:
    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: expected 1..65535")
    public = not is_loopback(args.host)
    env = dict(os.environ)
    cmd = streamlit_command(args.host, args.port, public=public)
    if public:
        token = env[TOKEN_ENV] = access_token(env)
        shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else f"[{args.host}]" if ":" in args.host else args.host
        print(f"MER Bench is bound to {args.host}: anyone who can reach port {args.port} needs this token.\n"
              f"  open http://{shown}:{args.port}/?token={urllib.parse.quote(token, safe='')}\n"
              "  (shown once; error details are shown as type only)", flush=True)
    else:
        env.pop(TOKEN_ENV, None)
        print(f"MER Bench on http://{args.host}:{args.port} (this machine only)", flush=True)
    if args.print_command:  # the token travels with the command: without it the server refuses to start
        prefix = f"{TOKEN_ENV}={shlex.quote(env[TOKEN_ENV])} " if public else ""
        print(prefix + shlex.join(cmd))
        return 0
    return subprocess.call(cmd, cwd=repo_root(), env=env)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="start the dashboard (127.0.0.1 by default; a token beyond it)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--print-command", action="store_true", help="print the server command instead of running it")
    p.set_defaults(handler=cmd_dashboard)
