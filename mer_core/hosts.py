"""Loopback names and addresses: where the dashboard may bind without a token, and which Host headers
a loopback-bound dashboard answers (anything else is a DNS-rebinding page and gets 403).

Ground floor: the CLI (``mer dashboard``) and the dashboard's server both use it.
"""
from __future__ import annotations

import ipaddress

LOOPBACK_NAMES = ("localhost",)


def is_loopback(address: str) -> bool:
    """True for a bind address only this machine can reach: ``localhost``, 127.0.0.0/8, ``::1``."""
    address = (address or "").strip().rstrip(".").lower()
    if address in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def host_is_loopback(host: str | None) -> bool:
    """True when an HTTP ``Host`` header (``name[:port]``, ``[v6][:port]``) names a loopback name or address.

    ``localhost.`` (the fully qualified spelling) counts; a name that merely starts with
    ``localhost`` or ``127.0.0.1`` (``127.0.0.1.evil.example``) does not, and neither does an
    IPv4-mapped IPv6 address, which a browser never sends for the dashboard.
    """
    host = (host or "").strip().lower()
    if host.startswith("["):
        end = host.find("]")
        if end < 0 or (host[end + 1:] and not _is_port(host[end + 1:])):
            return False
        try:
            return ipaddress.IPv6Address(host[1:end]).is_loopback
        except ValueError:
            return False
    name, sep, port = host.partition(":")
    if sep and not _is_port(":" + port):
        return False  # a bare IPv6 address or a malformed port
    name = name[:-1] if name.endswith(".") else name
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.IPv4Address(name).is_loopback  # no ':' left, so never an IPv6 address
    except ValueError:
        return False


def _is_port(text: str) -> bool:
    return text.startswith(":") and text[1:].isdigit() and len(text) <= 6
