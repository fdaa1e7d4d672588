"""The built-in VirusTotal API v3 provider: the HTTP side of a lookup.

Every request waits for the shared rate limiter first (``ctx.acquire``) and
carries the key only in the ``x-apikey`` header. Failures are retried with
exponential back-off and jitter, a bounded number of times (``retries``):
5xx answers, resets, timeouts, bodies cut short or not JSON; once requests
have failed after every retry three times in a row, later ones are tried once
until one succeeds (an outage must not cost the whole back-off per IOC). A 429 sets a
shared back-off for every process on the key (Retry-After when given) and is
retried too. 401 stops the run (exit 77). 404 NotFoundError is an answer: the
object is unknown. Nothing is ever POSTed unless ``--submit`` was given.
"""

from __future__ import annotations

import email.utils
import random
import time
from typing import Any
from urllib.parse import quote

import orjson

from vexpipe import vtmodel
from vexpipe.http import Transport, TransportError
from vexpipe.providers import Context, CredentialsRefused, Fetched, LookupFailed
from vexpipe.ratelimit import Cancelled

MAX_RETRY_AFTER = 600.0
MAX_BACKOFF = 60.0
MAX_429 = 8  # 429s tolerated per request before the record is marked rate_limited
# Requests that failed after every retry, in a row: the provider is down. Later
# requests are then tried once, not retried, until one succeeds, so an outage
# costs a run seconds per IOC instead of the whole back-off each.
DOWN_AFTER = 3


