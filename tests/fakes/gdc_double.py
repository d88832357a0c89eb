"""A local GDC API test double: a real HTTP server on 127.0.0.1 serving a data root in GDC layout.

It serves the files and records of a data root as written by ``gliofuse demo generate`` (or by a GDC
download): ``metadata/files_slides.json`` + ``metadata/files_rnaseq.json`` are the ``/files`` index,
``metadata/cases.json`` the ``/cases`` index, and ``slides/<file_name>`` / ``rnaseq/<file_id>/<file_name>``
the ``/data`` payloads. Implemented (docs: NCI-GDC ``Search_and_Retrieval.md``, ``Downloading_Files.md``):

* ``GET /status``;
* ``GET|POST /files`` and ``/cases``: ``filters`` (object or JSON string; ops ``= != < <= > >= in exclude
  excludeifany is not and or``; ``files.``/``cases.`` prefixes optional), ``fields`` (nested paths; ``id``
  always present), ``expand``, ``size``/``from`` (strings accepted), ``sort``, ``return_type=manifest``; the
  response envelope ``{"data": {"hits", "pagination": {count,total,size,from,sort,page,pages}}, "warnings"}``;
* ``GET /files/{id}``, ``GET /cases/{id}``: ``{"data": {...}, "warnings": {}}``;
* ``GET /data/{id}`` with ``Range: bytes=N-``, ``bytes=N-M``, ``bytes=-K`` (206 + ``Content-Range``; 416 past
  the end) and ``Content-Disposition: attachment; filename=...``; ``GET /data/{id1},{id2}`` and ``POST /data``
  (JSON ``{"ids": [...]}`` or form ``ids=..&ids=..``) return a ``.tar.gz`` (``?tarfile``: plain tar) with
  members ``<id>/<file_name>``;
* ``GET|POST /manifest``: the Data Transfer Tool manifest of the given ids.

Fault injection (``GdcDouble.faults``): cut the connection mid-file, answer 429 (with ``Retry-After``) or
500, report a wrong md5 in the metadata, corrupt the served bytes, report a hostile file name, require a token.

Example::

    with GdcDouble(Path("results/demo")) as gdc:
        client = GdcClient(api_url=gdc.url)

or from a shell: ``python -m tests.fakes.gdc_double --data-root results/demo --port 8765``.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import io
import json
import logging
import math
import tarfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)

DEFAULT_SIZE = 10
STATUS = {"commit": "0000000000000000000000000000000000000000", "data_release": "gliofuse GDC double",
          "status": "OK", "tag": "double", "version": 1}


class BadRequest(Exception):
    """A malformed request (answered with 400 and a ``{"message": ...}`` body)."""


# --- fault switches --------------------------------------------------------------------------------------

@dataclass
class Faults:
    """Fault-injection switches; each method arms a fault, ``clear`` disarms all. Thread-safe."""

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    cuts: dict[str, list[int | None]] = field(default_factory=dict)
    failures: list[list[Any]] = field(default_factory=list)
    wrong_md5: set[str] = field(default_factory=set)
    corrupt: dict[str, int] = field(default_factory=dict)
    hostile_names: dict[str, str] = field(default_factory=dict)

    def cut_mid_file(self, file_id: str, *, at_byte: int | None = None, times: int = 1) -> None:
        """The next ``times`` downloads of ``file_id`` send the headers, then the body up to absolute byte
        ``at_byte`` (default: half of the requested range) and close the connection."""
        with self._lock:
            self.cuts.setdefault(file_id, []).extend([at_byte] * times)

    def fail_next(self, path_prefix: str, status: int, *, times: int = 1, retry_after: str | float | None = None) -> None:
        """The next ``times`` requests whose path starts with ``path_prefix`` (e.g. ``/files``, ``/data``)
        are answered with ``status`` (and a ``Retry-After`` header if given)."""
        with self._lock:
            self.failures.append([path_prefix, int(status), int(times), retry_after])

    def report_wrong_md5(self, file_id: str) -> None:
        """``/files`` reports a wrong ``md5sum`` for ``file_id`` (the bytes stay right)."""
        with self._lock:
            self.wrong_md5.add(file_id)

    def corrupt_next(self, file_id: str, *, times: int = 1) -> None:
        """The next ``times`` downloads of ``file_id`` have one byte flipped (the size stays right)."""
        with self._lock:
            self.corrupt[file_id] = self.corrupt.get(file_id, 0) + times

    def hostile_name(self, file_id: str, name: str) -> None:
        """``/files`` and ``Content-Disposition`` report ``name`` as the file name of ``file_id``."""
        with self._lock:
            self.hostile_names[file_id] = name

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self.cuts.clear()
            self.failures.clear()
            self.wrong_md5.clear()
            self.corrupt.clear()
            self.hostile_names.clear()

    # internal: consume armed faults
    def _take_failure(self, path: str) -> tuple[int, str | float | None] | None:
        with self._lock:
            for f in self.failures:
                if path.startswith(f[0]) and f[2] > 0:
                    f[2] -= 1
                    return f[1], f[3]
        return None

    def _take_cut(self, file_id: str) -> tuple[bool, int | None]:
        with self._lock:
            q = self.cuts.get(file_id)
            if q:
                return True, q.pop(0)
        return False, None

    def _take_corrupt(self, file_id: str) -> bool:
        with self._lock:
            n = self.corrupt.get(file_id, 0)
            if n > 0:
                self.corrupt[file_id] = n - 1
                return True
        return False


@dataclass(frozen=True)
class RecordedRequest:
    """One request the double received (kept in memory for assertions)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


