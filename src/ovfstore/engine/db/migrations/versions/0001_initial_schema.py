"""Initial schema: the inventory and the OVF feature's tables (cache, stores, unregistered).

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "affinity_labels",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_affinity_labels")),
        sa.UniqueConstraint("name", name=op.f("uq_affinity_labels_name")),
    )
    op.create_table(
        "data_centers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.String(length=4000), nullable=False),
        sa.Column("comment", sa.String(length=4000), nullable=False),
        sa.Column("local", sa.Boolean(), nullable=False),
        sa.Column("compatibility_version", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("mac_pool_start", sa.String(length=17), nullable=False),
        sa.Column("mac_pool_end", sa.String(length=17), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_centers")),
        sa.UniqueConstraint("name", name=op.f("uq_data_centers_name")),
    )
    op.create_table(
        "disks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("alias", sa.String(length=255), nullable=False),
        sa.Column("description", sa.String(length=4000), nullable=False),
        sa.Column("provisioned_size", sa.BigInteger(), nullable=False),
        sa.Column("shareable", sa.Boolean(), nullable=False),
        sa.Column("wipe_after_delete", sa.Boolean(), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("storage_type", sa.String(length=32), nullable=False),
        sa.Column("lun_id", sa.String(length=255), nullable=True),
        sa.Column("creation_date", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disks")),
    )
    op.create_table(
        "ovf_cache",
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.Column("entity_type", sa.String(length=32), nullable=False),
        sa.Column("data_center_id", sa.Uuid(), nullable=True),
        sa.Column("ovf_generation", sa.BigInteger(), nullable=False),
        sa.Column("ovf_data", sa.LargeBinary(), nullable=False),
        sa.Column("vm_status", sa.Integer(), nullable=True),
        sa.Column("domain_ids", sa.Text(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("entity_id", name=op.f("pk_ovf_cache")),
    )
    with op.batch_alter_table("ovf_cache", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ovf_cache_data_center_id"), ["data_center_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ovf_cache_deleted"), ["deleted"], unique=False)

    op.create_table(
        "roles",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.String(length=4000), nullable=False),
        sa.Column("administrative", sa.Boolean(), nullable=False),
        sa.Column("read_only", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roles")),
        sa.UniqueConstraint("name", name=op.f("uq_roles_name")),
    )
    op.create_table(
        "clusters",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("data_center_id", sa.Uuid(), nullable=False),
        sa.Column("description", sa.String(length=4000), nullable=False),
        sa.Column("comment", sa.String(length=4000), nullable=False),
        sa.Column("compatibility_version", sa.String(length=16), nullable=False),
        sa.Column("cpu_type", sa.String(length=255), nullable=False),
        sa.Column("bios_type", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["data_center_id"], ["data_centers.id"], name=op.f("fk_clusters_data_center_id_data_centers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clusters")),
        sa.UniqueConstraint("name", name=op.f("uq_clusters_name")),
    )
    with op.batch_alter_table("clusters", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_clusters_data_center_id"), ["data_center_id"], unique=False)

    op.create_table(
        "networks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("data_center_id", sa.Uuid(), nullable=False),
        sa.Column("description", sa.String(length=4000), nullable=False),
        sa.Column("vlan_id", sa.Integer(), nullable=True),
        sa.Column("mtu", sa.Integer(), nullable=False),
        sa.Column("vm_network", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["data_center_id"], ["data_centers.id"], name=op.f("fk_networks_data_center_id_data_centers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_networks")),
        sa.UniqueConstraint("data_center_id", "name", name=op.f("uq_networks_data_center_id_name")),
    )
    with op.batch_alter_table("networks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_networks_data_center_id"), ["data_center_id"], unique=False)

    op.create_table(
        "storage_domains",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("storage_type", sa.String(length=32), nullable=False),
        sa.Column("domain_class", sa.String(length=32), nullable=False),
        sa.Column("address", sa.String(length=255), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("description", sa.String(length=4000), nullable=False),
        sa.Column("comment", sa.String(length=4000), nullable=False),
        sa.Column("data_center_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("master", sa.Boolean(), nullable=False),
        sa.Column("ovf_store_count", sa.Integer(), nullable=False),
        sa.Column("format_version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["data_center_id"],
            ["data_centers.id"],
            name=op.f("fk_storage_domains_data_center_id_data_centers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_storage_domains")),
        sa.UniqueConstraint("name", name=op.f("uq_storage_domains_name")),
    )
    with op.batch_alter_table("storage_domains", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_storage_domains_data_center_id"), ["data_center_id"], unique=False)

    op.create_table(
        "volumes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("disk_id", sa.Uuid(), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("format", sa.String(length=32), nullable=False),
        sa.Column("volume_type", sa.String(length=32), nullable=False),
        sa.Column("capacity", sa.BigInteger(), nullable=False),
        sa.Column("actual_size", sa.BigInteger(), nullable=False),
        sa.Column("legality", sa.String(length=32), nullable=False),
        sa.Column("snapshot_id", sa.Uuid(), nullable=True),
        sa.Column("creation_date", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["disk_id"], ["disks.id"], name=op.f("fk_volumes_disk_id_disks"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_volumes")),
    )
    with op.batch_alter_table("volumes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_volumes_disk_id"), ["disk_id"], unique=False)

    op.create_table(
        "affinity_groups",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("cluster_id", sa.Uuid(), nullable=False),
        sa.Column("description", sa.String(length=4000), nullable=False),
        sa.Column("positive", sa.Boolean(), nullable=False),
        sa.Column("enforcing", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["clusters.id"],
            name=op.f("fk_affinity_groups_cluster_id_clusters"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_affinity_groups")),
        sa.UniqueConstraint("cluster_id", "name", name=op.f("uq_affinity_groups_cluster_id_name")),
    )
    with op.batch_alter_table("affinity_groups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_affinity_groups_cluster_id"), ["cluster_id"], unique=False)

    op.create_table(
        "disk_domains",
        sa.Column("disk_id", sa.Uuid(), nullable=False),
        sa.Column("domain_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["disk_id"], ["disks.id"], name=op.f("fk_disk_domains_disk_id_disks"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["domain_id"], ["storage_domains.id"], name=op.f("fk_disk_domains_domain_id_storage_domains")
        ),
        sa.PrimaryKeyConstraint("disk_id", "domain_id", name=op.f("pk_disk_domains")),
    )
    with op.batch_alter_table("disk_domains", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_disk_domains_domain_id"), ["domain_id"], unique=False)

    op.create_table(
        "hosts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("cluster_id", sa.Uuid(), nullable=False),
        sa.Column("address", sa.String(length=1024), nullable=False),
        sa.Column("description", sa.String(length=4000), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["cluster_id"], ["clusters.id"], name=op.f("fk_hosts_cluster_id_clusters")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hosts")),
        sa.UniqueConstraint("name", name=op.f("uq_hosts_name")),
    )
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hosts_cluster_id"), ["cluster_id"], unique=False)

    op.create_table(
        "ovf_stores",
        sa.Column("disk_id", sa.Uuid(), nullable=False),
        sa.Column("domain_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("store_generation", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("entity_ids", sa.Text(), nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outdated_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["disk_id"], ["disks.id"], name=op.f("fk_ovf_stores_disk_id_disks"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["storage_domains.id"],
            name=op.f("fk_ovf_stores_domain_id_storage_domains"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("disk_id", name=op.f("pk_ovf_stores")),
    )
    with op.batch_alter_table("ovf_stores", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ovf_stores_domain_id"), ["domain_id"], unique=False)

    op.create_table(
        "unregistered_disks",
        sa.Column("disk_id", sa.Uuid(), nullable=False),
        sa.Column("domain_id", sa.Uuid(), nullable=False),
        sa.Column("alias", sa.String(length=255), nullable=False),
        sa.Column("description", sa.String(length=4000), nullable=False),
        sa.Column("provisioned_size", sa.BigInteger(), nullable=False),
        sa.Column("actual_size", sa.BigInteger(), nullable=False),
        sa.Column("volume_ids", sa.Text(), nullable=False),
        sa.Column("entity_ids", sa.Text(), nullable=False),
        sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["storage_domains.id"],
            name=op.f("fk_unregistered_disks_domain_id_storage_domains"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("disk_id", "domain_id", name=op.f("pk_unregistered_disks")),
    )
    op.create_table(
        "unregistered_entities",
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.Column("domain_id", sa.Uuid(), nullable=False),
        sa.Column("entity_type", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("ovf_data", sa.LargeBinary(), nullable=False),
        sa.Column("vm_status", sa.Integer(), nullable=False),
        sa.Column("high_availability", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("errors", sa.Text(), nullable=False),
        sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["storage_domains.id"],
            name=op.f("fk_unregistered_entities_domain_id_storage_domains"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("entity_id", "domain_id", name=op.f("pk_unregistered_entities")),
    )
    op.create_table(
        "vm_static",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("entity_type", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.String(length=4000), nullable=False),
        sa.Column("comment", sa.String(length=4000), nullable=False),
        sa.Column("cluster_id", sa.Uuid(), nullable=True),
        sa.Column("os_type", sa.String(length=64), nullable=False),
        sa.Column("vm_type", sa.Integer(), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("max_memory_mb", sa.Integer(), nullable=False),
        sa.Column("min_memory_mb", sa.Integer(), nullable=False),
        sa.Column("cpu_sockets", sa.Integer(), nullable=False),
        sa.Column("cpu_cores", sa.Integer(), nullable=False),
        sa.Column("cpu_threads", sa.Integer(), nullable=False),
        sa.Column("high_availability", sa.Boolean(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("stateless", sa.Boolean(), nullable=False),
        sa.Column("delete_protected", sa.Boolean(), nullable=False),
        sa.Column("display_type", sa.Integer(), nullable=False),
        sa.Column("graphics", sa.String(length=64), nullable=False),
        sa.Column("bios_type", sa.Integer(), nullable=False),
        sa.Column("boot_sequence", sa.Integer(), nullable=False),
        sa.Column("boot_menu_enabled", sa.Boolean(), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("usb_policy", sa.String(length=32), nullable=False),
        sa.Column("smartcard_enabled", sa.Boolean(), nullable=False),
        sa.Column("soundcard_enabled", sa.Boolean(), nullable=False),
        sa.Column("custom_emulated_machine", sa.String(length=64), nullable=False),
        sa.Column("custom_cpu_name", sa.String(length=255), nullable=False),
        sa.Column("lease_domain_id", sa.Uuid(), nullable=True),
        sa.Column("origin", sa.Integer(), nullable=False),
        sa.Column("creation_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("db_generation", sa.BigInteger(), nullable=False),
        sa.Column("template_id", sa.Uuid(), nullable=True),
        sa.Column("use_latest_template_version", sa.Boolean(), nullable=True),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("initialized", sa.Boolean(), nullable=True),
        sa.Column("template_status", sa.String(length=32), nullable=True),
        sa.Column("base_template_id", sa.Uuid(), nullable=True),
        sa.Column("version_number", sa.Integer(), nullable=True),
        sa.Column("version_name", sa.String(length=255), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=True),
        sa.Column("sealed", sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(
            ["base_template_id"], ["vm_static.id"], name=op.f("fk_vm_static_base_template_id_vm_static")
        ),
        sa.ForeignKeyConstraint(["cluster_id"], ["clusters.id"], name=op.f("fk_vm_static_cluster_id_clusters")),
        sa.ForeignKeyConstraint(
            ["lease_domain_id"],
            ["storage_domains.id"],
            name=op.f("fk_vm_static_lease_domain_id_storage_domains"),
        ),
        sa.ForeignKeyConstraint(["template_id"], ["vm_static.id"], name=op.f("fk_vm_static_template_id_vm_static")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vm_static")),
    )
    with op.batch_alter_table("vm_static", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vm_static_base_template_id"), ["base_template_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_vm_static_cluster_id"), ["cluster_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_vm_static_entity_type"), ["entity_type"], unique=False)
        batch_op.create_index(batch_op.f("ix_vm_static_name"), ["name"], unique=False)
        batch_op.create_index(batch_op.f("ix_vm_static_template_id"), ["template_id"], unique=False)

    op.create_table(
        "vnic_profiles",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("network_id", sa.Uuid(), nullable=False),
        sa.Column("description", sa.String(length=4000), nullable=False),
        sa.ForeignKeyConstraint(["network_id"], ["networks.id"], name=op.f("fk_vnic_profiles_network_id_networks")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vnic_profiles")),
        sa.UniqueConstraint("network_id", "name", name=op.f("uq_vnic_profiles_network_id_name")),
    )
    with op.batch_alter_table("vnic_profiles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vnic_profiles_network_id"), ["network_id"], unique=False)

    op.create_table(
        "affinity_group_members",
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entity_id"],
            ["vm_static.id"],
            name=op.f("fk_affinity_group_members_entity_id_vm_static"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["affinity_groups.id"],
            name=op.f("fk_affinity_group_members_group_id_affinity_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "entity_id", name=op.f("pk_affinity_group_members")),
    )
    with op.batch_alter_table("affinity_group_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_affinity_group_members_entity_id"), ["entity_id"], unique=False)

    op.create_table(
        "affinity_label_members",
        sa.Column("label_id", sa.Uuid(), nullable=False),
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entity_id"],
            ["vm_static.id"],
            name=op.f("fk_affinity_label_members_entity_id_vm_static"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["label_id"],
            ["affinity_labels.id"],
            name=op.f("fk_affinity_label_members_label_id_affinity_labels"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("label_id", "entity_id", name=op.f("pk_affinity_label_members")),
    )
    with op.batch_alter_table("affinity_label_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_affinity_label_members_entity_id"), ["entity_id"], unique=False)

    op.create_table(
        "disk_attachments",
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.Column("disk_id", sa.Uuid(), nullable=False),
        sa.Column("interface", sa.String(length=32), nullable=False),
        sa.Column("bootable", sa.Boolean(), nullable=False),
        sa.Column("read_only", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("pass_discard", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["disk_id"], ["disks.id"], name=op.f("fk_disk_attachments_disk_id_disks"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["entity_id"],
            ["vm_static.id"],
            name=op.f("fk_disk_attachments_entity_id_vm_static"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("entity_id", "disk_id", name=op.f("pk_disk_attachments")),
    )
    with op.batch_alter_table("disk_attachments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_disk_attachments_disk_id"), ["disk_id"], unique=False)

    op.create_table(
        "nics",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("mac", sa.String(length=17), nullable=True),
        sa.Column("vnic_profile_id", sa.Uuid(), nullable=True),
        sa.Column("interface", sa.Integer(), nullable=False),
        sa.Column("linked", sa.Boolean(), nullable=False),
        sa.Column("plugged", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entity_id"], ["vm_static.id"], name=op.f("fk_nics_entity_id_vm_static"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["vnic_profile_id"], ["vnic_profiles.id"], name=op.f("fk_nics_vnic_profile_id_vnic_profiles")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nics")),
        sa.UniqueConstraint("entity_id", "name", name=op.f("uq_nics_entity_id_name")),
    )
    with op.batch_alter_table("nics", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_nics_entity_id"), ["entity_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_nics_mac"), ["mac"], unique=False)
        batch_op.create_index(batch_op.f("ix_nics_vnic_profile_id"), ["vnic_profile_id"], unique=False)

    op.create_table(
        "permissions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.Column("user_name", sa.String(length=255), nullable=False),
        sa.Column("role_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entity_id"],
            ["vm_static.id"],
            name=op.f("fk_permissions_entity_id_vm_static"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["role_id"], ["roles.id"], name=op.f("fk_permissions_role_id_roles")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_permissions")),
        sa.UniqueConstraint(
            "entity_id", "user_name", "role_id", name=op.f("uq_permissions_entity_id_user_name_role_id")
        ),
    )
    with op.batch_alter_table("permissions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_permissions_entity_id"), ["entity_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_permissions_role_id"), ["role_id"], unique=False)

    op.create_table(
        "snapshots",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vm_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("description", sa.String(length=4000), nullable=False),
        sa.Column("creation_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("memory", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["vm_id"], ["vm_static.id"], name=op.f("fk_snapshots_vm_id_vm_static"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_snapshots")),
    )
    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_snapshots_vm_id"), ["vm_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_snapshots_vm_id"))

    op.drop_table("snapshots")
    with op.batch_alter_table("permissions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_permissions_role_id"))
        batch_op.drop_index(batch_op.f("ix_permissions_entity_id"))

    op.drop_table("permissions")
    with op.batch_alter_table("nics", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_nics_vnic_profile_id"))
        batch_op.drop_index(batch_op.f("ix_nics_mac"))
        batch_op.drop_index(batch_op.f("ix_nics_entity_id"))

    op.drop_table("nics")
    with op.batch_alter_table("disk_attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_disk_attachments_disk_id"))

    op.drop_table("disk_attachments")
    with op.batch_alter_table("affinity_label_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_affinity_label_members_entity_id"))

    op.drop_table("affinity_label_members")
    with op.batch_alter_table("affinity_group_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_affinity_group_members_entity_id"))

    op.drop_table("affinity_group_members")
    with op.batch_alter_table("vnic_profiles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vnic_profiles_network_id"))

    op.drop_table("vnic_profiles")
    with op.batch_alter_table("vm_static", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vm_static_template_id"))
        batch_op.drop_index(batch_op.f("ix_vm_static_name"))
        batch_op.drop_index(batch_op.f("ix_vm_static_entity_type"))
        batch_op.drop_index(batch_op.f("ix_vm_static_cluster_id"))
        batch_op.drop_index(batch_op.f("ix_vm_static_base_template_id"))

    op.drop_table("vm_static")
    op.drop_table("unregistered_entities")
    op.drop_table("unregistered_disks")
    with op.batch_alter_table("ovf_stores", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ovf_stores_domain_id"))

    op.drop_table("ovf_stores")
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hosts_cluster_id"))

    op.drop_table("hosts")
    with op.batch_alter_table("disk_domains", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_disk_domains_domain_id"))

    op.drop_table("disk_domains")
    with op.batch_alter_table("affinity_groups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_affinity_groups_cluster_id"))

    op.drop_table("affinity_groups")
    with op.batch_alter_table("volumes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_volumes_disk_id"))

    op.drop_table("volumes")
    with op.batch_alter_table("storage_domains", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_storage_domains_data_center_id"))

    op.drop_table("storage_domains")
    with op.batch_alter_table("networks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_networks_data_center_id"))

    op.drop_table("networks")
    with op.batch_alter_table("clusters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clusters_data_center_id"))

    op.drop_table("clusters")
    op.drop_table("roles")
    with op.batch_alter_table("ovf_cache", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ovf_cache_deleted"))
        batch_op.drop_index(batch_op.f("ix_ovf_cache_data_center_id"))

    op.drop_table("ovf_cache")
    op.drop_table("disks")
    op.drop_table("data_centers")
    op.drop_table("affinity_labels")
