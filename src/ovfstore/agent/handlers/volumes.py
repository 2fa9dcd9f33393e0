"""`/domains/{sd}/volumes` and `.../images/{img}/volumes[/{vol}]`: list, create, read, describe and resize
volumes."""

from __future__ import annotations

from typing import Any

from ovfstore.agent.answers import problem_json
from ovfstore.agent.config import AgentConfig
from ovfstore.agent.handlers.bodies import field, json_object, optional_id, term_of
from ovfstore.agent.handlers.locate import domain_of, image_of, volume_of
from ovfstore.agent.server import Request, Response, json_response
from ovfstore.storage.domain import VolumeOnDisk
from ovfstore.storage.fencing import fence


def volume_json(volume: VolumeOnDisk) -> dict[str, Any]:
    # The `.meta` keys as VDSM writes them, so the engine reads the same names the format defines.
    return {
        "image": volume.image,
        "volume": volume.volume,
        "apparent_size": volume.apparent_size,
        "actual_size": volume.actual_size,
        "meta": volume.meta.to_dict(),
    }


def list_volumes(config: AgentConfig, request: Request) -> Response:
    """The volumes of one image (`{img}` in the path), or of every image of the domain; a volume that
    cannot be read (or cannot be the OVF store it claims to be) is listed as a problem (`problem_json`)
    and hides no other."""
    domain = domain_of(config, request)
    volumes, problems = domain.scan_volumes(image_of(request) if "img" in request.params else None)
    return json_response([volume_json(v) for v in volumes] + [problem_json(p) for p in problems])


def create_volume(config: AgentConfig, request: Request) -> Response:
    data = json_object(request)
    domain = domain_of(config, request)
    parent = optional_id(data, "parent")
    with fence(domain, term_of(request)):  # an OVF store the leader creates
        volume = domain.create_volume(
            field(data, "image", str),
            field(data, "volume", str),
            field(data, "capacity", int),
            field(data, "format", str, "RAW"),
            field(data, "type", str, "SPARSE"),
            field(data, "disk_type", str, "DATA"),
            field(data, "description", str, ""),
            parent,
        )
    return json_response(volume_json(volume), 201)


def volume_info(config: AgentConfig, request: Request) -> Response:
    domain, img, vol = volume_of(config, request)
    return json_response(volume_json(domain.volume_info(img, vol)))


def set_description(config: AgentConfig, request: Request) -> Response:
    data = json_object(request)
    domain, img, vol = volume_of(config, request)
    with fence(domain, term_of(request)):  # the term's lock held over the volume's: one atomic change
        volume = domain.set_description(img, vol, field(data, "description", str))
    return json_response(volume_json(volume))


def resize_volume(config: AgentConfig, request: Request) -> Response:
    """`{"capacity": bytes}`: a RAW volume grown, or an OVF store made smaller (then ILLEGAL until written)."""
    data = json_object(request)
    domain, img, vol = volume_of(config, request)
    with fence(domain, term_of(request)):  # a deposed leader never resizes a store
        volume = domain.resize_volume(img, vol, field(data, "capacity", int))
    return json_response(volume_json(volume))