class VirusTotal:
    name = "virustotal"
    record_key = "vt"
    summary_version = vtmodel.SUMMARY_VERSION
    types = frozenset(vtmodel.COLLECTION)

    def __init__(self, config: Any, ctx: Context, connections: int = 16):
        self.config = config
        self.ctx = ctx
        self.transport = Transport(config.base_url, read_timeout=config.timeout, max_connections=connections)
        self.premium = config.tier == "premium"
        self._headers = {"x-apikey": config.api_key or ""}
        self._random = random.Random()
        self._failed_in_a_row = 0  # see DOWN_AFTER; shared by the worker threads

    # --- pure part -----------------------------------------------------------

    def summarize(self, raw: dict, found: bool) -> dict:
        return vtmodel.summarize(raw)

    def verdict(self, summary: dict) -> tuple[str, str]:
        return self.config.policy.judge(summary.get("stats"), summary.get("found", True))

    # --- fetching ------------------------------------------------------------

    def fetch(self, ioc_type: str, ioc: str, mode: str) -> Fetched:
        sent = [0]
        collection = vtmodel.COLLECTION[ioc_type]
        path = vtmodel.object_path(ioc_type, ioc)
        investigate = mode == "investigate"
        embedded = list(vtmodel.EMBEDDED.get(collection, ())) if investigate else []
        premium = list(vtmodel.PREMIUM.get(collection, ())) if investigate and self.premium else []
        unavailable: list[str] = []
        status, body = self._get(path, embedded + premium, sent)
        if status == 403 and premium:
            # The key is not (or no longer) premium: ask again without those.
            unavailable = premium
            status, body = self._get(path, embedded, sent)
        if status == 404:
            if ioc_type == "url" and self.ctx.submit:
                return self._submit(ioc, path, sent)
            return Fetched({"found": False, "error": _error_of(body)}, False, sent[0])
        data = self._data(status, body, sent)
        relationships = data.pop("relationships", None) or {}
        raw: dict[str, Any] = {"found": True, "object": data, "relationships": relationships}
        if investigate:
            for rel in vtmodel.SEPARATE.get(collection, ()):
                s, b = self._get(f"{path}/{rel}", None, sent, limit=vtmodel.LIST_LIMIT)
                if s == 200:
                    relationships[rel] = b
                elif s == 403:
                    unavailable.append(rel)
                elif s == 404:
                    relationships[rel] = {"data": []}
            behaviours = relationships.get("behaviours")
            if collection == "files" and isinstance(behaviours, dict) and behaviours.get("data"):
                # The descriptors name the sandboxes; their analysis dates need
                # the reports themselves, trimmed before they reach the cache.
                s, b = self._get(f"{path}/behaviours", None, sent, limit=vtmodel.SANDBOX_LIMIT)
                if s == 200:
                    relationships["behaviours"] = vtmodel.trim_behaviours(b)
                for part in ("behaviour_summary", "behaviour_mitre_trees"):
                    s, b = self._get(f"{path}/{part}", None, sent)
                    if s == 200:
                        raw[part] = b
        raw["unavailable"] = unavailable
        return Fetched(raw, True, sent[0])

    def _data(self, status: int, body: Any, sent: list[int]) -> dict:
        if status != 200:
            raise LookupFailed("bad_response", f"HTTP {status}: {_error_of(body) or 'unexpected answer'}", sent[0])
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise LookupFailed("bad_response", "answer has no data object", sent[0])
        return data

    def _submit(self, url: str, path: str, sent: list[int]) -> Fetched:
        """POST /urls, poll the analysis with back-off until completed (bounded), read the URL again."""
        status, body = self._request("POST", "/urls", sent, fields={"url": url})
        data = self._data(status, body, sent)
        analysis = str(data.get("id", ""))
        submitted = {"analysis_id": analysis, "status": "queued"}
        deadline = time.monotonic() + self.config.submit_wait
        delay = max(self.config.backoff * 2, 0.01)
        while True:
            s, b = self._get(f"/analyses/{quote(analysis, safe='')}", None, sent)
            if s == 200:
                attrs = (b.get("data") or {}).get("attributes") or {}
                submitted["status"] = attrs.get("status", submitted["status"])
                if submitted["status"] == "completed":
                    break
            if time.monotonic() + delay > deadline:
                return Fetched({"found": False, "submitted": submitted}, False, sent[0])
            self._sleep(delay)
            delay = min(delay * 2, 30.0)
        status, body = self._get(path, None, sent)
        if status == 404:
            return Fetched({"found": False, "submitted": submitted}, False, sent[0])
        data = self._data(status, body, sent)
        data.pop("relationships", None)
        return Fetched({"found": True, "object": data, "submitted": submitted}, True, sent[0])

    # --- one request, with retries -------------------------------------------

    def _get(self, path: str, relationships: list[str] | None, sent: list[int], **params: Any) -> tuple[int, Any]:
        fields = dict(params)
        if relationships:
            fields["relationships"] = ",".join(relationships)
        return self._request("GET", path, sent, fields=fields or None)

    def _request(self, method: str, path: str, sent: list[int], fields: dict | None = None) -> tuple[int, Any]:
        failures = rate_limited = 0
        while True:
            self.ctx.acquire()
            sent[0] += 1
            try:
                r = self.transport.request(method, path, headers=self._headers, fields=fields)
            except TransportError as e:
                failure = (e.code, str(e))
            else:
                if r.status == 401:
                    raise CredentialsRefused(f"VirusTotal refused the API key: {_error_of(_json(r.body))}")
                if r.status == 429:
                    rate_limited += 1
                    if rate_limited > MAX_429:
                        raise LookupFailed("rate_limited", f"HTTP 429 {_error_of(_json(r.body))}, "
                                           f"{rate_limited} times", sent[0])
                    wait = _retry_after(r.headers) or self._backoff(rate_limited)
                    self.ctx.penalize(wait)
                    continue
                if r.status >= 500:
                    failure = ("http_5xx", f"HTTP {r.status} {_error_of(_json(r.body))}".strip())
                else:
                    body = _json(r.body)
                    if body is not None and (r.status != 200 or isinstance(body.get("data"), (dict, list))):
                        self._failed_in_a_row = 0
                        return r.status, body
                    failure = ("bad_response", f"HTTP {r.status} with a body that is not the expected JSON")
            failures += 1
            if failures > self.config.retries or self._failed_in_a_row >= DOWN_AFTER:
                self._failed_in_a_row += 1
                raise LookupFailed(failure[0], f"{failure[1]} (after {failures} attempts)", sent[0])
            self._sleep(self._backoff(failures))

    def _backoff(self, attempt: int) -> float:
        """Exponential, capped, with jitter (so parallel clients do not retry in step)."""
        delay = min(self.config.backoff * 2 ** (attempt - 1), MAX_BACKOFF)
        return self._random.uniform(delay / 2, delay)

    def _sleep(self, seconds: float) -> None:
        if self.ctx.stop.wait(seconds):
            raise Cancelled()


def _json(body: bytes) -> dict | None:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _error_of(body: Any) -> str:
    """``Code: message`` from a VirusTotal error body, or ''."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return ""
    return f"{err.get('code', 'Error')}: {str(err.get('message', ''))[:200]}"


def _retry_after(headers: dict) -> float | None:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)
