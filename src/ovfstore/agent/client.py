"""The client the engine uses to reach a host agent: typed calls, streaming bodies, mapped errors.

Uploads stream from an iterator with an exact length and are verified end to end: the client hashes
what it sends and compares it with the SHA-256 the agent computed over what reached the disk.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from copy import copy as shallow_copy
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx

from ovfstore.agent import protocol
from ovfstore.agent.errors import (
    AgentError,
    AgentUnavailable,
    IncompleteTransfer,
    StorageUnavailable,
    TransferCorrupted,
    from_answer,
)
from ovfstore.agent.protocol import EXPECTED_DIGEST_HEADER, SHA256_HEX
from ovfstore.store.quoting import cut
from ovfstore.store.selection import is_store

log = logging.getLogger(__name__)

Id = UUID | str
BLANK_UUID = UUID(int=0)


@dataclass(frozen=True)
class ItemProblem:
    """An item a listing of the agent passes over: where, the error code and message, and whether a
    retry may see it (`transient`) or it is damage that stays until repaired."""

    path: str
    error: str
    message: str
    transient: bool
    id: str = ""  # a domain's id, from its directory name
    image: str = ""
    volume: str = ""

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ItemProblem:
        return cls(
            path=str(d.get("path", "")), error=str(d["error"]), message=str(d.get("message", "")),
            transient=d.get("transient") is True, id=str(d.get("id", "")), image=str(d.get("image", "")),
            volume=str(d.get("volume", "")),
        )  # fmt: skip


@dataclass(frozen=True)
class WriteResult:
    """What the agent durably wrote: size and SHA-256, after fsync."""

    size: int
    sha256: str


@dataclass(frozen=True)
class DeviceInfo:
    """A block device the agent may use (`GET /devices`): `id` is the LUN id (the WWID where the kernel
    gives one, else the device name), the LVM fields are None when the device is no physical volume,
    `domain_id` is set when its volume group is a storage domain, and `signature` says what other data
    (a filesystem, a partition table...) a device that is no physical volume holds."""

    id: str
    path: str
    size: int
    vendor: str
    product: str
    serial: str
    pv_uuid: str | None
    vg_name: str | None
    vg_uuid: str | None
    domain_id: UUID | None
    #: What a device that is no PV holds (a filesystem...): in use all the same. None when nothing known.
    signature: str | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DeviceInfo:
        return cls(
            id=str(d["id"]), path=str(d["path"]), size=int(d["size"]), vendor=str(d.get("vendor") or ""),
            product=str(d.get("product") or ""), serial=str(d.get("serial") or ""),
            pv_uuid=_text_or_none(d.get("pv_uuid")), vg_name=_text_or_none(d.get("vg_name")),
            vg_uuid=_text_or_none(d.get("vg_uuid")),
            domain_id=UUID(d["domain_id"]) if d.get("domain_id") else None,
            signature=_text_or_none(d.get("signature")),
        )  # fmt: skip


@dataclass(frozen=True)
class DomainDevice:
    """One physical volume of a block domain: its LUN id, device path and PV UUID."""

    id: str
    path: str
    pv_uuid: str


def _text_or_none(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


@dataclass(frozen=True)
class DomainInfo:
    id: UUID
    path: str
    domain_class: str
    pool_id: UUID | None
    role: str
    storage_type: str
    version: int
    description: str
    # "valid", or "missing" for an old domain written without `_SHA_CKSUM` (a wrong one is an error).
    checksum: str
    metadata: dict[str, str]
    # "file" or "block"; a block domain's volume group UUID and physical volumes (its LUNs).
    storage: str = "file"
    vg_uuid: str = ""
    devices: tuple[DomainDevice, ...] = ()

    @property
    def is_block(self) -> bool:
        return self.storage == "block"

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DomainInfo:
        devices = tuple(
            DomainDevice(id=str(x["id"]), path=str(x.get("path", "")), pv_uuid=str(x.get("pv_uuid") or ""))
            for x in d.get("devices") or ()
        )
        return cls(
            id=UUID(d["id"]), path=d["path"], domain_class=d["class"],
            pool_id=UUID(d["pool_id"]) if d["pool_id"] else None, role=d["role"], storage_type=d["type"],
            version=d["version"], description=d["description"], checksum=d["checksum"],
            metadata=d["metadata"], storage=str(d.get("storage") or "file"), vg_uuid=str(d.get("vg_uuid") or ""),
            devices=devices,
        )  # fmt: skip


@dataclass(frozen=True)
class VolumeInfo:
    image: UUID
    volume: UUID
    capacity: int
    format: str
    type: str
    disk_type: str
    description: str
    parent: UUID | None
    legality: str
    generation: int
    voltype: str
    apparent_size: int
    actual_size: int
    # Every `.meta` key as stored (CAP, CTIME, DESCRIPTION, DISKTYPE, ... and unknown ones).
    meta: dict[str, str]

    @property
    def is_ovf_store(self) -> bool:
        return is_store(self.disk_type, self.description)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> VolumeInfo:
        m = d["meta"]
        parent = UUID(m["PUUID"])
        return cls(
            image=UUID(d["image"]), volume=UUID(d["volume"]), capacity=int(m["CAP"]), format=m["FORMAT"],
            type=m["TYPE"], disk_type=m["DISKTYPE"], description=m["DESCRIPTION"],
            parent=None if parent == BLANK_UUID else parent, legality=m["LEGALITY"], generation=int(m["GEN"]),
            voltype=m["VOLTYPE"], apparent_size=d["apparent_size"], actual_size=d["actual_size"], meta=m,
        )  # fmt: skip


class Download:
    """An exact byte range being streamed; iterate it for chunks, `length` is known up front."""

    def __init__(self, response: httpx.Response, length: int, chunk_size: int) -> None:
        self._response = response
        self.length = length
        self._chunk_size = chunk_size

    def __iter__(self) -> Iterator[bytes]:
        received = 0
        try:
            for chunk in self._response.iter_raw(self._chunk_size):
                received += len(chunk)
                yield chunk
        except httpx.HTTPError as e:
            raise IncompleteTransfer(
                f"the download broke after {received} of {self.length} bytes: {e}", protocol.INCOMPLETE_TRANSFER
            ) from e
        if received != self.length:
            raise IncompleteTransfer(
                f"the agent sent {received} of {self.length} bytes; discard what was read",
                protocol.INCOMPLETE_TRANSFER,
            )


class AgentClient:
    """One agent, one connection pool. Use as a context manager or call `close()`."""

    def __init__(
        self,
        url: str,
        secret: str,
        timeout: float = 300.0,
        chunk_size: int = 4 << 20,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        # The read timeout covers the final fsync of an upload, which on slow NFS takes many seconds.
        self._http = httpx.Client(
            base_url=url,
            headers={"Authorization": f"Bearer {secret}"},
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
        )
        self._chunk_size = chunk_size
        self.term: int | None = None
        self._owner = True

    def with_term(self, term: int) -> AgentClient:
        """This client (its connection pool shared) sending leadership term `term` with every request
        (`X-Ovfstore-Term`): the agent refuses its writes with `StaleTerm` once the domain has been written
        under a higher term. Closing it closes nothing; close the client it came from."""
        fenced = shallow_copy(self)
        fenced.term = term
        fenced._owner = False
        return fenced

    def _headers(self, headers: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(headers or {})
        if self.term is not None:
            headers[protocol.TERM_HEADER] = str(self.term)
        return headers

    def close(self) -> None:
        if self._owner:
            self._http.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- plumbing -------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, json: Any = None, params: dict[str, str] | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=json, params=params, headers=self._headers())
        except httpx.TransportError as e:
            raise AgentUnavailable(
                f"the agent at {self._http.base_url} does not answer: {e}", protocol.UNAVAILABLE
            ) from e
        return self._answer(response)

    @staticmethod
    def _answer(response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise _error(response)
        if response.status_code == 204:
            return None
        return response.json()

    @staticmethod
    def _vol(sd: Id, img: Id, vol: Id) -> str:
        return f"/domains/{sd}/images/{img}/volumes/{vol}"

    # --- domains --------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/health")
        return result

    def list_domains(self) -> list[DomainInfo]:
        """The domains under the agent's roots that can be read; those that cannot are logged."""
        domains, problems = self.scan_domains()
        for problem in problems:
            log.warning("domain %s at %s cannot be read: %s", problem.id, problem.path, problem.message)
        return domains

    def scan_domains(self) -> tuple[list[DomainInfo], list[ItemProblem]]:
        """The domains under the agent's roots, and those that cannot be read with why."""
        items, problems = _split(self._call("GET", "/domains"))
        return [DomainInfo.from_json(d) for d in items], problems

    def domain_at(self, path: str) -> DomainInfo:
        """The domain in directory `path` (under the agent's roots): how an existing domain is imported."""
        return DomainInfo.from_json(self._call("GET", "/domains", params={"path": path})[0])

    def mount_point(self, storage_type: str, address: str, path: str) -> str:
        """The directory where the host has the storage connection (nfs, posixfs, glusterfs) mounted."""
        params = {"type": storage_type, "address": address, "path": path}
        return str(self._call("GET", "/mounts", params=params)["path"])

    def domain_info(self, sd: Id) -> DomainInfo:
        """Find domain `sd` under the agent's roots (also in NFS mount directories) and read its metadata."""
        return DomainInfo.from_json(self._call("GET", f"/domains/{sd}"))

    def create_domain(
        self,
        sd: Id,
        description: str,
        parent: str | None = None,
        storage_type: str = "LOCALFS",
        domain_class: str = "Data",
        remote_path: str = "",
        devices: Sequence[str] | None = None,
    ) -> DomainInfo:
        """A new file domain under `parent`, or with `devices` (LUN ids or device paths; `storage_type`
        ISCSI or FCP) a new block domain on those devices."""
        body: dict[str, Any] = {"id": str(sd), "description": description, "type": storage_type}
        body["class"] = domain_class
        if devices is not None:
            body["devices"] = list(devices)
        else:
            body["remote_path"] = remote_path
        if parent is not None:
            body["parent"] = parent
        return DomainInfo.from_json(self._call("POST", "/domains", json=body))

    def list_devices(self) -> list[DeviceInfo]:
        """The block devices the agent may use, with the volume group and domain each holds, if any."""
        return [DeviceInfo.from_json(d) for d in self._call("GET", "/devices")]

    def attach(self, sd: Id, pool_id: Id, master: bool) -> DomainInfo:
        body = {"pool_id": str(pool_id), "master": master}
        return DomainInfo.from_json(self._call("POST", f"/domains/{sd}/attach", json=body))

    def detach(self, sd: Id, pool_id: Id, force: bool = False) -> DomainInfo:
        """Detach from `pool_id`; `force` detaches from whatever (stale) data center holds the domain."""
        body = {"pool_id": str(pool_id), "force": force}
        return DomainInfo.from_json(self._call("POST", f"/domains/{sd}/detach", json=body))

    def legacy_ovfs(self, sd: Id) -> dict[UUID, bytes]:
        """`master/vms/<id>/<id>.ovf` contents by VM or template id (domains older than OVF stores).
        One damaged for good is passed over (logged); one that failed in a way that may pass makes the
        call fail with `StorageUnavailable`, so no OVF is taken for absent."""
        ovfs, problems = self.scan_legacy_ovfs(sd)
        _usable(problems, f"the legacy OVFs of storage domain {sd}")
        return ovfs

    def scan_legacy_ovfs(self, sd: Id) -> tuple[dict[UUID, bytes], list[ItemProblem]]:
        answer = self._call("GET", f"/domains/{sd}/legacy-ovfs")
        ovfs = {UUID(k): base64.b64decode(v) for k, v in answer.items() if isinstance(v, str)}
        problems = [ItemProblem.from_json(dict(v, id=k)) for k, v in answer.items() if isinstance(v, dict)]
        return ovfs, problems

    # --- images and volumes ---------------------------------------------------------------------------

    def list_images(self, sd: Id) -> list[UUID]:
        return [UUID(i) for i in self._call("GET", f"/domains/{sd}/images")]

    def list_volumes(self, sd: Id, img: Id | None = None) -> list[VolumeInfo]:
        """Every volume of every image (or of `img`) with its parsed `.meta`. A volume damaged for good
        (a link, unparseable `.meta`, a COW OVF store) is passed over (logged); one that failed in a way
        that may pass (EIO) makes the call fail with `StorageUnavailable`, so none is taken for absent."""
        volumes, problems = self.scan_volumes(sd, img)
        _usable(problems, f"the volumes of storage domain {sd}")
        return volumes

    def scan_volumes(self, sd: Id, img: Id | None = None) -> tuple[list[VolumeInfo], list[ItemProblem]]:
        """The volumes that can be read, and the problems of those that cannot."""
        path = f"/domains/{sd}/images/{img}/volumes" if img else f"/domains/{sd}/volumes"
        items, problems = _split(self._call("GET", path))
        return [VolumeInfo.from_json(v) for v in items], problems

    def volume_info(self, sd: Id, img: Id, vol: Id) -> VolumeInfo:
        return VolumeInfo.from_json(self._call("GET", self._vol(sd, img, vol)))

    def create_volume(
        self,
        sd: Id,
        img: Id,
        vol: Id,
        capacity: int,
        format: str = "RAW",
        type: str = "SPARSE",
        disk_type: str = "DATA",
        description: str = "",
        parent: Id | None = None,
    ) -> VolumeInfo:
        body = {
            "image": str(img), "volume": str(vol), "capacity": capacity, "format": format, "type": type,
            "disk_type": disk_type, "description": description,
            "parent": None if parent is None else str(parent),
        }  # fmt: skip
        return VolumeInfo.from_json(self._call("POST", f"/domains/{sd}/volumes", json=body))

    def set_description(self, sd: Id, img: Id, vol: Id, text: str) -> VolumeInfo:
        answer = self._call("PUT", self._vol(sd, img, vol) + "/description", json={"description": text})
        return VolumeInfo.from_json(answer)

    def resize_volume(self, sd: Id, img: Id, vol: Id, capacity: int) -> VolumeInfo:
        """Give RAW volume `vol` `capacity` bytes: a file grows (sparse) or an LV is extended; only an OVF
        store may be made smaller, and it is then ILLEGAL until written again."""
        answer = self._call("POST", self._vol(sd, img, vol) + "/resize", json={"capacity": capacity})
        return VolumeInfo.from_json(answer)

    def delete_image(self, sd: Id, img: Id) -> None:
        self._call("DELETE", f"/domains/{sd}/images/{img}")

    # --- data -----------------------------------------------------------------------------------------

    def upload(
        self,
        sd: Id,
        img: Id,
        vol: Id,
        chunks: Iterable[bytes],
        length: int,
        sha256: str | None = None,
        offset: int = 0,
    ) -> WriteResult:
        """Write exactly `length` bytes from `chunks` into the volume at `offset`, durably.

        `offset` (a multiple of 512) other than 0 is sent as `Content-Range: bytes FIRST-LAST/*`: the agent
        writes only that range and leaves the bytes before it as they are (an appended store segment);
        the result is then the size and SHA-256 of the range. Ask `health()` for the feature
        `ranged_writes` first: an agent without it would write from offset 0 (the answer is refused here,
        but the bytes are written).

        The transfer is verified end to end: the agent's SHA-256 of what reached the disk must equal
        `sha256` when the caller knows the digest of its bytes already (the agent checks it before it
        marks the volume complete, and leaves the volume ILLEGAL if it differs), else the digest the
        client computes of what it sends (in a helper thread, alongside the sending). Otherwise
        `TransferCorrupted`. If `chunks` yields fewer or more bytes the transfer is broken off before its
        end, so the agent never acknowledges it, and `IncompleteTransfer` is raised.
        """
        headers = {"Content-Length": str(length), "Content-Type": "application/octet-stream"}
        headers.update(_content_range(offset, length))
        expected = None
        if sha256 is not None:
            if not SHA256_HEX.fullmatch(sha256):
                raise ValueError(f"sha256 must be 64 hexadecimal digits, not {sha256!r}")
            expected = headers[EXPECTED_DIGEST_HEADER] = sha256.lower()
        with _Hasher(enabled=expected is None) as digest:
            try:
                response = self._http.put(
                    self._vol(sd, img, vol) + "/data",
                    content=_exact(chunks, length, digest),
                    headers=self._headers(headers),
                )
            except httpx.TransportError as e:
                raise AgentUnavailable(
                    f"the upload to {self._http.base_url} broke: {e}; nothing was acknowledged, send it again",
                    protocol.UNAVAILABLE,
                ) from e
            answer = self._answer(response)
            sent = digest.hexdigest() if expected is None else expected
        what = "the client sent" if expected is None else "the caller expected"
        return _verified(answer, WriteResult(length, sent), offset, f"wrote {{}}, {what} {{}}; send it again")

    def copy(
        self, sd: Id, img: Id, vol: Id, source_img: Id, source_vol: Id, length: int, sha256: str, offset: int = 0
    ) -> WriteResult:
        """Have the agent copy the bytes `[offset, offset + length)` of volume `source_vol` into the same
        range of `vol`, durably (`offset` as for `upload`). It succeeds only if the bytes written have
        `sha256` (what the caller verified the source to hold there); otherwise `TransferCorrupted`, and
        the target stays marked incomplete."""
        body: dict[str, Any] = {"image": str(source_img), "volume": str(source_vol), "length": length, "sha256": sha256}
        if offset:
            body["offset"] = offset
        answer = self._call("POST", self._vol(sd, img, vol) + "/copy", json=body)
        return _verified(answer, WriteResult(length, sha256), offset, "copied {}, not {}")

    @contextmanager
    def download(self, sd: Id, img: Id, vol: Id, offset: int = 0, length: int | None = None) -> Iterator[Download]:
        """Stream `length` bytes from `offset` (default: to the end of the volume).

        To read a store, pass the `Size` its description records: exactly the tar, not the stale rest.
        """
        headers = {}
        if length is not None:
            if length <= 0 or offset < 0:
                raise ValueError(f"cannot download {length} bytes at {offset}")
            headers["Range"] = f"bytes={offset}-{offset + length - 1}"
        elif offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            with self._http.stream("GET", self._vol(sd, img, vol) + "/data", headers=headers) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error(response)
                size = int(response.headers["content-length"])
                if length is not None and size != length:
                    raise IncompleteTransfer(
                        f"asked {length} bytes, the agent offers {size}", protocol.INCOMPLETE_TRANSFER
                    )
                yield Download(response, size, self._chunk_size)
        except httpx.TransportError as e:
            raise AgentUnavailable(
                f"the agent at {self._http.base_url} does not answer: {e}", protocol.UNAVAILABLE
            ) from e


