"""The agent's HTTP service over `ovfstore.storage`, built by `create_app(config)` and served by
`ovfstore.agent.server` (one thread per connection, so storage calls simply block their own thread).

Storage errors are translated into HTTP once, here, as `{"error": code, "message": ...}` bodies; the
client maps them back to its exception hierarchy (docs/AGENT.md).
"""

from __future__ import annotations

import base64
import hmac
import logging
import re
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from typing import Any, TypeVar
from urllib.parse import unquote

from ovfstore.agent.config import AgentConfig
from ovfstore.agent.protocol import EXPECTED_DIGEST_HEADER, SHA256_HEX
from ovfstore.agent.server import (
    ClientGone,
    Handler,
    HTTPError,
    Request,
    Response,
    error_response,
    json_response,
)
from ovfstore.storage import errors
from ovfstore.storage.backend import Backend
from ovfstore.storage.domain import FileDomain, VolumeInfo, check_uuid, find_domains
from ovfstore.storage.metadata import DomainMetadata
from ovfstore.storage.volumeio import read_views, write_from

log = logging.getLogger(__name__)

T = TypeVar("T")

_STATUS: list[tuple[type[errors.StorageError], int]] = [
    (errors.PathOutsideRoots, 403),
    (errors.InvalidArgument, 400),
    (errors.NotFound, 404),
    (errors.AlreadyExists, 409),
    (errors.WrongPool, 409),
    (errors.VolumeBusy, 409),
    (errors.InvalidMetadata, 422),
    (errors.CapacityExceeded, 413),
    (errors.IncompleteTransfer, 400),
    (errors.DigestMismatch, 409),
]

#: Buffers an upload cycles through (of `AgentConfig.buffer_size` each): one filling from the network,
#: the others hashed and written meanwhile.
RING = 4


def _translate(e: Exception) -> Response:
    if isinstance(e, errors.StorageError):
        status = next((s for cls, s in _STATUS if isinstance(e, cls)), 500)
        return error_response(status, e.code, str(e))
    if isinstance(e, OSError):
        log.exception("storage I/O failed")
        return error_response(500, "io_error", f"storage I/O failed: {e}; check the storage and the agent's log")
    log.exception("unexpected failure")
    return error_response(500, "internal_error", f"the agent failed unexpectedly: {e!r}; see the agent's log")


def _domain_json(domain: FileDomain, meta: DomainMetadata) -> dict[str, Any]:
    return {
        "id": domain.sd_id,
        "path": domain.path,
        "class": meta.domain_class,
        "pool_id": meta.pool_id or None,
        "role": meta.role,
        "type": meta.storage_type,
        "version": meta.version,
        "description": meta.description,
        "checksum": str(meta.checksum),
        "metadata": dict(meta.values),
    }


def _volume_json(info: VolumeInfo) -> dict[str, Any]:
    # The `.meta` keys as VDSM writes them, so the engine reads the same names the format defines.
    return {
        "image": info.image,
        "volume": info.volume,
        "apparent_size": info.apparent_size,
        "actual_size": info.actual_size,
        "meta": info.meta.to_dict(),
    }


_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


def _parse_range(header: str, size: int) -> tuple[int, int]:
    """(offset, length) of a single `Range`; multiple ranges are refused, the engine never asks them."""
    m = _RANGE.match(header.strip())
    if not m or (not m[1] and not m[2]):
        raise errors.InvalidArgument(f"Range {header!r} is not 'bytes=first-last' with one range")
    if not m[1]:
        length = min(int(m[2]), size)
        return size - length, length
    first = int(m[1])
    last = int(m[2]) if m[2] else size - 1
    if first > last or last >= size:
        raise errors.InvalidArgument(f"Range {header!r} is outside the volume of {size} bytes")
    return first, last - first + 1


