"""The agent's HTTP service: a Starlette app over `ovfstore.storage`, built by `create_app(config)`.

Storage errors are translated into HTTP once, here, as `{"error": code, "message": ...}` bodies; the
client maps them back to its exception hierarchy (docs/AGENT.md). Blocking storage calls run in worker
threads so one slow domain never stalls the event loop that streams other transfers.
"""

from __future__ import annotations

import base64
import hmac
import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ovfstore.agent.config import AgentConfig
from ovfstore.storage import errors
from ovfstore.storage.backend import Backend
from ovfstore.storage.domain import FileDomain, VolumeInfo, check_uuid, find_domains
from ovfstore.storage.metadata import DomainMetadata
from ovfstore.storage.volumeio import BufferPool, read_range, write_stream

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
]


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


def _translate(e: Exception) -> JSONResponse:
    if isinstance(e, errors.StorageError):
        status = next((s for cls, s in _STATUS if isinstance(e, cls)), 500)
        return error(status, e.code, str(e))
    if isinstance(e, OSError):
        log.exception("storage I/O failed")
        return error(500, "io_error", f"storage I/O failed: {e}; check the storage and the agent's log")
    raise e


class _Auth:
    """Every request carries `Authorization: Bearer <secret>`; compared in constant time."""

    def __init__(self, app: ASGIApp, secret: str) -> None:
        self.app = app
        self.expected = f"Bearer {secret}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                response = error(
                    401,
                    "unauthenticated",
                    "missing or wrong credential: send 'Authorization: Bearer <secret>'",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


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


