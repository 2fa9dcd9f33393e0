"""`/domains` and `/domains/{sd}`: list, create, read, attach, detach, and the OVFs of old engines.

File domains live under the agent's roots, block domains on its devices (`AgentConfig.devices`); both
answer in one shape, `domain_json`, with `"storage"` saying which.
"""

from __future__ import annotations

import base64
import os
from typing import Any

from ovfstore.agent.answers import problem_json
from ovfstore.agent.config import AgentConfig
from ovfstore.agent.handlers.bodies import field, json_object
from ovfstore.agent.handlers.locate import domain_of
from ovfstore.agent.server import Request, Response, json_response
from ovfstore.storage.block.devices import Device, probe_all, vg_of, volume_groups
from ovfstore.storage.block.domain import BlockDomain
from ovfstore.storage.domain import FileDomain
from ovfstore.storage.domain import _is_uuid as is_uuid
from ovfstore.storage.domains import Domain, find_block_domain, scan_all
from ovfstore.storage.errors import DomainNotFound, InvalidArgument
from ovfstore.storage.metadata import DomainMetadata
from ovfstore.storage.mounts import mounted_at
from ovfstore.store.quoting import cut, quoted


def domain_json(domain: Domain, meta: DomainMetadata) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "id": domain.sd_id,
        "path": domain.path,
        "storage": domain.storage,
        "class": meta.domain_class,
        "pool_id": meta.pool_id or None,
        "role": meta.role,
        "type": meta.storage_type,
        "version": meta.version,
        "description": meta.description,
        "checksum": str(meta.checksum),
        "metadata": dict(meta.values),
    }
    if isinstance(domain, BlockDomain):
        answer["vg_uuid"] = domain.vg_uuid
        answer["devices"] = [
            {"id": domain.lun_ids.get(path, os.path.basename(path)), "path": path, "pv_uuid": domain.vg.pvs[name].id}
            for name, path in sorted(domain.pv_paths.items(), key=lambda item: (len(item[0]), item[0]))
        ]
    return answer


def list_domains(config: AgentConfig, request: Request) -> Response:
    """Every domain under the roots and on the devices; one that cannot be read is listed as a problem
    (`problem_json`, with its `id`) and hides no other. With `?path=`, the one domain there (a directory
    under a root, or `/dev/<domain id>` for a block domain), or its error."""
    path = request.query.get("path")
    if path:
        block = _block_at(config, path)
        domain: Domain = block if block is not None else FileDomain(path, config.roots)
        return json_response([domain_json(domain, domain.metadata())])
    found, problems = scan_all(config.roots, config.devices, config.lvm_system_dir)
    answer = [domain_json(d, meta) for d, meta in found]
    answer += [dict(problem_json(p), id=os.path.basename(p.path)) for p in problems]
    return json_response(answer)


def find_mount(config: AgentConfig, request: Request) -> Response:
    """`?type=nfs|posixfs|glusterfs&address=..&path=..`: the directory under the roots where that storage
    connection is mounted (VDSM's mount point, `storage.mounts`), or DomainNotFound saying where to mount it."""
    query = request.query
    found = mounted_at(config.roots, query.get("type", ""), query.get("address", ""), query.get("path", ""))
    return json_response({"path": found})


def _block_at(config: AgentConfig, path: str) -> BlockDomain | None:
    parent, name = os.path.split(path.rstrip("/"))
    if parent != "/dev" or not config.devices:
        return None
    found = find_block_domain(config.devices, name, config.lvm_system_dir)
    if found is None:
        raise DomainNotFound(f"{cut(path)}: no block storage domain of that id is on the agent's devices")
    return found


def create_domain(config: AgentConfig, request: Request) -> Response:
    data = json_object(request)
    if "devices" in data:
        return _create_block(config, data)
    if not config.roots:
        raise InvalidArgument("the agent has no storage root (--root) for a file domain; give devices for a block one")
    domain = FileDomain.create(
        config.roots,
        field(data, "parent", str, config.roots[0]),
        field(data, "id", str),
        field(data, "description", str, ""),
        field(data, "type", str, "LOCALFS"),
        field(data, "class", str, "Data"),
        field(data, "remote_path", str, ""),
    )
    return json_response(domain_json(domain, domain.metadata()), 201)


def _chosen(config: AgentConfig, names: list[Any]) -> list[Device]:
    """The agent's devices the request names, by LUN id or path, in its order."""
    if not names or not all(isinstance(n, str) for n in names):
        raise InvalidArgument("field 'devices' must be a non-empty list of LUN ids or device paths")
    available = probe_all(config.devices)
    chosen = []
    for name in names:
        real = os.path.realpath(name) if name.startswith("/") else None
        match = [d for d in available if name in (d.lun_id, d.path) or real == os.path.realpath(d.path)]
        if not match:
            raise InvalidArgument(
                f"device {quoted(name)} is not among the agent's devices ({cut(', '.join(config.devices) or 'none')}); "
                "see GET /devices"
            )
        chosen.append(match[0])
    return chosen


def _create_block(config: AgentConfig, data: dict[str, Any]) -> Response:
    devices = _chosen(config, field(data, "devices", list))
    domain = BlockDomain.create(
        [d.path for d in devices],
        field(data, "id", str),
        field(data, "description", str, ""),
        field(data, "type", str, "ISCSI"),
        field(data, "class", str, "Data"),
        config.lvm_system_dir,
        {d.path: d.lun_id for d in devices},
    )
    return json_response(domain_json(domain, domain.metadata()), 201)


def list_devices(config: AgentConfig, request: Request) -> Response:
    """The block devices (and image files) the agent may use, and the PV, VG and domain each holds."""
    devices = probe_all(config.devices)
    groups = volume_groups(devices)
    answer = []
    for device in devices:
        vg = vg_of(device, groups)
        is_domain = vg is not None and is_uuid(vg.name) and any(t.startswith("RHAT_storage_domain") for t in vg.tags)
        answer.append(
            {
                "id": device.lun_id, "path": device.path, "size": device.size, "vendor": device.vendor,
                "product": device.product, "serial": device.serial, "pv_uuid": device.pv_uuid,
                "signature": device.signature,
                "vg_name": vg.name if vg else None, "vg_uuid": vg.id if vg else None,
                "domain_id": vg.name if vg is not None and is_domain else None,
            }
        )  # fmt: skip
    return json_response(answer)


def domain_info(config: AgentConfig, request: Request) -> Response:
    domain = domain_of(config, request)
    return json_response(domain_json(domain, domain.metadata()))


def attach(config: AgentConfig, request: Request) -> Response:
    data = json_object(request)
    domain = domain_of(config, request)
    meta = domain.attach(field(data, "pool_id", str), field(data, "master", bool, False))
    return json_response(domain_json(domain, meta))


def detach(config: AgentConfig, request: Request) -> Response:
    data = json_object(request)
    domain = domain_of(config, request)
    meta = domain.detach(field(data, "pool_id", str), field(data, "force", bool, False))
    return json_response(domain_json(domain, meta))


def legacy_ovfs(config: AgentConfig, request: Request) -> Response:
    """`{"<vmId>": "<base64>"}`; an OVF that cannot be read is `{"<vmId>": problem}` instead. A block
    domain answers `{}`: its `master` LV is ext3 and stale since OVF stores exist."""
    ovfs, problems = domain_of(config, request).scan_legacy()
    answer: dict[str, Any] = {vm: base64.b64encode(data).decode() for vm, data in ovfs.items()}
    for problem in problems:
        answer[os.path.basename(os.path.dirname(problem.path))] = problem_json(problem)
    return json_response(answer)
