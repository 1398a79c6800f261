"""Breaker names for dependency targets: stable, bounded, and free of secrets."""

from __future__ import annotations

from urllib.parse import urlsplit


def redact_url(url: str) -> str:
    """``scheme://host:port/path`` of ``url``: no user, password, query or fragment.

    >>> redact_url("postgresql://app:s3cret@db.internal:5432/shop?sslmode=require")
    'postgresql://db.internal:5432/shop'
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    scheme = f"{parts.scheme}://" if parts.scheme else ""
    return f"{scheme}{netloc}{parts.path}"
