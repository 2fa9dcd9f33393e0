"""What one OVF document carries: an entity together with everything it refers to, by name.

The engine builds an `OvfData` from its database to write an OVF; the reader builds one from an OVF to
register the entity on another engine. Names travel beside ids (cluster, template, network, vNIC
profile) because a recovering engine maps them onto its own objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from ovfstore.model.entities import (
    Disk,
    DiskAttachment,
    Nic,
    Permission,
    Snapshot,
    Template,
    Vm,
)
from ovfstore.model.enums import EntityType


@dataclass(kw_only=True, slots=True)
class OvfDisk:
    disk: Disk
    attachment: DiskAttachment


@dataclass(kw_only=True, slots=True)
class OvfNic:
    nic: Nic
    network_name: str | None = None
    profile_name: str | None = None


@dataclass(kw_only=True, slots=True)
class OvfData:
    entity: Vm | Template
    cluster_name: str = ""
    cluster_compatibility_version: str = ""
    data_center_id: UUID | None = None
    template_name: str = "Blank"  # of a VM's template; "" for templates
    base_template_name: str = ""  # of a template version's base
    disks: list[OvfDisk] = field(default_factory=list)
    nics: list[OvfNic] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    permissions: list[Permission] = field(default_factory=list)
    affinity_groups: list[str] = field(default_factory=list)
    affinity_labels: list[str] = field(default_factory=list)
    # When the document was written (OVF `ExportDate`); None: not known yet, the writer then uses the
    # entity's creation date so that its output depends on the data alone.
    export_date: datetime | None = None

    @property
    def entity_type(self) -> EntityType:
        return EntityType.TEMPLATE if isinstance(self.entity, Template) else EntityType.VM

    @property
    def id(self) -> UUID:
        return self.entity.id

    def domain_ids(self) -> set[UUID]:
        """The domains holding a non-shareable image disk of the entity (docs/FORMATS.md section 3)."""
        return {
            domain_id
            for d in self.disks
            if not d.disk.shareable and d.disk.lun_id is None
            for domain_id in d.disk.domain_ids
        }