class _Router:
    """Paths with `{name}` segments to handlers, by method."""

    def __init__(self) -> None:
        self._routes: list[tuple[re.Pattern[str], dict[str, Handler]]] = []

    def add(self, method: str, path: str, handler: Handler) -> None:
        pattern = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$")
        for existing, methods in self._routes:
            if existing.pattern == pattern.pattern:
                methods[method] = handler
                return
        self._routes.append((pattern, {method: handler}))

    def find(self, request: Request) -> Handler:
        for pattern, methods in self._routes:
            m = pattern.match(request.path)
            if m:
                if request.method not in methods:
                    allowed = ", ".join(sorted(methods))
                    raise HTTPError(405, "method_not_allowed", f"{request.path} takes {allowed}", {"Allow": allowed})
                request.params = {k: unquote(v) for k, v in m.groupdict().items()}
                return methods[request.method]
        raise HTTPError(404, "not_found", f"no such endpoint: {request.path}; see docs/AGENT.md")


def create_app(config: AgentConfig) -> Handler:
    """The agent as one request handler: credential check, routing, storage errors made answers."""
    roots = config.roots
    expected = f"Bearer {config.secret}".encode()
    router = _Router()

    def app(request: Request) -> Response | None:
        given = request.headers.get("authorization", "").encode("latin-1")
        if not hmac.compare_digest(given, expected):
            return error_response(
                401, "unauthenticated", "missing or wrong credential: send 'Authorization: Bearer <secret>'"
            )
        request.authenticated = True
        request.refuse_chunked()
        handler = router.find(request)
        try:
            return handler(request)
        except (HTTPError, ClientGone):
            raise
        except Exception as e:
            if request.started:
                raise OSError(f"failed after the answer started: {e}") from e
            return _translate(e)

    def body(request: Request) -> dict[str, Any]:
        data = request.json()
        if not isinstance(data, dict):
            raise errors.InvalidArgument("the request body must be a JSON object")
        return data

    def field(data: dict[str, Any], name: str, kind: type[T], default: T | None = None) -> T:
        value = data.get(name, default)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise errors.InvalidArgument(f"field {name!r} must be a {kind.__name__}, got {value!r}")
        return value

    def domain_of(request: Request) -> FileDomain:
        return FileDomain.find(roots, request.params["sd"])

    def ids(request: Request) -> tuple[FileDomain, str, str]:
        domain = domain_of(request)
        return domain, check_uuid(request.params["img"], "image id"), request.params["vol"]

    def health(request: Request) -> Response:
        return json_response({"status": "ok", "roots": list(roots)})

    def list_domains(request: Request) -> Response:
        path = request.query.get("path")
        domains = [FileDomain(path, roots)] if path else [FileDomain(p, roots) for p in find_domains(roots)]
        return json_response([_domain_json(d, d.metadata()) for d in domains])

    def create_domain(request: Request) -> Response:
        data = body(request)
        domain = FileDomain.create(
            roots,
            field(data, "parent", str, roots[0]),
            field(data, "id", str),
            field(data, "description", str, ""),
            field(data, "type", str, "LOCALFS"),
            field(data, "class", str, "Data"),
            field(data, "remote_path", str, ""),
        )
        return json_response(_domain_json(domain, domain.metadata()), 201)

    def domain_info(request: Request) -> Response:
        domain = domain_of(request)
        return json_response(_domain_json(domain, domain.metadata()))

    def attach(request: Request) -> Response:
        data = body(request)
        domain = domain_of(request)
        meta = domain.attach(field(data, "pool_id", str), field(data, "master", bool, False))
        return json_response(_domain_json(domain, meta))

    def detach(request: Request) -> Response:
        data = body(request)
        domain = domain_of(request)
        meta = domain.detach(field(data, "pool_id", str), field(data, "force", bool, False))
        return json_response(_domain_json(domain, meta))

    def list_images(request: Request) -> Response:
        return json_response(domain_of(request).images())

    def list_volumes(request: Request) -> Response:
        domain = domain_of(request)
        img = request.params.get("img")
        infos = domain.volumes(check_uuid(img, "image id")) if img else domain.all_volumes()
        return json_response([_volume_json(v) for v in infos])

    def create_volume(request: Request) -> Response:
        data = body(request)
        domain = domain_of(request)
        parent = data.get("parent")
        if parent is not None and not isinstance(parent, str):
            raise errors.InvalidArgument(f"field 'parent' must be a volume id or null, got {parent!r}")
        info = domain.create_volume(
            field(data, "image", str),
            field(data, "volume", str),
            field(data, "capacity", int),
            field(data, "format", str, "RAW"),
            field(data, "type", str, "SPARSE"),
            field(data, "disk_type", str, "DATA"),
            field(data, "description", str, ""),
            parent,
        )
        return json_response(_volume_json(info), 201)

    def volume_info(request: Request) -> Response:
        domain, img, vol = ids(request)
        return json_response(_volume_json(domain.volume_info(img, vol)))

    def set_description(request: Request) -> Response:
        data = body(request)
        domain, img, vol = ids(request)
        return json_response(_volume_json(domain.set_description(img, vol, field(data, "description", str))))

    def delete_image(request: Request) -> Response:
        domain = domain_of(request)
        domain.delete_image(check_uuid(request.params["img"], "image id"))
        return Response(204)

    def legacy_ovfs(request: Request) -> Response:
        ovfs = domain_of(request).legacy_ovfs()
        return json_response({vm: base64.b64encode(data).decode() for vm, data in ovfs.items()})

    def upload(request: Request) -> Response:
        """Write the body into the volume. With `X-Expected-SHA256`, the upload succeeds only if the bytes
        written have that digest; otherwise the volume is left ILLEGAL, as after a broken upload."""
        length = request.content_length
        if length is None:
            return error_response(411, "length_required", "send Content-Length with the exact number of bytes to write")
        expected = request.headers.get(EXPECTED_DIGEST_HEADER.lower())
        if expected is not None:
            if not SHA256_HEX.fullmatch(expected):
                raise errors.InvalidArgument(
                    f"{EXPECTED_DIGEST_HEADER} must be 64 hexadecimal digits, not {expected!r}"
                )
            expected = expected.lower()  # as hexdigest() writes it
        domain, img, vol = ids(request)
        with ExitStack() as stack:
            info = stack.enter_context(domain.volume_locked(img, vol))
            if info.meta.format != "RAW":
                raise errors.InvalidArgument(
                    f"volume {vol} is {info.meta.format}; uploads write raw bytes and only go to RAW volumes"
                )
            if length > info.meta.capacity:
                raise errors.CapacityExceeded(
                    f"{length} bytes do not fit volume {vol} of {info.meta.capacity} bytes; send at most "
                    f"{info.meta.capacity} bytes"
                )
            # ILLEGAL until the data is durable: an agent killed mid-write leaves the volume marked, and
            # the engine never trusts its content (docs/AGENT.md, "Interrupted uploads").
            domain.write_volume_meta(img, vol, replace(info.meta, legality="ILLEGAL"))
            backend = stack.enter_context(Backend(domain.volume_path(img, vol), True, config.direct_io))
            conn = request.connection
            try:
                result = write_from(
                    request.readinto, backend, length, info.meta.capacity, conn.buffers(RING), *conn.workers()
                )
            except ClientGone as e:
                raise errors.IncompleteTransfer(
                    f"the client went away before sending all {length} bytes ({e}); the volume is marked "
                    "ILLEGAL, send it again"
                ) from e
            if expected is not None and result.sha256 != expected:
                raise errors.DigestMismatch(
                    f"the {length} bytes written have SHA-256 {result.sha256}, not the expected {expected}; "
                    f"volume {vol} is left ILLEGAL: send the bytes again, or the digest of what is sent"
                )
            domain.write_volume_meta(img, vol, replace(info.meta, legality="LEGAL"))
        return json_response({"size": result.size, "sha256": result.sha256})

    def copy(request: Request) -> Response:
        """Copy the first `length` bytes of another volume of the domain into this one, as an upload of
        them would: the target is locked, ILLEGAL until its data is durable, and its SHA-256 computed on
        the way. The caller gives the SHA-256 it verified for the source (the engine, after writing its
        first OVF store), and the copy succeeds only if the bytes written have it: a store is never
        copied from a source that changed or was damaged."""
        data = body(request)
        domain, img, vol = ids(request)
        src_img = check_uuid(field(data, "image", str), "source image id")
        src_vol = check_uuid(field(data, "volume", str), "source volume id")
        length = field(data, "length", int)
        expected = field(data, "sha256", str)
        if (src_img, src_vol) == (img, vol):
            raise errors.InvalidArgument("a volume cannot be copied onto itself")
        with ExitStack() as stack:
            source = stack.enter_context(domain.volume_locked(src_img, src_vol, exclusive=False))
            info = stack.enter_context(domain.volume_locked(img, vol))
            if source.meta.legality != "LEGAL":
                raise errors.InvalidArgument(f"source volume {src_vol} is {source.meta.legality}; copy a complete one")
            if info.meta.format != "RAW" or source.meta.format != "RAW":
                raise errors.InvalidArgument("copies go between RAW volumes only")
            if length > info.meta.capacity:
                raise errors.CapacityExceeded(f"{length} bytes do not fit volume {vol} of {info.meta.capacity} bytes")
            if not 0 <= length <= source.meta.capacity:
                raise errors.InvalidArgument(
                    f"cannot copy {length} bytes from volume {src_vol} of {source.meta.capacity} bytes"
                )
            domain.write_volume_meta(img, vol, replace(info.meta, legality="ILLEGAL"))
            reader = stack.enter_context(Backend(domain.volume_path(src_img, src_vol), False, config.direct_io))
            writer = stack.enter_context(Backend(domain.volume_path(img, vol), True, config.direct_io))
            conn = request.connection
            buffers = conn.buffers(RING + 1)
            views = read_views(reader, 0, length, buffers[RING])
            pending = memoryview(b"")

            def readinto(target: memoryview) -> int:
                nonlocal pending
                if not pending:
                    pending = next(views, memoryview(b""))
                n = min(len(target), len(pending))
                target[:n] = pending[:n]
                pending = pending[n:]
                return n

            result = write_from(readinto, writer, length, info.meta.capacity, buffers[:RING], *conn.workers())
            if result.sha256 != expected:
                raise errors.DigestMismatch(
                    f"volume {src_vol} does not hold what was expected (SHA-256 {result.sha256}, expected "
                    f"{expected}); the copy in {vol} is left ILLEGAL: write it from the source of truth instead"
                )
            domain.write_volume_meta(img, vol, replace(info.meta, legality="LEGAL"))
        return json_response({"size": result.size, "sha256": result.sha256})

    def download(request: Request) -> None:
        domain, img, vol = ids(request)
        with ExitStack() as stack:
            stack.enter_context(domain.volume_locked(img, vol, exclusive=False))
            backend = stack.enter_context(Backend(domain.volume_path(img, vol), False, config.direct_io))
            size = backend.size()
            header = request.headers.get("range")
            offset, length = _parse_range(header, size) if header else (0, size)
            views = read_views(backend, offset, length, request.connection.buffers(1)[0])
            first = next(views, None)  # a failing first read is still answered with an error
            headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
            if header:
                headers["Content-Range"] = f"bytes {offset}-{offset + length - 1}/{size}"
            request.start_response(206 if header else 200, headers, length)
            if first is not None:
                request.write(first)
            for view in views:
                request.write(view)

    vol_path = "/domains/{sd}/images/{img}/volumes/{vol}"
    routes: list[tuple[str, str, Callable[[Request], Response | None]]] = [
        ("GET", "/health", health),
        ("GET", "/domains", list_domains),
        ("POST", "/domains", create_domain),
        ("GET", "/domains/{sd}", domain_info),
        ("POST", "/domains/{sd}/attach", attach),
        ("POST", "/domains/{sd}/detach", detach),
        ("GET", "/domains/{sd}/images", list_images),
        ("DELETE", "/domains/{sd}/images/{img}", delete_image),
        ("GET", "/domains/{sd}/volumes", list_volumes),
        ("POST", "/domains/{sd}/volumes", create_volume),
        ("GET", "/domains/{sd}/images/{img}/volumes", list_volumes),
        ("GET", vol_path, volume_info),
        ("PUT", vol_path + "/description", set_description),
        ("PUT", vol_path + "/data", upload),
        ("GET", vol_path + "/data", download),
        ("POST", vol_path + "/copy", copy),
        ("GET", "/domains/{sd}/legacy-ovfs", legacy_ovfs),
    ]
    for method, path, handler in routes:
        router.add(method, path, handler)
    return app