def _content_range(offset: int, length: int) -> dict[str, str]:
    """The header of a write at `offset` (none at 0, as every agent takes it)."""
    if offset < 0 or offset % 512:
        raise ValueError(f"a write starts at a multiple of 512 bytes, not at {offset}")
    if not offset:
        return {}
    if length <= 0:
        raise ValueError(f"a write at offset {offset} needs at least one byte, not {length}")
    return {"Content-Range": f"bytes {offset}-{offset + length - 1}/*"}


def _verified(answer: Any, wanted: WriteResult, offset: int, message: str) -> WriteResult:
    """The agent's `{"size", "sha256"}` (and `"offset"` of a write at one) if they are `wanted` at `offset`,
    else `TransferCorrupted` with `message` formatted with what the agent did and what was wanted."""
    result = WriteResult(size=answer["size"], sha256=answer["sha256"])
    done = answer.get("offset", 0)
    if result == wanted and done == offset:
        return result
    at = f" at offset {cut(repr(done))}" if offset or done else ""
    wanted_at = f" at offset {offset}" if offset or done else ""
    raise TransferCorrupted(
        "the agent "
        + message.format(
            f"{cut(repr(result.size))} bytes{at} with SHA-256 {cut(repr(result.sha256))}",
            f"{wanted.size}{wanted_at} with {wanted.sha256}",
        ),
        protocol.TRANSFER_CORRUPTED,
    )


