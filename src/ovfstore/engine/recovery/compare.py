"""Did a recovery give back what was protected? Compare two inventories entity by entity, field by field.

A few fields cannot survive by design; they are listed with the reason and left out of the comparison.
Everything else an OVF carries must come back equal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from ovfstore.model import OvfData

#: Fields that do not survive a recovery as they were, and why.
NOT_SURVIVING: Mapping[str, str] = {
    "entity.cluster_id": "the new engine's cluster of the same name has its own id",
    "entity.status": "a registered VM is down; its stored run status is reported with the unregistered VM, so "
    "the operator (or the recovery role) starts it",
    "entity.db_generation": "the new engine counts its own changes from 1",
    "data_center_id": "the new engine's data center has its own id",
    "nics.nic.vnic_profile_id": "profiles are matched by network and profile name; the ids are the new engine's",
    "permissions.id": "permission ids are the engine's own; user and role name survive",
    "disks.disk.status": "a disk's lock state is not stored: registered disks are ok",
    "disks.disk.volumes.legality": "kept in the volume's .meta on storage, not in the OVF",
}


def differences(before: Any, after: Any, path: str = "") -> list[str]:
    """`path: before -> after` for every field that differs, but those in `NOT_SURVIVING`."""
    if dataclasses.is_dataclass(before) and not isinstance(before, type):
        if type(before) is not type(after):
            return [f"{path or 'entity'}: a {type(before).__name__} came back as {type(after).__name__}"]
        found = []
        for f in dataclasses.fields(before):
            key = f"{path}.{f.name}" if path else f.name
            found += differences(getattr(before, f.name), getattr(after, f.name), key)
        return found
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [d for b, a in zip(before, after, strict=True) for d in differences(b, a, path)]
    if before != after and path not in NOT_SURVIVING:
        return [f"{path}: {before!r} -> {after!r}"]
    return []


def compare_inventories(original: Mapping[UUID, OvfData], recovered: Mapping[UUID, OvfData]) -> dict[UUID, list[str]]:
    """Per original entity, what came back different (empty when equal); a missing entity says so."""
    result: dict[UUID, list[str]] = {}
    for entity_id, data in original.items():
        if entity_id not in recovered:
            result[entity_id] = [f"{data.entity.name} ({entity_id}) did not come back"]
        else:
            result[entity_id] = differences(data, recovered[entity_id])
    return result