# --- query semantics -------------------------------------------------------------------------------------

def _strip_prefix(name: str, endpoint: str) -> str:
    return name.removeprefix(f"{endpoint}.")


def field_values(obj: Any, path: Sequence[str]) -> list[Any]:
    """Every value at a dotted ``path`` below ``obj``, traversing lists (missing → empty list)."""
    if isinstance(obj, list):
        out: list[Any] = []
        for o in obj:
            out += field_values(o, path)
        return out
    if not path:
        return [] if obj is None else [obj]
    if isinstance(obj, Mapping) and path[0] in obj:
        return field_values(obj[path[0]], path[1:])
    return []


def _eq(a: Any, b: Any) -> bool:
    return a == b or str(a) == str(b)


def _num(x: Any) -> float | None:
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


_COMPARE = {"<": float.__lt__, "<=": float.__le__, ">": float.__gt__, ">=": float.__ge__}


def match_filter(entity: Mapping[str, Any], flt: Mapping[str, Any] | None, *, endpoint: str) -> bool:
    """Whether ``entity`` satisfies a GDC filter object (None matches everything)."""
    if flt is None or flt == {}:
        return True
    if not isinstance(flt, Mapping) or "op" not in flt or "content" not in flt:
        raise BadRequest(f"filter must be an object with 'op' and 'content', got {json.dumps(flt)[:200]}")
    op = str(flt["op"]).lower()
    content = flt["content"]
    if op in ("and", "or"):
        if not isinstance(content, list):
            raise BadRequest(f"'{op}' needs a list of filters as content")
        results = (match_filter(entity, c, endpoint=endpoint) for c in content)
        return all(results) if op == "and" else any(results)
    if not isinstance(content, Mapping) or "field" not in content:
        raise BadRequest(f"'{op}' needs content {{'field': ..., 'value': ...}}")
    values = field_values(entity, _strip_prefix(str(content["field"]), endpoint).split("."))
    wanted = content.get("value")
    wanted_list = wanted if isinstance(wanted, list) else [wanted]
    hit = any(_eq(v, w) for v in values for w in wanted_list)
    if op in ("=", "in"):
        return hit
    if op in ("!=", "exclude", "excludeifany"):
        return not hit
    if op in _COMPARE:
        w = _num(wanted)
        if w is None:
            raise BadRequest(f"'{op}' needs a numeric value, got {wanted!r}")
        return any((n := _num(v)) is not None and _COMPARE[op](n, w) for v in values)
    if op == "is":
        return not values
    if op == "not":
        return bool(values)
    raise BadRequest(f"unknown filter operator {flt['op']!r}")


def _copy_path(src: Any, dst: dict[str, Any], parts: list[str]) -> None:
    if not isinstance(src, Mapping) or parts[0] not in src:
        return
    key, val = parts[0], src[parts[0]]
    if len(parts) == 1:
        dst[key] = copy.deepcopy(val)
    elif isinstance(val, list):
        lst = dst.get(key)
        if not isinstance(lst, list) or len(lst) != len(val):
            lst = dst[key] = [{} for _ in val]
        for s, d in zip(val, lst, strict=True):
            if isinstance(d, dict):
                _copy_path(s, d, parts[1:])
    elif isinstance(val, Mapping):
        sub = dst.setdefault(key, {})
        if isinstance(sub, dict):
            _copy_path(val, sub, parts[1:])


