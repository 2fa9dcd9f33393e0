"""`/domains/{sd}/images`: list and delete images."""

from __future__ import annotations

from ovfstore.agent.config import AgentConfig
from ovfstore.agent.handlers.locate import domain_of, image_of
from ovfstore.agent.server import Request, Response, json_response


def list_images(config: AgentConfig, request: Request) -> Response:
    return json_response(domain_of(config, request).images())


def delete_image(config: AgentConfig, request: Request) -> Response:
    domain = domain_of(config, request)
    domain.delete_image(image_of(request))
    return Response(204)
