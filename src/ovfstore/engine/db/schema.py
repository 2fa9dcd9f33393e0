"""The engine's tables (SQLAlchemy Core).

Column names are the model's field names, so a row becomes a dataclass without a mapping table. VMs and
templates share one table, `vm_static`, as in oVirt: disk attachments, NICs, permissions and the OVF
generation counters then refer to either through one foreign key.

Besides the inventory, the tables the OVF feature needs:
- `vm_static.db_generation`: bumped in the same transaction as every change that alters the OVF, and
  `changed_at` with it (rows from before revision 0005 have none until their next change).
- `ovf_cache`: the last OVF generated per entity with the generation it was generated from. It has no
  foreign key on purpose: the row of a deleted entity stays (marked `deleted`) until the updater has
  rewritten the domains that stored it.
- `ovf_stores`: one row per OVF store disk: its state, what was last written and the last error.
- `ovf_store_changes`: per domain, the entities changed since its stores were last written.
- `unregistered_entities`, `unregistered_disks`: what an imported domain holds that the engine does not.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)

from ovfstore.engine.db.types import DataclassList, EnumListType, IntEnumType, StrEnumType, UTCDateTime, UUIDList
from ovfstore.model import FoundVolume, LogicalUnit, LunConnection, utcnow
from ovfstore.model import enums as e

# Deterministic constraint names: migrations can then drop or alter them on both databases.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

NAME = 255  # oVirt limits entity names to 255 characters
TEXT = 4000  # descriptions and comments


def _id() -> Column[object]:
    return Column("id", Uuid, primary_key=True)


data_centers = Table(
    "data_centers",
    metadata,
    _id(),
    Column("name", String(NAME), nullable=False, unique=True),
    Column("description", String(TEXT), nullable=False, default=""),
    Column("comment", String(TEXT), nullable=False, default=""),
    Column("local", Boolean, nullable=False, default=False),
    Column("compatibility_version", String(16), nullable=False),
    Column("status", StrEnumType(e.DataCenterStatus), nullable=False),
    Column("mac_pool_start", String(17), nullable=False),
    Column("mac_pool_end", String(17), nullable=False),
)

clusters = Table(
    "clusters",
    metadata,
    _id(),
    Column("name", String(NAME), nullable=False, unique=True),
    Column("data_center_id", ForeignKey("data_centers.id"), nullable=False, index=True),
    Column("description", String(TEXT), nullable=False, default=""),
    Column("comment", String(TEXT), nullable=False, default=""),
    Column("compatibility_version", String(16), nullable=False),
    Column("cpu_type", String(NAME), nullable=False, default=""),
    Column("bios_type", IntEnumType(e.BiosType), nullable=False),
)

hosts = Table(
    "hosts",
    metadata,
    _id(),
    Column("name", String(NAME), nullable=False, unique=True),
    Column("cluster_id", ForeignKey("clusters.id"), nullable=False, index=True),
    Column("address", String(1024), nullable=False),
    Column("description", String(TEXT), nullable=False, default=""),
    Column("status", StrEnumType(e.HostStatus), nullable=False),
)

storage_domains = Table(
    "storage_domains",
    metadata,
    _id(),
    Column("name", String(NAME), nullable=False, unique=True),
    Column("storage_type", StrEnumType(e.StorageType), nullable=False),
    Column("domain_class", StrEnumType(e.DomainClass), nullable=False),
    Column("address", String(NAME), nullable=False, default=""),
    Column("path", String(1024), nullable=False, default=""),
    # Block domains: the volume group's UUID and the LUNs (JSON); "" and [] for file domains.
    Column("vg_uuid", String(64), nullable=False, default=""),
    Column("logical_units", DataclassList(LogicalUnit), nullable=False, default=list),
    Column("description", String(TEXT), nullable=False, default=""),
    Column("comment", String(TEXT), nullable=False, default=""),
    Column("data_center_id", ForeignKey("data_centers.id"), nullable=True, index=True),
    Column("status", StrEnumType(e.DomainStatus), nullable=False),
    Column("master", Boolean, nullable=False, default=False),
    Column("ovf_store_count", Integer, nullable=False, default=2),
    Column("format_version", Integer, nullable=False, default=5),
    Column("backup", Boolean, nullable=False, default=False),
    Column("wipe_after_delete", Boolean, nullable=False, default=False),
    Column("discard_after_delete", Boolean, nullable=False, default=False),
    Column("warning_low_space_indicator", Integer, nullable=False, default=10),
    Column("critical_space_action_blocker", Integer, nullable=False, default=5),
    Column("vfs_type", String(NAME), nullable=False, default=""),
    Column("mount_options", String(TEXT), nullable=False, default=""),
    Column("nfs_version", String(16), nullable=False, default=""),
    Column("nfs_timeo", Integer, nullable=False, default=0),
    Column("nfs_retrans", Integer, nullable=False, default=0),
)

networks = Table(
    "networks",
    metadata,
    _id(),
    Column("name", String(NAME), nullable=False),
    Column("data_center_id", ForeignKey("data_centers.id"), nullable=False, index=True),
    Column("description", String(TEXT), nullable=False, default=""),
    Column("vlan_id", Integer, nullable=True),
    Column("mtu", Integer, nullable=False, default=0),
    Column("vm_network", Boolean, nullable=False, default=True),
    UniqueConstraint("data_center_id", "name"),
)

vnic_profiles = Table(
    "vnic_profiles",
    metadata,
    _id(),
    Column("name", String(NAME), nullable=False),
    Column("network_id", ForeignKey("networks.id"), nullable=False, index=True),
    Column("description", String(TEXT), nullable=False, default=""),
    UniqueConstraint("network_id", "name"),
)

roles = Table(
    "roles",
    metadata,
    _id(),
    Column("name", String(NAME), nullable=False, unique=True),
    Column("description", String(TEXT), nullable=False, default=""),
    Column("administrative", Boolean, nullable=False, default=False),
    Column("read_only", Boolean, nullable=False, default=False),
)

vm_static = Table(
    "vm_static",
    metadata,
    _id(),
    Column("entity_type", StrEnumType(e.EntityType), nullable=False, index=True),
    Column("name", String(NAME), nullable=False, index=True),
    Column("description", String(TEXT), nullable=False, default=""),
    Column("comment", String(TEXT), nullable=False, default=""),
    Column("cluster_id", ForeignKey("clusters.id"), nullable=True, index=True),
    Column("os_type", String(64), nullable=False),
    Column("vm_type", IntEnumType(e.VmType), nullable=False),
    Column("memory_mb", Integer, nullable=False),
    Column("max_memory_mb", Integer, nullable=False),
    Column("min_memory_mb", Integer, nullable=False),
    Column("cpu_sockets", Integer, nullable=False),
    Column("cpu_cores", Integer, nullable=False),
    Column("cpu_threads", Integer, nullable=False),
    Column("high_availability", Boolean, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("stateless", Boolean, nullable=False),
    Column("delete_protected", Boolean, nullable=False),
    Column("display_type", IntEnumType(e.DisplayType), nullable=False),
    Column("graphics", EnumListType(e.GraphicsType), nullable=False),
    Column("bios_type", IntEnumType(e.BiosType), nullable=False),
    Column("boot_sequence", IntEnumType(e.BootSequence), nullable=False),
    Column("boot_menu_enabled", Boolean, nullable=False),
    Column("time_zone", String(64), nullable=False),
    Column("usb_policy", StrEnumType(e.UsbPolicy), nullable=False),
    Column("smartcard_enabled", Boolean, nullable=False),
    Column("soundcard_enabled", Boolean, nullable=False),
    Column("custom_emulated_machine", String(64), nullable=False),
    Column("custom_cpu_name", String(NAME), nullable=False),
    Column("lease_domain_id", ForeignKey("storage_domains.id"), nullable=True),
    Column("origin", IntEnumType(e.OriginType), nullable=False),
    Column("creation_date", UTCDateTime, nullable=False),
    Column("db_generation", BigInteger, nullable=False, default=1),
    # When db_generation last moved (or the row was added): how old a change not yet in the stores is.
    Column("changed_at", UTCDateTime, nullable=True, default=utcnow),
    # VMs only
    Column("template_id", ForeignKey("vm_static.id"), nullable=True, index=True),
    Column("use_latest_template_version", Boolean, nullable=True),
    Column("status", IntEnumType(e.VmStatus), nullable=True),
    Column("initialized", Boolean, nullable=True),
    # templates only
    Column("template_status", StrEnumType(e.TemplateStatus), nullable=True),
    Column("base_template_id", ForeignKey("vm_static.id"), nullable=True, index=True),
    Column("version_number", Integer, nullable=True),
    Column("version_name", String(NAME), nullable=True),
    Column("disabled", Boolean, nullable=True),
    Column("sealed", Boolean, nullable=True),
)

disks = Table(
    "disks",
    metadata,
    _id(),
    Column("alias", String(NAME), nullable=False),
    Column("description", String(TEXT), nullable=False, default=""),
    Column("provisioned_size", BigInteger, nullable=False),
    Column("shareable", Boolean, nullable=False),
    Column("wipe_after_delete", Boolean, nullable=False),
    Column("content_type", StrEnumType(e.DiskContentType), nullable=False),
    Column("status", StrEnumType(e.DiskStatus), nullable=False),
    Column("storage_type", StrEnumType(e.DiskStorageType), nullable=False),
    Column("lun_id", String(NAME), nullable=True),
    Column("creation_date", UTCDateTime, nullable=False),
    # Direct LUN disks: what identifies the LUN beyond its id, and its paths (migration 0008).
    Column("lun_vendor", String(NAME), nullable=False, default=""),
    Column("lun_product", String(NAME), nullable=False, default=""),
    Column("lun_serial", String(NAME), nullable=False, default=""),
    Column("lun_connections", DataclassList(LunConnection), nullable=False, default=list),
)

# Which domains hold a disk's volume chain (oVirt: image_storage_domain_map).
disk_domains = Table(
    "disk_domains",
    metadata,
    Column("disk_id", ForeignKey("disks.id", ondelete="CASCADE"), primary_key=True),
    Column("domain_id", ForeignKey("storage_domains.id"), primary_key=True, index=True),
)

volumes = Table(
    "volumes",
    metadata,
    _id(),
    Column("disk_id", ForeignKey("disks.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("parent_id", Uuid, nullable=True),
    Column("format", StrEnumType(e.VolumeFormat), nullable=False),
    Column("volume_type", StrEnumType(e.VolumeType), nullable=False),
    Column("capacity", BigInteger, nullable=False),
    Column("actual_size", BigInteger, nullable=False),
    Column("legality", StrEnumType(e.VolumeLegality), nullable=False),
    Column("snapshot_id", Uuid, nullable=True),
    Column("creation_date", UTCDateTime, nullable=False),
)

disk_attachments = Table(
    "disk_attachments",
    metadata,
    Column("entity_id", ForeignKey("vm_static.id", ondelete="CASCADE"), primary_key=True),
    Column("disk_id", ForeignKey("disks.id", ondelete="CASCADE"), primary_key=True, index=True),
    Column("interface", StrEnumType(e.DiskInterface), nullable=False),
    Column("bootable", Boolean, nullable=False),
    Column("read_only", Boolean, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("pass_discard", Boolean, nullable=False),
)

nics = Table(
    "nics",
    metadata,
    _id(),
    Column("entity_id", ForeignKey("vm_static.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(NAME), nullable=False),
    Column("mac", String(17), nullable=True, index=True),
    Column("vnic_profile_id", ForeignKey("vnic_profiles.id"), nullable=True, index=True),
    Column("interface", IntEnumType(e.NicInterface), nullable=False),
    Column("linked", Boolean, nullable=False),
    Column("plugged", Boolean, nullable=False),
    UniqueConstraint("entity_id", "name"),
)

snapshots = Table(
    "snapshots",
    metadata,
    _id(),
    Column("vm_id", ForeignKey("vm_static.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("type", StrEnumType(e.SnapshotType), nullable=False),
    Column("status", StrEnumType(e.SnapshotStatus), nullable=False),
    Column("description", String(TEXT), nullable=False, default=""),
    Column("creation_date", UTCDateTime, nullable=False),
    Column("memory", Text, nullable=False, default=""),
)

permissions = Table(
    "permissions",
    metadata,
    _id(),
    Column("entity_id", ForeignKey("vm_static.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("user_name", String(NAME), nullable=False),
    Column("role_id", ForeignKey("roles.id"), nullable=False, index=True),
    UniqueConstraint("entity_id", "user_name", "role_id"),
)

affinity_groups = Table(
    "affinity_groups",
    metadata,
    _id(),
    Column("name", String(NAME), nullable=False),
    Column("cluster_id", ForeignKey("clusters.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("description", String(TEXT), nullable=False, default=""),
    Column("positive", Boolean, nullable=False),
    Column("enforcing", Boolean, nullable=False),
    UniqueConstraint("cluster_id", "name"),
)

affinity_labels = Table(
    "affinity_labels",
    metadata,
    _id(),
    Column("name", String(NAME), nullable=False, unique=True),
)

affinity_group_members = Table(
    "affinity_group_members",
    metadata,
    Column("group_id", ForeignKey("affinity_groups.id", ondelete="CASCADE"), primary_key=True),
    Column("entity_id", ForeignKey("vm_static.id", ondelete="CASCADE"), primary_key=True, index=True),
)

affinity_label_members = Table(
    "affinity_label_members",
    metadata,
    Column("label_id", ForeignKey("affinity_labels.id", ondelete="CASCADE"), primary_key=True),
    Column("entity_id", ForeignKey("vm_static.id", ondelete="CASCADE"), primary_key=True, index=True),
)

# --- the OVF feature ---------------------------------------------------------------------------------

ovf_cache = Table(
    "ovf_cache",
    metadata,
    Column("entity_id", Uuid, primary_key=True),
    Column("entity_type", StrEnumType(e.EntityType), nullable=False),
    Column("data_center_id", Uuid, nullable=True, index=True),
    Column("ovf_generation", BigInteger, nullable=False),
    Column("ovf_data", LargeBinary, nullable=False),
    Column("ovf_size", BigInteger, nullable=False),
    # Hashed once when generated: a store's manifest lists it without hashing thousands of documents again.
    Column("ovf_sha256", String(64), nullable=False),
    Column("vm_status", IntEnumType(e.VmStatus), nullable=True),
    # An entity with no disk of its own on any domain (diskless, shareable or direct-LUN disks only)
    # goes into every domain of its data center, including domains attached later.
    Column("dc_wide", Boolean, nullable=False, default=False),
    Column("deleted", Boolean, nullable=False, default=False, index=True),
    Column("updated_at", UTCDateTime, nullable=False),
)

# The domains each cached OVF belongs to as of its `ovf_generation`: the next change compares against
# them to mark outdated the domains an entity leaves as well as those it joins, and a domain's store is
# built from the rows naming it.
ovf_cache_domains = Table(
    "ovf_cache_domains",
    metadata,
    Column("entity_id", ForeignKey("ovf_cache.entity_id", ondelete="CASCADE"), primary_key=True),
    Column("domain_id", ForeignKey("storage_domains.id", ondelete="CASCADE"), primary_key=True, index=True),
)

# Entities whose OVF, at `generation`, is over the largest store member (`store.tarstream.MAX_MEMBER`):
# no store can hold it. The cache keeps their previous OVF, if any (what the stores hold of them), and the
# pool step does not render them again until they change; status reports them as not protected.
ovf_unstorable = Table(
    "ovf_unstorable",
    metadata,
    Column("entity_id", ForeignKey("vm_static.id", ondelete="CASCADE"), primary_key=True),
    Column("generation", BigInteger, nullable=False),
    Column("ovf_size", BigInteger, nullable=False),
    Column("data_center_id", Uuid, nullable=True),
    Column("domain_ids", UUIDList, nullable=False),  # the domains it belongs on (none: DC-wide)
    Column("detected_at", UTCDateTime, nullable=False),
)

ovf_stores = Table(
    "ovf_stores",
    metadata,
    Column("disk_id", ForeignKey("disks.id", ondelete="CASCADE"), primary_key=True),
    Column("domain_id", ForeignKey("storage_domains.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("status", StrEnumType(e.OvfStoreStatus), nullable=False),
    Column("store_generation", BigInteger, nullable=False, default=0),
    Column("size", BigInteger, nullable=True),
    Column("sha256", String(64), nullable=True),
    Column("entity_ids", UUIDList, nullable=False, default=list),
    Column("last_updated", UTCDateTime, nullable=True),
    Column("outdated_since", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    # Incremental writes (engine/updater/append.py): the size of the last whole write, the bytes appended
    # since, the segments the store holds (1 after a whole write), the SHA-256 of the metadata.json last
    # written, and how many unregistered entities the whole write held. NULL where unknown (a store adopted
    # by a recovery, or written before these columns): such a store is written whole next time.
    Column("base_size", BigInteger, nullable=True),
    Column("appended", BigInteger, nullable=False, default=0, server_default="0"),
    Column("segments", Integer, nullable=True),
    Column("status_sha256", String(64), nullable=True),
    Column("unregistered", Integer, nullable=True),
)

# What changed for each domain since its stores were last written, for an incremental write: one row per
# (domain, entity) touched by the pool step, with the token of the pool step that touched it last. The
# domain step reads them, writes what they name, and deletes the rows it read (same token) once every
# store of the domain holds them. Kept only for domains whose stores can be written incrementally.
ovf_store_changes = Table(
    "ovf_store_changes",
    metadata,
    Column("domain_id", ForeignKey("storage_domains.id", ondelete="CASCADE"), primary_key=True),
    Column("entity_id", Uuid, primary_key=True),
    Column("token", BigInteger, nullable=False),
)

unregistered_entities = Table(
    "unregistered_entities",
    metadata,
    Column("entity_id", Uuid, primary_key=True),
    Column("domain_id", ForeignKey("storage_domains.id", ondelete="CASCADE"), primary_key=True),
    Column("entity_type", StrEnumType(e.EntityType), nullable=False),
    Column("name", String(NAME), nullable=False),
    Column("ovf_data", LargeBinary, nullable=False),
    Column("vm_status", IntEnumType(e.VmStatus), nullable=False),
    Column("high_availability", Boolean, nullable=False),
    Column("source", String(64), nullable=False),  # the store disk id, or "legacy" for master/vms
    Column("errors", Text, nullable=False, default=""),
    Column("found_at", UTCDateTime, nullable=False),
)

unregistered_disks = Table(
    "unregistered_disks",
    metadata,
    Column("disk_id", Uuid, primary_key=True),
    Column("domain_id", ForeignKey("storage_domains.id", ondelete="CASCADE"), primary_key=True),
    Column("alias", String(NAME), nullable=False, default=""),
    Column("description", String(TEXT), nullable=False, default=""),
    Column("provisioned_size", BigInteger, nullable=False),
    Column("actual_size", BigInteger, nullable=False),
    Column("volume_ids", UUIDList, nullable=False, default=list),
    Column("entity_ids", UUIDList, nullable=False, default=list),  # entities whose OVFs reference it
    Column("found_at", UTCDateTime, nullable=False),
    # Each volume's parent link, size, format and legality as found (migration 0009).
    Column("volumes", DataclassList(FoundVolume), nullable=False, default=list),
)

# What happened that an operator should know: store writes that failed, stores refused as too large,
# domains that recovered. oVirt calls these events (the audit log).
events = Table(
    "events",
    metadata,
    _id(),
    Column("time", UTCDateTime, nullable=False, index=True),
    Column("severity", String(16), nullable=False),  # normal, warning, error (oVirt's names)
    Column("code", String(64), nullable=False),
    Column("message", Text, nullable=False),
    Column("domain_id", Uuid, nullable=True, index=True),
)

# Users of the REST API, named as oVirt names them (`admin@internal`). Only a salted hash of the password
# is kept (`scrypt$...`); `role` is `admin` (everything) or `readonly` (GET only).
users = Table(
    "users",
    metadata,
    _id(),
    Column("name", String(NAME), nullable=False, unique=True),
    Column("password_hash", String(512), nullable=False),
    Column("role", String(32), nullable=False),
    Column("created", UTCDateTime, nullable=False),
)

#: One row (id 1): the lease of the engine that runs the OVF updater (engine/leadership.py). `term` grows
#: with each new leader; `session` tells one run of an engine from the next.
leadership = Table(
    "leadership",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("term", BigInteger, nullable=False),
    Column("engine", String(NAME), nullable=False),
    Column("session", String(64), nullable=False),
    Column("since", UTCDateTime),
    Column("expires_at", UTCDateTime, nullable=False),
)
