"""What an operator says about a registration, and what it reports back."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from ovfstore.engine.errors import Conflict
from ovfstore.model import EntityType, LunConnection


@dataclass(frozen=True, slots=True)
class VnicProfileMapping:
    """NICs on `source_network`/`source_profile` at the old site use `target_profile_id` here (None:
    leave them without a profile, connected to no network)."""

    source_network: str
    source_profile: str
    target_profile_id: UUID | None


@dataclass(frozen=True, slots=True)
class LunMapping:
    """A direct LUN of the old site (by its LUN id) is `target_lun_id` here, reached through
    `target_connections` (none given: the paths the OVF records are kept). The Ansible role's
    `dr_lun_mappings` and the API's `<registration_lun_mapping>` both come to this."""

    target_lun_id: str
    target_connections: tuple[LunConnection, ...] = ()


@dataclass(slots=True)
class RegistrationOptions:
    clone: bool = False  # register a copy: new ids for the entity, its NICs and snapshots, new MACs
    name: str | None = None  # register under this name (needed with `clone` when the name is taken)
    cluster_id: UUID | None = None  # the target cluster; otherwise mapped or found by the original name
    allow_partial_import: bool = False  # drop disks found on no attached domain instead of refusing
    reassign_bad_macs: bool = False  # give NICs whose MAC is in use or out of range a new one
    # Mappings from names at the old site to names here; anything unmapped keeps its original name.
    cluster_mappings: dict[str, str] = field(default_factory=dict)
    vnic_profile_mappings: list[VnicProfileMapping] = field(default_factory=list)
    role_mappings: dict[str, str] = field(default_factory=dict)
    affinity_group_mappings: dict[str, str] = field(default_factory=dict)
    affinity_label_mappings: dict[str, str] = field(default_factory=dict)
    # Direct LUN id at the old site -> the LUN here: its id alone, or with the paths to it.
    lun_mappings: dict[str, str | LunMapping] = field(default_factory=dict)
    domain_mappings: dict[str, str] = field(default_factory=dict)  # storage domain name -> name here


@dataclass(slots=True)
class RegistrationReport:
    entity_id: UUID
    name: str
    entity_type: EntityType
    outcome: str  # "registered", "would_register" (dry run) or "refused"
    reason: str | None = None  # why it was refused
    renamed_from: str | None = None
    registered_id: UUID | None = None  # differs from entity_id only for a clone
    dropped_disks: list[UUID] = field(default_factory=list)
    # Per disk that was not registered as the OVF describes it: (disk id, what happened), for the operator.
    disk_reports: list[tuple[UUID, str]] = field(default_factory=list)
    reassigned_macs: list[tuple[str, str | None, str | None]] = field(default_factory=list)  # NIC, old, new
    warnings: list[str] = field(default_factory=list)


class RegistrationRefused(Conflict):
    """The entity cannot be registered as asked; the message says why and which option would help."""
