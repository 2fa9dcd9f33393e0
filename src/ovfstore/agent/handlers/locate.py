"""The domain, image and volume a request's path names (`{sd}`, `{img}`, `{vol}`), found under the roots
or on the devices."""

from __future__ import annotations

from ovfstore.agent.config import AgentConfig
from ovfstore.agent.server import Request
from ovfstore.storage.domain import check_uuid
from ovfstore.storage.domains import Domain, find_domain


def domain_of(config: AgentConfig, request: Request) -> Domain:
    return find_domain(config.roots, config.devices, request.params["sd"], config.lvm_system_dir)


def image_of(request: Request) -> str:
    return check_uuid(request.params["img"], "image id")


def volume_of(config: AgentConfig, request: Request) -> tuple[Domain, str, str]:
    """The domain, the image id and the volume id (checked by the domain when it builds a path)."""
    return domain_of(config, request), image_of(request), request.params["vol"]
