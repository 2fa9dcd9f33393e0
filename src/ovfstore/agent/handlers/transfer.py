"""`.../volumes/{vol}/data` and `.../copy`: upload, download and copy a volume's bytes.

Uploads and copies write with `storage.transfer` on the connection's buffers and threads (mapped at its
first transfer, reused for every later one); downloads send views of one of those buffers.
"""

from __future__ import annotations

import mmap
import re
from contextlib import ExitStack

from ovfstore.agent import protocol
from ovfstore.agent.config import AgentConfig
from ovfstore.agent.handlers.bodies import field, json_object, term_of
from ovfstore.agent.handlers.locate import volume_of
from ovfstore.agent.server import ClientGone, Connection, Request, Response, error_response, json_response
from ovfstore.storage.domain import check_uuid
from ovfstore.storage.errors import DigestMismatch, IncompleteTransfer, InvalidArgument
from ovfstore.storage.transfer import WritePipeline, copy_volume, write_volume
from ovfstore.storage.volumeio import WrittenData, read_views
from ovfstore.store.quoting import quoted

#: Buffers an upload cycles through (of `AgentConfig.buffer_size` each): one filling from the network,
#: the others hashed and written meanwhile. A copy maps one more to read its source through.
RING = 4

# At most 19 digits: offsets are below 2**63, and int() of thousands of digits is refused anyway.
_RANGE = re.compile(r"bytes=(\d{0,19})-(\d{0,19})$")
# The range of a PUT, as ovirt-imageio takes it: `bytes FIRST-LAST/*` or `bytes FIRST-LAST/TOTAL`.
_CONTENT_RANGE = re.compile(r"(?i:bytes) ([0-9]{1,19})-([0-9]{1,19})/(\*|[0-9]{1,19})")


def _pipeline(conn: Connection, buffers: list[mmap.mmap]) -> WritePipeline:
    hasher, writer = conn.workers()
    return WritePipeline(buffers, hasher, writer)


def _written(result: WrittenData, offset: int = 0) -> Response:
    """`{"size", "sha256"}` of the bytes written; a write at an offset says where (`offset`), so a client
    knows the agent wrote the range and not, as one older than ranged writes would, from the start."""
    answer: dict[str, int | str] = {"size": result.size, "sha256": result.sha256}
    if offset:
        answer["offset"] = offset
    return json_response(answer)


def content_range_offset(header: str | None, length: int) -> int:
    """Where a PUT writes: 0 without `Content-Range`, else FIRST of `bytes FIRST-LAST/*` (or `/TOTAL`,
    which must be past LAST), a range that must hold exactly the body's `length` bytes."""
    if header is None:
        return 0
    m = _CONTENT_RANGE.fullmatch(header.strip())
    if not m:
        raise InvalidArgument(
            f"Content-Range {quoted(header)} is not 'bytes FIRST-LAST/*' or 'bytes FIRST-LAST/TOTAL'; send the "
            "one range the body holds"
        )
    first, last = int(m[1]), int(m[2])
    if first > last or (m[3] != "*" and last >= int(m[3])):
        raise InvalidArgument(
            f"Content-Range {quoted(header)} is no range: FIRST <= LAST < TOTAL must hold; send the range the "
            "body holds"
        )
    if last - first + 1 != length:
        raise InvalidArgument(
            f"Content-Range {quoted(header)} holds {last - first + 1} bytes but Content-Length is {length}; "
            "send exactly the bytes of the range"
        )
    return first


def _expected_digest(request: Request) -> str | None:
    expected = request.headers.get(protocol.EXPECTED_DIGEST_HEADER.lower())
    if expected is not None and not protocol.SHA256_HEX.fullmatch(expected):
        raise InvalidArgument(
            f"{protocol.EXPECTED_DIGEST_HEADER} must be 64 hexadecimal digits, not {quoted(expected)}"
        )
    return None if expected is None else expected.lower()  # as hexdigest() writes it


def upload(config: AgentConfig, request: Request) -> Response:
    """Write the body into the volume, from its start or at the range of a `Content-Range`, the bytes
    before it left as they are. With `X-Expected-SHA256`, the upload succeeds only if the bytes written
    have that digest; otherwise the volume is left ILLEGAL, as after a broken upload."""
    length = request.content_length
    if length is None:
        return error_response(
            411, protocol.LENGTH_REQUIRED, "send Content-Length with the exact number of bytes to write"
        )
    offset = content_range_offset(request.headers.get("content-range"), length)
    expected = _expected_digest(request)
    domain, img, vol = volume_of(config, request)
    conn = request.connection
    try:
        result = write_volume(
            domain, img, vol, request.readinto, length, _pipeline(conn, conn.buffers(RING)),
            expected_sha256=expected, direct_io=config.direct_io, term=term_of(request), offset=offset,
        )  # fmt: skip
    except DigestMismatch as e:
        raise DigestMismatch(f"{e}: send the bytes again, or the digest of what is sent") from e
    except ClientGone as e:
        raise IncompleteTransfer(
            f"the client went away before sending all {length} bytes ({e}); the volume is marked ILLEGAL, send it again"
        ) from e
    return _written(result, offset)


def copy(config: AgentConfig, request: Request) -> Response:
    """Copy the bytes `[offset, offset + length)` (`offset` 0 unless given) of another volume of the
    domain into the same range of this one, as an upload of them would. The caller gives the SHA-256 it
    verified for them in the source (the engine, after writing its first OVF store), and the copy
    succeeds only if the bytes written have it."""
    data = json_object(request)
    domain, img, vol = volume_of(config, request)
    src_img = check_uuid(field(data, "image", str), "source image id")
    src_vol = check_uuid(field(data, "volume", str), "source volume id")
    length = field(data, "length", int)
    expected = field(data, "sha256", str)
    offset = field(data, "offset", int, 0)
    buffers = request.connection.buffers(RING + 1)
    result = copy_volume(
        domain, src_img, src_vol, img, vol, length, expected, _pipeline(request.connection, buffers[:RING]),
        buffers[RING], config.direct_io, term_of(request), offset,
    )  # fmt: skip
    return _written(result, offset)


def parse_range(header: str, size: int) -> tuple[int, int]:
    """(offset, length) of a single `Range`; multiple ranges are refused, the engine never asks them."""
    m = _RANGE.match(header.strip())
    if not m or (not m[1] and not m[2]):
        raise InvalidArgument(f"Range {quoted(header)} is not 'bytes=first-last' with one range")
    if not m[1]:
        length = min(int(m[2]), size)
        return size - length, length
    first = int(m[1])
    last = int(m[2]) if m[2] else size - 1
    if first > last or last >= size:
        raise InvalidArgument(f"Range {quoted(header)} is outside the volume of {size} bytes")
    return first, last - first + 1


def download(config: AgentConfig, request: Request) -> None:
    """The whole volume (200), or the one range of a `Range` header (206), streamed from its file."""
    domain, img, vol = volume_of(config, request)
    with ExitStack() as stack:
        stack.enter_context(domain.volume_locked(img, vol, exclusive=False))
        backend = stack.enter_context(domain.open_volume(img, vol, False, config.direct_io))
        size = backend.size()
        header = request.headers.get("range")
        offset, length = parse_range(header, size) if header else (0, size)
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