#: The most of an agent's error message the engine keeps: an agent's answer is bounded by the agent, but
#: the engine must not hold (or pass on in faults and events) megabytes from a broken or hostile one.
MESSAGE_MAX = 4000


def _error(response: httpx.Response) -> AgentError:
    try:
        body = response.json()
        code, message = str(body["error"]), cut(body["message"], MESSAGE_MAX)
        transient = body.get("transient") is True
    except (ValueError, KeyError, TypeError, AttributeError):
        code, message = protocol.HTTP_ERROR, f"HTTP {response.status_code}: {response.text[:200]}"
        transient = response.status_code == 503
    return from_answer(response.status_code, code, message, transient)


def _split(entries: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[ItemProblem]]:
    """A listing's items apart from the problems the agent reports in it (entries with an "error")."""
    items = [e for e in entries if "error" not in e]
    return items, [ItemProblem.from_json(e) for e in entries if "error" in e]


def _usable(problems: list[ItemProblem], what: str) -> None:
    """Refuse a listing with an item that failed in a way that may pass: acting on it would take the
    item for missing. Permanent damage is only logged: the item is passed over for good."""
    transient = [p for p in problems if p.transient]
    if transient:
        raise StorageUnavailable(f"{what}: {transient[0].message}", protocol.STORAGE_UNAVAILABLE, transient=True)
    for problem in problems:
        log.warning("%s: passed over %s: %s", what, problem.path, problem.message)


