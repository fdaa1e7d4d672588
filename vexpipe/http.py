"""HTTP transport for providers: one urllib3 pool, TLS verified, proxies as curl reads them.

urllib3 does not read HTTPS_PROXY / NO_PROXY by itself; this module does, with
the standard library's parser of those variables (the same rules as curl for
the common cases: host suffixes, ``*``, ports). Plain ``http://`` base URLs are
refused unless the host is a loopback address (the test suite's server).

Failures become :class:`TransportError` with a code that becomes the record's
error code: ``timeout``, ``network`` (refused, reset, DNS, TLS) or
``bad_response`` (a body cut short or undecodable).
"""

from __future__ import annotations

import ipaddress
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3

from vexpipe import __version__

USER_AGENT = f"vexpipe/{__version__}"


class TransportError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class BaseURLError(ValueError):
    """The configured base URL is unusable (a configuration error, exit 78)."""


@dataclass
class Response:
    status: int
    headers: dict
    body: bytes


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise BaseURLError(f"base URL {url!r} is not an http(s) URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise BaseURLError(f"base URL {url!r}: plain http is only allowed to a loopback address")
    return url.rstrip("/")


class Transport:
    """Requests to one base URL through one connection pool (keep-alive, gzip)."""

    def __init__(self, base_url: str, connect_timeout: float = 10.0, read_timeout: float = 30.0,
                 max_connections: int = 8):
        self.base_url = check_base_url(base_url)
        parts = urlsplit(self.base_url)
        timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        common = {"timeout": timeout, "retries": False, "maxsize": max(1, max_connections), "block": False,
                  "headers": {"User-Agent": USER_AGENT, "Accept": "application/json",
                              "Accept-Encoding": "gzip"}}
        proxy = proxy_for(parts.scheme, parts.hostname or "")
        if proxy:
            self.pool: urllib3.PoolManager = urllib3.ProxyManager(proxy, **common)
        else:
            self.pool = urllib3.PoolManager(**common)

    def request(self, method: str, path: str, *, headers: dict, fields: dict | None = None) -> Response:
        """``fields`` go in the query string of a GET, form-encoded in the body of a POST."""
        url = self.base_url + path
        extra = {"encode_multipart": False} if method == "POST" else {}
        try:
            r = self.pool.request(method, url, headers=headers, fields=fields, redirect=False,
                                  preload_content=True, **extra)
        except urllib3.exceptions.NewConnectionError as e:
            # Refused, unreachable, DNS: urllib3 2 files it under ConnectTimeoutError too.
            raise TransportError("network", _brief(e)) from None
        except urllib3.exceptions.TimeoutError as e:
            raise TransportError("timeout", f"timed out ({type(e).__name__})") from None
        except urllib3.exceptions.DecodeError as e:
            raise TransportError("bad_response", f"undecodable body: {e}") from None
        except urllib3.exceptions.ProtocolError as e:
            # A reset or a body cut short before Content-Length was reached.
            cut = "IncompleteRead" in str(e) or "InvalidChunkLength" in str(e)
            raise TransportError("bad_response" if cut else "network", _brief(e)) from None
        except urllib3.exceptions.HTTPError as e:
            raise TransportError("network", _brief(e)) from None
        return Response(r.status, dict(r.headers), r.data)


def _brief(err: Exception) -> str:
    """A one-line reason without the URL's query (nothing secret is in it, but keep it short)."""
    text = str(err).split("\n")[0]
    return f"{type(err).__name__}: {text[:200]}"


def proxy_for(scheme: str, host: str) -> str | None:
    """The proxy HTTPS_PROXY / HTTP_PROXY (or lower case) name for this host, unless NO_PROXY excludes it."""
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(scheme)
    if not proxy:
        return None
    if urllib.request.proxy_bypass_environment(host, proxies):
        return None
    return proxy