def create_app(config: AgentConfig) -> ASGIApp:
    roots = config.roots
    pool = BufferPool(config.buffer_size, config.buffers_kept)

    def handle(fn: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                return await fn(request)
            except Exception as e:
                return _translate(e)

        return endpoint

    async def blocking(fn: Callable[..., T], *args: Any) -> T:
        return await run_in_threadpool(fn, *args)

    async def body(request: Request) -> dict[str, Any]:
        try:
            data = await request.json()
        except ValueError as e:
            raise errors.InvalidArgument(f"the request body is not JSON: {e}") from e
        if not isinstance(data, dict):
            raise errors.InvalidArgument("the request body must be a JSON object")
        return data

    def field(data: dict[str, Any], name: str, kind: type[T], default: T | None = None) -> T:
        value = data.get(name, default)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise errors.InvalidArgument(f"field {name!r} must be a {kind.__name__}, got {value!r}")
        return value

    def domain_of(request: Request) -> FileDomain:
        return FileDomain.find(roots, request.path_params["sd"])

    def ids(request: Request) -> tuple[FileDomain, str, str]:
        domain = domain_of(request)
        return domain, check_uuid(request.path_params["img"], "image id"), request.path_params["vol"]

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "roots": list(roots)})

    async def list_domains(request: Request) -> Response:
        path = request.query_params.get("path")

        def work() -> list[dict[str, Any]]:
            domains = [FileDomain(path, roots)] if path else [FileDomain(p, roots) for p in find_domains(roots)]
            return [_domain_json(d, d.metadata()) for d in domains]

        return JSONResponse(await blocking(work))

    async def create_domain(request: Request) -> Response:
        data = await body(request)

        def work() -> dict[str, Any]:
            domain = FileDomain.create(
                roots,
                field(data, "parent", str, roots[0]),
                field(data, "id", str),
                field(data, "description", str, ""),
                field(data, "type", str, "LOCALFS"),
                field(data, "class", str, "Data"),
                field(data, "remote_path", str, ""),
            )
            return _domain_json(domain, domain.metadata())

        return JSONResponse(await blocking(work), status_code=201)

    async def domain_info(request: Request) -> Response:
        def work() -> dict[str, Any]:
            domain = domain_of(request)
            return _domain_json(domain, domain.metadata())

        return JSONResponse(await blocking(work))

    async def attach(request: Request) -> Response:
        data = await body(request)

        def work() -> dict[str, Any]:
            domain = domain_of(request)
            return _domain_json(domain, domain.attach(field(data, "pool_id", str), field(data, "master", bool, False)))

        return JSONResponse(await blocking(work))

    async def detach(request: Request) -> Response:
        data = await body(request)

        def work() -> dict[str, Any]:
            domain = domain_of(request)
            return _domain_json(domain, domain.detach(field(data, "pool_id", str), field(data, "force", bool, False)))

        return JSONResponse(await blocking(work))

    async def list_images(request: Request) -> Response:
        return JSONResponse(await blocking(lambda: domain_of(request).images()))

    async def list_volumes(request: Request) -> Response:
        def work() -> list[dict[str, Any]]:
            domain = domain_of(request)
            img = request.path_params.get("img")
            infos = domain.volumes(check_uuid(img, "image id")) if img else domain.all_volumes()
            return [_volume_json(v) for v in infos]

        return JSONResponse(await blocking(work))

    async def create_volume(request: Request) -> Response:
        data = await body(request)

        def work() -> dict[str, Any]:
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
            return _volume_json(info)

        return JSONResponse(await blocking(work), status_code=201)

    async def volume_info(request: Request) -> Response:
        def work() -> dict[str, Any]:
            domain, img, vol = ids(request)
            return _volume_json(domain.volume_info(img, vol))

        return JSONResponse(await blocking(work))

    async def set_description(request: Request) -> Response:
        data = await body(request)

        def work() -> dict[str, Any]:
            domain, img, vol = ids(request)
            return _volume_json(domain.set_description(img, vol, field(data, "description", str)))

        return JSONResponse(await blocking(work))

    async def delete_image(request: Request) -> Response:
        def work() -> None:
            domain = domain_of(request)
            domain.delete_image(check_uuid(request.path_params["img"], "image id"))

        await blocking(work)
        return Response(status_code=204)

    async def legacy_ovfs(request: Request) -> Response:
        ovfs = await blocking(lambda: domain_of(request).legacy_ovfs())
        return JSONResponse({vm: base64.b64encode(data).decode() for vm, data in ovfs.items()})

    async def upload(request: Request) -> Response:
        raw_length = request.headers.get("content-length")
        if raw_length is None or "chunked" in request.headers.get("transfer-encoding", ""):
            return error(411, "length_required", "send Content-Length with the exact number of bytes to write")
        if not raw_length.isdigit():
            return error(400, "invalid_argument", f"Content-Length {raw_length!r} is not a byte count")
        length = int(raw_length)
        domain, img, vol = await blocking(ids, request)
        with ExitStack() as stack:
            info = await blocking(lambda: stack.enter_context(domain.volume_locked(img, vol)))
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
            await blocking(domain.write_volume_meta, img, vol, replace(info.meta, legality="ILLEGAL"))
            backend = stack.enter_context(await blocking(Backend, domain.volume_path(img, vol), True, config.direct_io))
            try:
                result = await write_stream(request.stream(), backend, length, info.meta.capacity, pool)
            except ClientDisconnect as e:
                raise errors.IncompleteTransfer(
                    f"the client went away before sending all {length} bytes; the volume is marked ILLEGAL, "
                    "send it again"
                ) from e
            await blocking(domain.write_volume_meta, img, vol, replace(info.meta, legality="LEGAL"))
        return JSONResponse({"size": result.size, "sha256": result.sha256})

    async def download(request: Request) -> Response:
        domain, img, vol = await blocking(ids, request)
        stack = ExitStack()
        try:
            await blocking(lambda: stack.enter_context(domain.volume_locked(img, vol, exclusive=False)))
            backend = stack.enter_context(
                await blocking(Backend, domain.volume_path(img, vol), False, config.direct_io)
            )
            size = await blocking(backend.size)
            header = request.headers.get("range")
            offset, length = _parse_range(header, size) if header else (0, size)
            buf = pool.take()
            stack.callback(pool.give, buf)
        except BaseException:
            stack.close()
            raise

        def chunks() -> Iterator[bytes]:
            with stack:
                yield from read_range(backend, offset, length, buf)

        headers = {"Content-Length": str(length), "Accept-Ranges": "bytes"}
        if header:
            headers["Content-Range"] = f"bytes {offset}-{offset + length - 1}/{size}"
        return StreamingResponse(
            chunks(),
            status_code=206 if header else 200,
            headers=headers,
            media_type="application/octet-stream",
        )

    vol_path = "/domains/{sd}/images/{img}/volumes/{vol}"
    routes = [
        Route("/health", handle(health)),
        Route("/domains", handle(list_domains), methods=["GET"]),
        Route("/domains", handle(create_domain), methods=["POST"]),
        Route("/domains/{sd}", handle(domain_info), methods=["GET"]),
        Route("/domains/{sd}/attach", handle(attach), methods=["POST"]),
        Route("/domains/{sd}/detach", handle(detach), methods=["POST"]),
        Route("/domains/{sd}/images", handle(list_images), methods=["GET"]),
        Route("/domains/{sd}/images/{img}", handle(delete_image), methods=["DELETE"]),
        Route("/domains/{sd}/volumes", handle(list_volumes), methods=["GET"]),
        Route("/domains/{sd}/volumes", handle(create_volume), methods=["POST"]),
        Route("/domains/{sd}/images/{img}/volumes", handle(list_volumes), methods=["GET"]),
        Route(vol_path, handle(volume_info), methods=["GET"]),
        Route(vol_path + "/description", handle(set_description), methods=["PUT"]),
        Route(vol_path + "/data", handle(upload), methods=["PUT"]),
        Route(vol_path + "/data", handle(download), methods=["GET"]),
        Route("/domains/{sd}/legacy-ovfs", handle(legacy_ovfs), methods=["GET"]),
    ]
    return _Auth(Starlette(routes=routes), config.secret)