class _Hasher:
    """SHA-256 of what is sent, computed by a helper thread while the caller sends the chunk.

    hashlib releases the GIL on large buffers, so hashing overlaps the socket write instead of adding to
    it (docs/PERFORMANCE.md). Updates stay in order: each waits for the previous one.
    """

    def __init__(self, enabled: bool = True) -> None:
        self._digest = hashlib.sha256()
        self._enabled = enabled
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="upload-hash")
        self._pending: Future[None] | None = None

    def update(self, chunk: bytes) -> None:
        if not self._enabled:  # the caller knows the digest of its bytes
            return
        self._wait()
        self._pending = self._thread.submit(self._digest.update, chunk)

    def hexdigest(self) -> str:
        self._wait()
        return self._digest.hexdigest()

    def _wait(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def __enter__(self) -> _Hasher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._thread.shutdown()


def _exact(chunks: Iterable[bytes], length: int, digest: _Hasher) -> Iterator[bytes]:
    """Yield `chunks` while checking they add up to exactly `length`.

    The chunk that completes `length` is held back until the source is known to be exhausted: a
    source longer than announced is then refused while the agent still misses bytes, so it can never
    acknowledge a body the caller did not mean.
    """
    sent = 0
    held: bytes | None = None
    for chunk in chunks:
        if not chunk:
            continue
        if held is not None or sent + len(chunk) > length:
            raise IncompleteTransfer(
                f"the data source yields more than the announced {length} bytes", protocol.INCOMPLETE_TRANSFER
            )
        sent += len(chunk)
        digest.update(chunk)
        if sent == length:
            held = chunk
        else:
            yield chunk
    if sent != length:
        raise IncompleteTransfer(f"the data source ended after {sent} of {length} bytes", protocol.INCOMPLETE_TRANSFER)
    if held is not None:
        yield held
