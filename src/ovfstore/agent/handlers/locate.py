"""The domain, image and volume a request's path names (`{sd}`, `{img}`, `{vol}`), found under the roots."""

from __future__ import annotations

from ovfstore.agent.config import AgentConfig
from ovfstore.agent.server import Request
from ovfstore.storage.domain import FileDomain, check_uuid


def domain_of(config: AgentConfig, request: Request) -> FileDomain:
    return FileDomain.find(config.roots, request.params["sd"])


def image_of(request: Request) -> str:
    return check_uuid(request.params["img"], "image id")


def volume_of(config: AgentConfig, request: Request) -> tuple[FileDomain, str, str]:
    """The domain, the image id and the volume id (checked by the domain when it builds a path)."""
    return domain_of(config, request), image_of(request), request.params["vol"]
