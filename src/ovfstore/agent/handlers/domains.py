"""`/domains` and `/domains/{sd}`: list, create, read, attach, detach, and the OVFs of old engines."""

from __future__ import annotations

import base64
from typing import Any

from ovfstore.agent.config import AgentConfig
from ovfstore.agent.handlers.bodies import field, json_object
from ovfstore.agent.handlers.locate import domain_of
from ovfstore.agent.server import Request, Response, json_response
from ovfstore.storage.domain import FileDomain, find_domains
from ovfstore.storage.metadata import DomainMetadata


def domain_json(domain: FileDomain, meta: DomainMetadata) -> dict[str, Any]:
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


def list_domains(config: AgentConfig, request: Request) -> Response:
    roots = config.roots
    path = request.query.get("path")
    domains = [FileDomain(path, roots)] if path else [FileDomain(p, roots) for p in find_domains(roots)]
    return json_response([domain_json(d, d.metadata()) for d in domains])


def create_domain(config: AgentConfig, request: Request) -> Response:
    data = json_object(request)
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
    ovfs = domain_of(config, request).legacy_ovfs()
    return json_response({vm: base64.b64encode(data).decode() for vm, data in ovfs.items()})
