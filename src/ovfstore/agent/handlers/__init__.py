"""The agent's endpoints, one module per resource; `ROUTES` is the table `create_app` serves.

An endpoint takes the agent's configuration and the request and returns a `Response`, or streams its
answer itself and returns None. It raises storage errors as they come; `create_app` makes them answers.
"""

from __future__ import annotations

from collections.abc import Callable

from ovfstore.agent.config import AgentConfig
from ovfstore.agent.handlers import domains, health, images, transfer, volumes
from ovfstore.agent.server import Request, Response

Endpoint = Callable[[AgentConfig, Request], Response | None]

_VOLUME = "/domains/{sd}/images/{img}/volumes/{vol}"

ROUTES: list[tuple[str, str, Endpoint]] = [
    ("GET", "/health", health.health),
    ("GET", "/devices", domains.list_devices),
    ("GET", "/domains", domains.list_domains),
    ("POST", "/domains", domains.create_domain),
    ("GET", "/mounts", domains.find_mount),
    ("GET", "/domains/{sd}", domains.domain_info),
    ("POST", "/domains/{sd}/attach", domains.attach),
    ("POST", "/domains/{sd}/detach", domains.detach),
    ("GET", "/domains/{sd}/legacy-ovfs", domains.legacy_ovfs),
    ("GET", "/domains/{sd}/images", images.list_images),
    ("DELETE", "/domains/{sd}/images/{img}", images.delete_image),
    ("GET", "/domains/{sd}/volumes", volumes.list_volumes),
    ("POST", "/domains/{sd}/volumes", volumes.create_volume),
    ("GET", "/domains/{sd}/images/{img}/volumes", volumes.list_volumes),
    ("GET", _VOLUME, volumes.volume_info),
    ("PUT", _VOLUME + "/description", volumes.set_description),
    ("POST", _VOLUME + "/resize", volumes.resize_volume),
    ("PUT", _VOLUME + "/data", transfer.upload),
    ("GET", _VOLUME + "/data", transfer.download),
    ("POST", _VOLUME + "/copy", transfer.copy),
]
