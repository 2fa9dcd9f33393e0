"""`/domains` and `/domains/{sd}`: list, create, read, attach, detach, and the OVFs of old engines."""

from __future__ import annotations

import base64
import os
from typing import Any

from ovfstore.agent.answers import problem_json
from ovfstore.agent.config import AgentConfig
from ovfstore.agent.handlers.bodies import field, json_object
from ovfstore.agent.handlers.locate import domain_of
from ovfstore.agent.server import Request, Response, json_response
from ovfstore.storage.domain import FileDomain, scan_domains
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
    """Every domain under the roots; one that cannot be read is listed as a problem (`problem_json`,
    with its `id`) and hides no other. With `?path=`, the one domain there, or its error."""
    path = request.query.get("path")
    if path:
        domain = FileDomain(path, config.roots)
        return json_response([domain_json(domain, domain.metadata())])
    found, problems = scan_domains(config.roots)
    answer = [domain_json(d, meta) for d, meta in found]
    answer += [dict(problem_json(p), id=os.path.basename(p.path)) for p in problems]
    return json_response(answer)


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
    """`{"<vmId>": "<base64>"}`; an OVF that cannot be read is `{"<vmId>": problem}` instead."""
    ovfs, problems = domain_of(config, request).scan_legacy()
    answer: dict[str, Any] = {vm: base64.b64encode(data).decode() for vm, data in ovfs.items()}
    for problem in problems:
        answer[os.path.basename(os.path.dirname(problem.path))] = problem_json(problem)
    return json_response(answer)