def project(entity: Mapping[str, Any], fields: Sequence[str], expand: Sequence[str], *, endpoint: str) -> dict[str, Any]:
    """The hit for ``entity``: ``id`` plus the requested (nested) fields and expanded groups.

    No fields and no expand: the whole record (the double's stand-in for the GDC default field set).
    """
    if not fields and not expand:
        return copy.deepcopy(dict(entity))
    out: dict[str, Any] = {"id": entity["id"]}
    for f in fields:
        _copy_path(entity, out, _strip_prefix(f, endpoint).split("."))
    for group in expand:
        g = _strip_prefix(group, endpoint)
        if g in entity:
            out[g] = copy.deepcopy(entity[g])
    return out


def _sort(hits: list[dict[str, Any]], sort: str, *, endpoint: str) -> list[dict[str, Any]]:
    for spec in reversed([s for s in sort.split(",") if s.strip()]):
        name, _, direction = spec.strip().partition(":")
        path = _strip_prefix(name, endpoint).split(".")

        def key(h: Mapping[str, Any], path: list[str] = path) -> tuple[int, str]:
            v = field_values(h, path)
            return (0, str(v[0])) if v else (1, "")

        hits = sorted(hits, key=key, reverse=direction.lower() == "desc")
    return hits


def _as_list(v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, list):
        return [str(x).strip() for x in v if str(x).strip()]
    return [s.strip() for s in str(v).split(",") if s.strip()]


def _as_int(v: Any, name: str, default: int) -> int:
    if v is None or v == "":
        return default
    try:
        n = int(v)
    except (TypeError, ValueError):
        raise BadRequest(f"'{name}' must be an integer, got {v!r}") from None
    if n < 0:
        raise BadRequest(f"'{name}' must be >= 0, got {n}")
    return n


