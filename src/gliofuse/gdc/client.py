"""Minimal GDC API client: JSON queries with pagination, retries with exponential back-off, optional token.

The token (controlled-access data only; open data needs none) is read from an environment variable or a
file, sent as the ``X-Auth-Token`` header and never logged, printed or written anywhere: ``repr`` hides it
and error messages never include request headers.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from gliofuse import __version__
from gliofuse.errors import ConfigError, GliofuseError

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.gdc.cancer.gov"
TOKEN_HEADER = "X-Auth-Token"
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 600.0


class GdcError(GliofuseError, RuntimeError):
    """The GDC API answered with an error, or could not be reached after all retries."""


def load_token(*, token_env: str | None = "GDC_TOKEN", token_file: str | os.PathLike[str] | None = None,
               environ: Mapping[str, str] | None = None) -> str | None:
    """The GDC token from ``$token_env`` (first) or ``token_file``; None when neither is set.

    Raises
    ------
    ConfigError
        If ``token_file`` is given but missing or empty (the message names the path, never the content).
    """
    env = os.environ if environ is None else environ
    if token_env:
        value = env.get(token_env, "").strip()
        if value:
            return value
    if token_file:
        p = Path(token_file).expanduser()
        try:
            value = p.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"gdc.token_file {p} cannot be read ({exc.strerror}). Fix the path or unset it.") from None
        if not value:
            raise ConfigError(f"gdc.token_file {p} is empty. Download a token from the GDC portal or unset it.")
        return value
    return None


@dataclass
class RetryPolicy:
    """How often and how long to wait between attempts.

    Attempt ``k`` (0-based) that fails waits ``min(max_backoff_s, backoff_s * 2**k)`` seconds (with up to 10 %
    jitter), or the server's ``Retry-After`` for a 429/503 that sends one.
    """

    max_retries: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    jitter: float = 0.1

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), MAX_RETRY_AFTER_S)
        d = min(self.max_backoff_s, self.backoff_s * (2 ** attempt))
        return d * (1.0 + self.jitter * random.random())


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent or unparsable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_message(resp: requests.Response) -> str:
    try:
        body = resp.json()
        if isinstance(body, dict) and "message" in body:
            return str(body["message"])[:300]
    except ValueError:
        pass
    return resp.text[:300].strip()


@dataclass
class GdcClient:
    """Client for one GDC API base URL.

    Parameters
    ----------
    api_url : base URL, e.g. ``https://api.gdc.cancer.gov`` (a ``/v0`` suffix is fine).
    token : GDC authentication token or None (open-access data).
    retry : retry policy for 429, 5xx and connection errors.
    timeout_s : connect/read timeout of one request.
    sleep : the sleep function (tests replace it to record waits).
    """

    api_url: str = DEFAULT_API_URL
    token: str | None = field(default=None, repr=False)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_s: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    session: requests.Session = field(default_factory=requests.Session, repr=False)

    def __post_init__(self) -> None:
        self.api_url = self.api_url.rstrip("/")
        self.session.headers["User-Agent"] = f"gliofuse/{__version__}"
        if self.token:
            self.session.headers[TOKEN_HEADER] = self.token

    # -- transport ---------------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"{self.api_url}/{path.lstrip('/')}"

    def request(self, method: str, path: str, *, what: str, stream: bool = False,
                ok: tuple[int, ...] = (200,), **kwargs: Any) -> requests.Response:
        """Send a request, retrying on 429 (honouring Retry-After), 5xx and connection errors.

        ``ok`` lists the status codes returned to the caller; other 4xx raise ``GdcError`` at once.
        ``what`` names the request in messages (e.g. ``"file 0b4f..."``).
        """
        url = self.url(path)
        last = ""
        for attempt in range(self.retry.max_retries + 1):
            retry_after = None
            try:
                resp = self.session.request(method, url, stream=stream, timeout=self.timeout_s, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = f"{type(exc).__name__}"
            else:
                if resp.status_code in ok:
                    return resp
                msg = _error_message(resp)
                resp.close()
                if resp.status_code not in RETRY_STATUS:
                    hint = ""
                    if resp.status_code in (401, 403):
                        hint = " Controlled-access data need a token (gdc.token_env / gdc.token_file)."
                    raise GdcError(f"GDC {method} {url} ({what}) failed with HTTP {resp.status_code}: {msg}.{hint}")
                last = f"HTTP {resp.status_code}"
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            if attempt == self.retry.max_retries:
                break
            wait = self.retry.delay(attempt, retry_after)
            log.warning("GDC %s %s (%s): %s; retry %d/%d in %.1f s", method, url, what, last, attempt + 1,
                        self.retry.max_retries, wait)
            self.sleep(wait)
        raise GdcError(
            f"GDC {method} {url} ({what}) failed after {self.retry.max_retries + 1} attempts (last: {last}). "
            "Check the network and gdc.api_url, or raise gdc.max_retries."
        )

    # -- API -----------------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """``GET /status`` (API version and data release)."""
        return self.request("GET", "status", what="status").json()

    def query_page(self, endpoint: str, *, filters: Mapping[str, Any] | None, fields: list[str],
                   size: int, offset: int, expand: list[str] | None = None,
                   sort: str | None = None) -> dict[str, Any]:
        """One page of ``POST /<endpoint>``: the ``data`` part of the envelope (``hits`` + ``pagination``)."""
        body: dict[str, Any] = {"fields": ",".join(fields), "format": "JSON", "size": int(size), "from": int(offset)}
        if filters is not None:
            body["filters"] = dict(filters)
        if expand:
            body["expand"] = ",".join(expand)
        if sort:
            body["sort"] = sort
        resp = self.request("POST", endpoint, what=f"{endpoint} query from={offset}", json=body)
        try:
            payload = resp.json()
            data = payload["data"]
            hits = data["hits"]
            if "pagination" not in data:
                raise KeyError("pagination")
        except (ValueError, KeyError, TypeError):
            raise GdcError(
                f"GDC {endpoint} response is not a search envelope ({{'data': {{'hits', 'pagination'}}}}): "
                f"{resp.text[:200]!r}"
            ) from None
        if not isinstance(hits, list):
            raise GdcError(f"GDC {endpoint} response: data.hits is {type(hits).__name__}, expected a list.")
        for w in (payload.get("warnings") or {}).items():
            log.warning("GDC %s warning: %s", endpoint, w)
        return data

    def iter_hits(self, endpoint: str, *, filters: Mapping[str, Any] | None, fields: list[str],
                  page_size: int = 500, expand: list[str] | None = None,
                  sort: str | None = None) -> Iterator[dict[str, Any]]:
        """Every hit of a query, paging with ``from += size`` until ``from >= pagination.total``."""
        offset, total = 0, None
        while total is None or offset < total:
            data = self.query_page(endpoint, filters=filters, fields=fields, size=page_size, offset=offset,
                                   expand=expand, sort=sort)
            pag = data["pagination"]
            try:
                total = int(pag["total"])
            except (KeyError, TypeError, ValueError):
                raise GdcError(f"GDC {endpoint} response has no pagination.total: {json.dumps(pag)[:200]}") from None
            hits = data["hits"]
            yield from hits
            if not hits:
                if offset < total:
                    raise GdcError(f"GDC {endpoint}: empty page at from={offset} although total={total}.")
                break
            offset += len(hits)
            log.info("GDC %s: %d/%d hits", endpoint, min(offset, total), total)

    def query_all(self, endpoint: str, *, filters: Mapping[str, Any] | None, fields: list[str],
                  page_size: int = 500, expand: list[str] | None = None,
                  sort: str | None = None) -> list[dict[str, Any]]:
        """All hits of a query as a list (see ``iter_hits``)."""
        return list(self.iter_hits(endpoint, filters=filters, fields=fields, page_size=page_size,
                                   expand=expand, sort=sort))


def client_from_config(cfg: Any, *, environ: Mapping[str, str] | None = None) -> GdcClient:
    """A ``GdcClient`` for a ``GdcConfig`` (URL, retry policy, timeout and token from env var or file)."""
    token = load_token(token_env=cfg.token_env, token_file=cfg.token_file, environ=environ)
    retry = RetryPolicy(max_retries=cfg.max_retries, backoff_s=cfg.backoff_s, max_backoff_s=cfg.max_backoff_s)
    return GdcClient(api_url=cfg.api_url, token=token, retry=retry, timeout_s=cfg.timeout_s)