def pagination(total: int, size: int, offset: int, count: int, sort: str) -> dict[str, Any]:
    """GDC pagination block: page = floor(from/size) + 1, pages = ceil(total/size)."""
    return {"count": count, "total": total, "size": size, "from": offset, "sort": sort,
            "page": offset // size + 1 if size else 1, "pages": math.ceil(total / size) if size else 1}


# --- the double --------------------------------------------------------------------------------------------

def _hits(path: Path) -> list[dict[str, Any]]:
    payload = json.loads(path.read_text())
    return payload["data"]["hits"] if isinstance(payload, dict) else payload


class GdcDouble:
    """Local GDC API server over a data root in GDC layout.

    Parameters
    ----------
    data_root : folder with ``metadata/{files_slides,files_rnaseq,cases}.json``, ``slides/`` and ``rnaseq/``.
    port : TCP port on 127.0.0.1; 0 picks a free one.
    require_token : if set, ``/data`` answers 403 unless the request carries ``X-Auth-Token: <it>``.
    """

    def __init__(self, data_root: Path, *, port: int = 0, require_token: str | None = None) -> None:
        self.data_root = Path(data_root)
        meta = self.data_root / "metadata"
        self.files: list[dict[str, Any]] = []
        self.paths: dict[str, Path] = {}
        for name, kind in (("files_slides.json", "slide"), ("files_rnaseq.json", "rnaseq")):
            for h in _hits(meta / name):
                fid = h.get("file_id") or h["id"]
                h = {**h, "id": fid}
                self.files.append(h)
                self.paths[fid] = (self.data_root / "slides" / h["file_name"] if kind == "slide"
                                   else self.data_root / "rnaseq" / fid / h["file_name"])
        self.cases = [{**c, "id": c.get("case_id") or c["id"]} for c in _hits(meta / "cases.json")]
        self.files_by_id = {f["id"]: f for f in self.files}
        self.cases_by_id = {c["id"]: c for c in self.cases}
        self.require_token = require_token
        self.faults = Faults()
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._server.daemon_threads = True
        self._server.double = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123``."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Self:
        """Serve in a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="gdc-double", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def count(self, method: str, path_prefix: str) -> int:
        """Number of recorded requests with ``method`` and a path starting with ``path_prefix``."""
        return sum(1 for r in self.requests if r.method == method and r.path.startswith(path_prefix))

    # -- views with faults applied --------------------------------------------------------------------------

    def file_record(self, fid: str) -> dict[str, Any]:
        rec = dict(self.files_by_id[fid])
        if fid in self.faults.hostile_names:
            rec["file_name"] = self.faults.hostile_names[fid]
        if fid in self.faults.wrong_md5:
            rec["md5sum"] = hashlib.md5(b"wrong:" + fid.encode()).hexdigest()
        return rec

    def records(self, endpoint: str) -> list[dict[str, Any]]:
        return [self.file_record(f["id"]) for f in self.files] if endpoint == "files" else self.cases

    def file_bytes(self, fid: str) -> bytes:
        data = self.paths[fid].read_bytes()
        if self.faults._take_corrupt(fid) and data:
            i = len(data) // 2
            data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
        return data

    def search(self, endpoint: str, params: Mapping[str, Any]) -> dict[str, Any]:
        flt = params.get("filters")
        if isinstance(flt, str):
            try:
                flt = json.loads(flt) if flt.strip() else None
            except json.JSONDecodeError as exc:
                raise BadRequest(f"filters is not valid JSON: {exc}") from None
        fields = _as_list(params.get("fields"))
        expand = _as_list(params.get("expand"))
        size = _as_int(params.get("size"), "size", DEFAULT_SIZE)
        offset = _as_int(params.get("from"), "from", 0)
        sort = params.get("sort") or ""
        sort = ",".join(sort) if isinstance(sort, list) else str(sort)
        fmt = str(params.get("format") or "JSON").upper()
        if fmt != "JSON":
            raise BadRequest(f"format {fmt} is not implemented by the GDC double (use JSON)")
        matched = [e for e in self.records(endpoint) if match_filter(e, flt, endpoint=endpoint)]
        if sort:
            matched = _sort(matched, sort, endpoint=endpoint)
        page = matched[offset:offset + size]
        hits = [project(e, fields, expand, endpoint=endpoint) for e in page]
        return {"data": {"hits": hits, "pagination": pagination(len(matched), size, offset, len(hits), sort)},
                "warnings": {}}

    def manifest_text(self, ids: Iterable[str]) -> str:
        lines = ["id\tfilename\tmd5\tsize\tstate"]
        for fid in ids:
            r = self.file_record(fid)
            lines.append(f"{fid}\t{r['file_name']}\t{r['md5sum']}\t{r['file_size']}\t{r.get('state', '')}")
        return "\n".join(lines) + "\n"

    def tar_bytes(self, ids: Sequence[str], *, gzip: bool) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz" if gzip else "w") as tar:
            for fid in ids:
                data = self.file_bytes(fid)
                info = tarfile.TarInfo(f"{fid}/{self.file_record(fid)['file_name']}")
                info.size = len(data)
                info.mtime = int(time.time())
                tar.addfile(info, io.BytesIO(data))
            manifest = self.manifest_text(ids).encode()
            info = tarfile.TarInfo("MANIFEST.txt")
            info.size = len(manifest)
            tar.addfile(info, io.BytesIO(manifest))
        return buf.getvalue()


# --- HTTP layer --------------------------------------------------------------------------------------------

def _parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """(start, end inclusive), None for no/ignored Range, or "unsatisfiable"."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    spec = header[len("bytes="):].strip()
    first, _, last = spec.partition("-")
    try:
        if first == "":
            n = int(last)
            if n <= 0:
                return "unsatisfiable"
            return max(0, size - n), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return "unsatisfiable"
    return start, min(end, size - 1)


class _Handler(BaseHTTPRequestHandler):
    server_version = "GdcDouble/1.0"
    protocol_version = "HTTP/1.0"  # one request per connection: a cut connection is unambiguous

    @property
    def double(self) -> GdcDouble:
        return self.server.double  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("gdc-double %s - %s", self.address_string(), format % args)

    # -- responses -------------------------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, *, ctype: str = "application/json",
              headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any, headers: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers=headers)

    def _error(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        self._json(status, {"message": message}, headers)

    # -- request parsing -----------------------------------------------------------------------------------

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _params(self, query: str, body: bytes) -> dict[str, Any]:
        params: dict[str, Any] = {k: (v[0] if len(v) == 1 else v)
                                  for k, v in parse_qs(query, keep_blank_values=True).items()}
        if body:
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype == "application/x-www-form-urlencoded":
                params.update({k: (v[0] if len(v) == 1 and k != "ids" else v)
                               for k, v in parse_qs(body.decode()).items()})
            else:
                try:
                    obj = json.loads(body)
                except json.JSONDecodeError as exc:
                    raise BadRequest(f"request body is not valid JSON: {exc}") from None
                if not isinstance(obj, dict):
                    raise BadRequest("request body must be a JSON object")
                params.update(obj)
        return params

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        if path.startswith("/v0/"):
            path = path[3:]
        body = self._body() if self.command == "POST" else b""
        d = self.double
        with d._lock:
            d.requests.append(RecordedRequest(self.command, path, parts.query, dict(self.headers.items()), body))
        failure = d.faults._take_failure(path)
        if failure is not None:
            status, retry_after = failure
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
            self._error(status, f"injected failure {status}", headers)
            return
        try:
            params = self._params(parts.query, body)
            self._route(path.rstrip("/") or "/", params)
        except BadRequest as exc:
            self._error(400, str(exc))
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _route(self, path: str, params: dict[str, Any]) -> None:
        d = self.double
        segs = [s for s in path.split("/") if s]
        if segs == ["status"]:
            self._json(200, STATUS)
        elif segs and segs[0] in ("files", "cases") and len(segs) <= 2:
            endpoint = segs[0]
            if len(segs) == 1:
                if endpoint == "files" and str(params.get("return_type", "")).lower() == "manifest":
                    found = d.search(endpoint, {**params, "size": len(d.files), "from": 0, "fields": "file_id"})
                    ids = [h["id"] for h in found["data"]["hits"]]
                    self._send(200, d.manifest_text(ids).encode(), ctype="text/tab-separated-values")
                else:
                    self._json(200, d.search(endpoint, params))
                return
            index = d.files_by_id if endpoint == "files" else d.cases_by_id
            if segs[1] not in index:
                self._error(404, f"{endpoint[:-1]} {segs[1]} not found")
                return
            rec = d.file_record(segs[1]) if endpoint == "files" else index[segs[1]]
            hit = project(rec, _as_list(params.get("fields")), _as_list(params.get("expand")), endpoint=endpoint)
            self._json(200, {"data": hit, "warnings": {}})
        elif segs and segs[0] in ("data", "manifest"):
            ids = _as_list(segs[1]) if len(segs) == 2 else _as_list(params.get("ids"))
            if not ids:
                raise BadRequest("no file ids given")
            unknown = [i for i in ids if i not in d.files_by_id]
            if unknown:
                self._error(404, f"file(s) not found: {','.join(unknown)}")
                return
            if segs[0] == "manifest":
                self._send(200, d.manifest_text(ids).encode(), ctype="text/tab-separated-values")
                return
            if d.require_token is not None and self.headers.get("X-Auth-Token") != d.require_token:
                self._error(403, "a valid X-Auth-Token is required for this file")
                return
            if len(ids) == 1:
                self._send_file(ids[0])
            else:
                gz = "tarfile" not in params
                name = time.strftime("gdc_download_%Y%m%d_%H%M%S") + (".tar.gz" if gz else ".tar")
                self._send(200, d.tar_bytes(ids, gzip=gz), ctype="application/x-tar" if not gz else "application/gzip",
                           headers={"Content-Disposition": f"attachment; filename={name}"})
        else:
            self._error(404, f"no such endpoint: {path}")

    def _send_file(self, fid: str) -> None:
        d = self.double
        data = d.file_bytes(fid)
        size = len(data)
        name = str(d.file_record(fid)["file_name"]).replace("\r", "\\r").replace("\n", "\\n")
        headers = {"Content-Disposition": f"attachment; filename={name}",
                   "Accept-Ranges": "bytes"}
        rng = _parse_range(self.headers.get("Range"), size)
        if rng == "unsatisfiable":
            self._error(416, f"range not satisfiable for {size} bytes", {"Content-Range": f"bytes */{size}"})
            return
        status, start, end = 200, 0, size - 1
        if isinstance(rng, tuple):
            status, (start, end) = 206, rng
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        body = data[start:end + 1]
        cut, at = d.faults._take_cut(fid)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if cut:
            keep = len(body) // 2 if at is None else max(0, min(len(body), at - start))
            self.wfile.write(body[:keep])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)  # socket.SHUT_RDWR: the client sees a premature end of body
            return
        self.wfile.write(body)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a data root until interrupted: ``python -m tests.fakes.gdc_double --data-root DIR``."""
    p = argparse.ArgumentParser(prog="python -m tests.fakes.gdc_double", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", required=True, help="folder in GDC layout (slides/, rnaseq/, metadata/)")
    p.add_argument("--port", type=int, default=8765)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    double = GdcDouble(Path(args.data_root), port=args.port)
    print(f"GDC double serving {args.data_root} at {double.url} (Ctrl-C to stop)", flush=True)
    try:
        double._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        double._server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
