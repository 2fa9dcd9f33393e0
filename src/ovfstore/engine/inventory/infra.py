"""Commands on the infrastructure: data centers, clusters, hosts, storage domains, networks and vNIC
profiles, roles and permissions, affinity groups and labels.

Most of these do not appear in an OVF. Those that do bump every entity whose OVF names them: a cluster's
name and compatibility version, a network's or vNIC profile's name, a role's name, an affinity group's or
label's name and membership, a permission.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import delete, insert, select

from ovfstore.engine import macs
from ovfstore.engine.db import schema as s
from ovfstore.engine.db.rows import values
from ovfstore.engine.errors import Conflict, InvalidInput, NotFound
from ovfstore.engine.inventory import lookups
from ovfstore.engine.inventory.base import CommandsBase, Tx, apply_changes, check_name, exists
from ovfstore.model import (
    AffinityGroup,
    AffinityLabel,
    Cluster,
    DataCenter,
    Host,
    Network,
    Permission,
    Role,
    StorageDomain,
    VnicProfile,
)

MAX_OVF_STORES = 16  # oVirt accepts 0..16 OVF stores per domain


class InfraCommands(CommandsBase):
    # --- data centers ------------------------------------------------------------------------------

    def add_data_center(self, dc: DataCenter) -> DataCenter:
        check_name(dc.name, "data center")
        dc.mac_pool_start, dc.mac_pool_end = macs.check_range(dc.mac_pool_start, dc.mac_pool_end)
        with self._tx() as tx:
            self._unique_name(tx.conn, s.data_centers, dc.name, "data center")
            tx.conn.execute(insert(s.data_centers).values(values(dc, s.data_centers)))
        return dc

    def update_data_center(self, dc_id: UUID, **changes: Any) -> DataCenter:
        allowed = (
            "name",
            "description",
            "comment",
            "local",
            "compatibility_version",
            "status",
            "mac_pool_start",
            "mac_pool_end",
        )
        with self._tx() as tx:
            old = self._one(tx.conn, s.data_centers, DataCenter, dc_id, "data center")
            new, effective = apply_changes(old, changes, allowed, "data center")
            if "name" in effective:
                check_name(new.name, "data center")
                self._unique_name(tx.conn, s.data_centers, new.name, "data center")
            if {"mac_pool_start", "mac_pool_end"} & effective.keys():
                new.mac_pool_start, new.mac_pool_end = macs.check_range(new.mac_pool_start, new.mac_pool_end)
                effective.update(mac_pool_start=new.mac_pool_start, mac_pool_end=new.mac_pool_end)
            self._update(tx.conn, s.data_centers, dc_id, effective)
        return new

    def remove_data_center(self, dc_id: UUID) -> None:
        with self._tx() as tx:
            self._one(tx.conn, s.data_centers, DataCenter, dc_id, "data center")
            if exists(tx.conn, s.clusters, s.clusters.c.data_center_id == dc_id):
                raise Conflict(f"data center {dc_id} still has clusters; remove them first")
            if exists(tx.conn, s.storage_domains, s.storage_domains.c.data_center_id == dc_id):
                raise Conflict(f"data center {dc_id} still has storage domains attached; detach them first")
            network_ids = lookups.ids(tx.conn, select(s.networks.c.id).where(s.networks.c.data_center_id == dc_id))
            if network_ids:
                profiles = s.vnic_profiles
                tx.conn.execute(delete(profiles).where(profiles.c.network_id.in_(network_ids)))
                tx.conn.execute(delete(s.networks).where(s.networks.c.id.in_(network_ids)))
            tx.conn.execute(delete(s.data_centers).where(s.data_centers.c.id == dc_id))

    def get_data_center(self, dc_id: UUID) -> DataCenter:
        with self.db.read() as conn:
            return self._one(conn, s.data_centers, DataCenter, dc_id, "data center")

    def list_data_centers(self) -> list[DataCenter]:
        with self.db.read() as conn:
            return self._all(conn, s.data_centers, DataCenter)

    # --- clusters ----------------------------------------------------------------------------------

    def add_cluster(self, cluster: Cluster) -> Cluster:
        check_name(cluster.name, "cluster")
        with self._tx() as tx:
            self._one(tx.conn, s.data_centers, DataCenter, cluster.data_center_id, "data center")
            self._unique_name(tx.conn, s.clusters, cluster.name, "cluster")
            tx.conn.execute(insert(s.clusters).values(values(cluster, s.clusters)))
        return cluster

    def update_cluster(self, cluster_id: UUID, **changes: Any) -> Cluster:
        allowed = ("name", "description", "comment", "compatibility_version", "cpu_type", "bios_type")
        with self._tx() as tx:
            old = self._one(tx.conn, s.clusters, Cluster, cluster_id, "cluster")
            new, effective = apply_changes(old, changes, allowed, "cluster")
            if "name" in effective:
                check_name(new.name, "cluster")
                self._unique_name(tx.conn, s.clusters, new.name, "cluster")
            self._update(tx.conn, s.clusters, cluster_id, effective)
            # An OVF names its cluster and that cluster's compatibility version.
            if {"name", "compatibility_version"} & effective.keys():
                tx.bump(lookups.entities_in_cluster(tx.conn, cluster_id))
        return new

    def remove_cluster(self, cluster_id: UUID) -> None:
        with self._tx() as tx:
            self._one(tx.conn, s.clusters, Cluster, cluster_id, "cluster")
            if lookups.entities_in_cluster(tx.conn, cluster_id):
                raise Conflict(f"cluster {cluster_id} still has VMs or templates; remove or move them first")
            if exists(tx.conn, s.hosts, s.hosts.c.cluster_id == cluster_id):
                raise Conflict(f"cluster {cluster_id} still has hosts; remove them first")
            tx.conn.execute(delete(s.clusters).where(s.clusters.c.id == cluster_id))

    def get_cluster(self, cluster_id: UUID) -> Cluster:
        with self.db.read() as conn:
            return self._one(conn, s.clusters, Cluster, cluster_id, "cluster")

    def list_clusters(self, data_center_id: UUID | None = None) -> list[Cluster]:
        where = [] if data_center_id is None else [s.clusters.c.data_center_id == data_center_id]
        with self.db.read() as conn:
            return self._all(conn, s.clusters, Cluster, *where)

    # --- hosts -------------------------------------------------------------------------------------

    def add_host(self, host: Host) -> Host:
        check_name(host.name, "host")
        if not host.address.strip():
            raise InvalidInput("a host needs the address of its agent (http://host:port)")
        with self._tx() as tx:
            self._one(tx.conn, s.clusters, Cluster, host.cluster_id, "cluster")
            self._unique_name(tx.conn, s.hosts, host.name, "host")
            tx.conn.execute(insert(s.hosts).values(values(host, s.hosts)))
        return host

    def update_host(self, host_id: UUID, **changes: Any) -> Host:
        with self._tx() as tx:
            old = self._one(tx.conn, s.hosts, Host, host_id, "host")
            new, effective = apply_changes(old, changes, ("name", "address", "description", "status"), "host")
            if "name" in effective:
                check_name(new.name, "host")
                self._unique_name(tx.conn, s.hosts, new.name, "host")
            self._update(tx.conn, s.hosts, host_id, effective)
        return new

    def remove_host(self, host_id: UUID) -> None:
        with self._tx() as tx:
            self._one(tx.conn, s.hosts, Host, host_id, "host")
            tx.conn.execute(delete(s.hosts).where(s.hosts.c.id == host_id))

    def get_host(self, host_id: UUID) -> Host:
        with self.db.read() as conn:
            return self._one(conn, s.hosts, Host, host_id, "host")

    def list_hosts(self, cluster_id: UUID | None = None) -> list[Host]:
        where = [] if cluster_id is None else [s.hosts.c.cluster_id == cluster_id]
        with self.db.read() as conn:
            return self._all(conn, s.hosts, Host, *where)

    # --- storage domains ---------------------------------------------------------------------------

    def add_storage_domain(self, domain: StorageDomain) -> StorageDomain:
        check_name(domain.name, "storage domain")
        _check_store_count(domain.ovf_store_count)
        if domain.storage_type.is_file and not domain.path:
            raise InvalidInput(f"a {domain.storage_type.value} storage domain needs a path")
        with self._tx() as tx:
            if domain.data_center_id is not None:
                self._one(tx.conn, s.data_centers, DataCenter, domain.data_center_id, "data center")
            self._unique_name(tx.conn, s.storage_domains, domain.name, "storage domain")
            tx.conn.execute(insert(s.storage_domains).values(values(domain, s.storage_domains)))
            tx.domains.add(domain.id)
        return domain

    def update_storage_domain(self, domain_id: UUID, **changes: Any) -> StorageDomain:
        allowed = ("name", "description", "comment", "status", "master", "ovf_store_count", "data_center_id")
        with self._tx() as tx:
            old = self._one(tx.conn, s.storage_domains, StorageDomain, domain_id, "storage domain")
            new, effective = apply_changes(old, changes, allowed, "storage domain")
            if "name" in effective:
                check_name(new.name, "storage domain")
                self._unique_name(tx.conn, s.storage_domains, new.name, "storage domain")
            if "ovf_store_count" in effective:
                _check_store_count(new.ovf_store_count)
            if "data_center_id" in effective:
                if new.data_center_id is not None:
                    self._one(tx.conn, s.data_centers, DataCenter, new.data_center_id, "data center")
                if self._holds_data_disks(tx, domain_id):
                    raise Conflict(
                        f"storage domain {domain_id} holds disks of its data center; it can move to another "
                        "data center only through detach and attach, which keep its OVF stores"
                    )
            self._update(tx.conn, s.storage_domains, domain_id, effective)
            if {"status", "data_center_id", "ovf_store_count"} & effective.keys():
                tx.domains.add(domain_id)
        return new

    def remove_storage_domain(self, domain_id: UUID) -> None:
        """Forget a domain. Its OVF store disks go with it; data disks must be removed or moved first."""
        with self._tx() as tx:
            self._one(tx.conn, s.storage_domains, StorageDomain, domain_id, "storage domain")
            if self._holds_data_disks(tx, domain_id):
                raise Conflict(f"storage domain {domain_id} still holds disks; remove or move them first")
            store_disks = lookups.ids(
                tx.conn, select(s.ovf_stores.c.disk_id).where(s.ovf_stores.c.domain_id == domain_id)
            )
            if store_disks:
                tx.conn.execute(delete(s.disks).where(s.disks.c.id.in_(store_disks)))
            tx.conn.execute(delete(s.storage_domains).where(s.storage_domains.c.id == domain_id))

    def get_storage_domain(self, domain_id: UUID) -> StorageDomain:
        with self.db.read() as conn:
            return self._one(conn, s.storage_domains, StorageDomain, domain_id, "storage domain")

    def list_storage_domains(self, data_center_id: UUID | None = None) -> list[StorageDomain]:
        d = s.storage_domains
        where = [] if data_center_id is None else [d.c.data_center_id == data_center_id]
        with self.db.read() as conn:
            return self._all(conn, d, StorageDomain, *where)

    def _holds_data_disks(self, tx: Tx, domain_id: UUID) -> bool:
        dd, stores = s.disk_domains, s.ovf_stores
        query = select(dd.c.disk_id).where(dd.c.domain_id == domain_id, dd.c.disk_id.not_in(select(stores.c.disk_id)))
        return tx.conn.execute(query.limit(1)).first() is not None

    # --- networks and vNIC profiles ----------------------------------------------------------------

    def add_network(self, network: Network) -> Network:
        check_name(network.name, "network")
        _check_vlan(network.vlan_id)
        with self._tx() as tx:
            self._one(tx.conn, s.data_centers, DataCenter, network.data_center_id, "data center")
            n = s.networks
            if exists(tx.conn, n, n.c.data_center_id == network.data_center_id, n.c.name == network.name):
                raise Conflict(f"network name {network.name!r} is already used in this data center")
            tx.conn.execute(insert(n).values(values(network, n)))
        return network

    def update_network(self, network_id: UUID, **changes: Any) -> Network:
        allowed = ("name", "description", "vlan_id", "mtu", "vm_network")
        with self._tx() as tx:
            n = s.networks
            old = self._one(tx.conn, n, Network, network_id, "network")
            new, effective = apply_changes(old, changes, allowed, "network")
            _check_vlan(new.vlan_id)
            if "name" in effective:
                check_name(new.name, "network")
                if exists(tx.conn, n, n.c.data_center_id == new.data_center_id, n.c.name == new.name):
                    raise Conflict(f"network name {new.name!r} is already used in this data center")
                # A NIC's item in the OVF names its network.
                profiles = lookups.profiles_of_network(tx.conn, network_id)
                tx.bump(lookups.entities_with_profiles(tx.conn, profiles))
            self._update(tx.conn, n, network_id, effective)
        return new

    def remove_network(self, network_id: UUID) -> None:
        with self._tx() as tx:
            self._one(tx.conn, s.networks, Network, network_id, "network")
            profiles = lookups.profiles_of_network(tx.conn, network_id)
            if lookups.entities_with_profiles(tx.conn, profiles):
                raise Conflict(f"network {network_id} is used by NICs; unplug or move them first")
            tx.conn.execute(delete(s.vnic_profiles).where(s.vnic_profiles.c.network_id == network_id))
            tx.conn.execute(delete(s.networks).where(s.networks.c.id == network_id))

    def get_network(self, network_id: UUID) -> Network:
        with self.db.read() as conn:
            return self._one(conn, s.networks, Network, network_id, "network")

    def list_networks(self, data_center_id: UUID | None = None) -> list[Network]:
        where = [] if data_center_id is None else [s.networks.c.data_center_id == data_center_id]
        with self.db.read() as conn:
            return self._all(conn, s.networks, Network, *where)

    def add_vnic_profile(self, profile: VnicProfile) -> VnicProfile:
        check_name(profile.name, "vNIC profile")
        with self._tx() as tx:
            self._one(tx.conn, s.networks, Network, profile.network_id, "network")
            self._unique_profile_name(tx, profile.network_id, profile.name)
            tx.conn.execute(insert(s.vnic_profiles).values(values(profile, s.vnic_profiles)))
        return profile

    def update_vnic_profile(self, profile_id: UUID, **changes: Any) -> VnicProfile:
        with self._tx() as tx:
            old = self._one(tx.conn, s.vnic_profiles, VnicProfile, profile_id, "vNIC profile")
            new, effective = apply_changes(old, changes, ("name", "description", "network_id"), "vNIC profile")
            if "network_id" in effective:
                old_net = self._one(tx.conn, s.networks, Network, old.network_id, "network")
                new_net = self._one(tx.conn, s.networks, Network, new.network_id, "network")
                if old_net.data_center_id != new_net.data_center_id:
                    raise Conflict("a vNIC profile cannot move to a network of another data center")
            if {"name", "network_id"} & effective.keys():
                check_name(new.name, "vNIC profile")
                self._unique_profile_name(tx, new.network_id, new.name)
                tx.bump(lookups.entities_with_profiles(tx.conn, [profile_id]))
            self._update(tx.conn, s.vnic_profiles, profile_id, effective)
        return new

    def remove_vnic_profile(self, profile_id: UUID) -> None:
        with self._tx() as tx:
            self._one(tx.conn, s.vnic_profiles, VnicProfile, profile_id, "vNIC profile")
            if lookups.entities_with_profiles(tx.conn, [profile_id]):
                raise Conflict(f"vNIC profile {profile_id} is used by NICs; change them first")
            tx.conn.execute(delete(s.vnic_profiles).where(s.vnic_profiles.c.id == profile_id))

    def get_vnic_profile(self, profile_id: UUID) -> VnicProfile:
        with self.db.read() as conn:
            return self._one(conn, s.vnic_profiles, VnicProfile, profile_id, "vNIC profile")

    def list_vnic_profiles(self, network_id: UUID | None = None) -> list[VnicProfile]:
        where = [] if network_id is None else [s.vnic_profiles.c.network_id == network_id]
        with self.db.read() as conn:
            return self._all(conn, s.vnic_profiles, VnicProfile, *where)

    def _unique_profile_name(self, tx: Tx, network_id: UUID, name: str) -> None:
        p = s.vnic_profiles
        if exists(tx.conn, p, p.c.network_id == network_id, p.c.name == name):
            raise Conflict(f"vNIC profile name {name!r} is already used on this network")

    # --- roles and permissions ---------------------------------------------------------------------

    def add_role(self, role: Role) -> Role:
        check_name(role.name, "role")
        with self._tx() as tx:
            self._unique_name(tx.conn, s.roles, role.name, "role")
            tx.conn.execute(insert(s.roles).values(values(role, s.roles)))
        return role

    def update_role(self, role_id: UUID, **changes: Any) -> Role:
        with self._tx() as tx:
            old = self._one(tx.conn, s.roles, Role, role_id, "role")
            new, effective = apply_changes(old, changes, ("name", "description"), "role")
            if "name" in effective:
                check_name(new.name, "role")
                self._unique_name(tx.conn, s.roles, new.name, "role")
                tx.bump(lookups.entities_with_role(tx.conn, role_id))
            self._update(tx.conn, s.roles, role_id, effective)
        return new

    def remove_role(self, role_id: UUID) -> None:
        with self._tx() as tx:
            self._one(tx.conn, s.roles, Role, role_id, "role")
            if lookups.entities_with_role(tx.conn, role_id):
                raise Conflict(f"role {role_id} is granted on VMs or templates; revoke those permissions first")
            tx.conn.execute(delete(s.roles).where(s.roles.c.id == role_id))

    def list_roles(self) -> list[Role]:
        with self.db.read() as conn:
            return self._all(conn, s.roles, Role)

    def add_permission(self, entity_id: UUID, user_name: str, role_id: UUID) -> Permission:
        if "@" not in user_name:
            raise InvalidInput(f"user {user_name!r}: name users as oVirt does, user@profile (admin@internal)")
        with self._tx() as tx:
            lookups.entity_type(tx.conn, entity_id)
            role = self._one(tx.conn, s.roles, Role, role_id, "role")
            p = s.permissions
            where = (p.c.entity_id == entity_id, p.c.user_name == user_name, p.c.role_id == role_id)
            if exists(tx.conn, p, *where):
                raise Conflict(f"{user_name} already has role {role.name} on {entity_id}")
            permission = Permission(entity_id=entity_id, user_name=user_name, role_name=role.name)
            tx.conn.execute(
                insert(p).values(id=permission.id, entity_id=entity_id, user_name=user_name, role_id=role_id)
            )
            tx.bump([entity_id])
        return permission

    def remove_permission(self, permission_id: UUID) -> None:
        with self._tx() as tx:
            p = s.permissions
            entity_id = tx.conn.execute(select(p.c.entity_id).where(p.c.id == permission_id)).scalar()
            if entity_id is None:
                raise NotFound("permission", permission_id)
            tx.conn.execute(delete(p).where(p.c.id == permission_id))
            tx.bump([entity_id])

    def list_permissions(self, entity_id: UUID) -> list[Permission]:
        query = lookups.permissions_query(s.permissions.c.entity_id == entity_id)
        with self.db.read() as conn:
            return [Permission(**row) for row in conn.execute(query).mappings()]

    # --- affinity groups and labels ----------------------------------------------------------------

    def add_affinity_group(self, group: AffinityGroup) -> AffinityGroup:
        check_name(group.name, "affinity group")
        with self._tx() as tx:
            self._one(tx.conn, s.clusters, Cluster, group.cluster_id, "cluster")
            g = s.affinity_groups
            if exists(tx.conn, g, g.c.cluster_id == group.cluster_id, g.c.name == group.name):
                raise Conflict(f"affinity group name {group.name!r} is already used in this cluster")
            tx.conn.execute(insert(g).values(values(group, g)))
        return group

    def update_affinity_group(self, group_id: UUID, **changes: Any) -> AffinityGroup:
        allowed = ("name", "description", "positive", "enforcing")
        with self._tx() as tx:
            g = s.affinity_groups
            old = self._one(tx.conn, g, AffinityGroup, group_id, "affinity group")
            new, effective = apply_changes(old, changes, allowed, "affinity group")
            if "name" in effective:
                check_name(new.name, "affinity group")
                if exists(tx.conn, g, g.c.cluster_id == new.cluster_id, g.c.name == new.name):
                    raise Conflict(f"affinity group name {new.name!r} is already used in this cluster")
                tx.bump(lookups.group_members(tx.conn, group_id))
            self._update(tx.conn, g, group_id, effective)
        return new

    def remove_affinity_group(self, group_id: UUID) -> None:
        with self._tx() as tx:
            self._one(tx.conn, s.affinity_groups, AffinityGroup, group_id, "affinity group")
            tx.bump(lookups.group_members(tx.conn, group_id))
            tx.conn.execute(delete(s.affinity_groups).where(s.affinity_groups.c.id == group_id))

    def list_affinity_groups(self, cluster_id: UUID | None = None) -> list[AffinityGroup]:
        g = s.affinity_groups
        where = [] if cluster_id is None else [g.c.cluster_id == cluster_id]
        with self.db.read() as conn:
            return self._all(conn, g, AffinityGroup, *where)

    def add_affinity_group_member(self, group_id: UUID, entity_id: UUID) -> None:
        with self._tx() as tx:
            group = self._one(tx.conn, s.affinity_groups, AffinityGroup, group_id, "affinity group")
            lookups.entity_type(tx.conn, entity_id)
            if entity_id not in lookups.entities_in_cluster(tx.conn, group.cluster_id):
                raise Conflict(f"{entity_id} is not in the cluster of affinity group {group.name!r}")
            m = s.affinity_group_members
            if not exists(tx.conn, m, m.c.group_id == group_id, m.c.entity_id == entity_id):
                tx.conn.execute(insert(m).values(group_id=group_id, entity_id=entity_id))
                tx.bump([entity_id])

    def remove_affinity_group_member(self, group_id: UUID, entity_id: UUID) -> None:
        with self._tx() as tx:
            m = s.affinity_group_members
            result = tx.conn.execute(delete(m).where(m.c.group_id == group_id, m.c.entity_id == entity_id))
            if result.rowcount:
                tx.bump([entity_id])

    def add_affinity_label(self, label: AffinityLabel) -> AffinityLabel:
        check_name(label.name, "affinity label")
        with self._tx() as tx:
            self._unique_name(tx.conn, s.affinity_labels, label.name, "affinity label")
            tx.conn.execute(insert(s.affinity_labels).values(values(label, s.affinity_labels)))
        return label

    def update_affinity_label(self, label_id: UUID, **changes: Any) -> AffinityLabel:
        with self._tx() as tx:
            old = self._one(tx.conn, s.affinity_labels, AffinityLabel, label_id, "affinity label")
            new, effective = apply_changes(old, changes, ("name",), "affinity label")
            if "name" in effective:
                check_name(new.name, "affinity label")
                self._unique_name(tx.conn, s.affinity_labels, new.name, "affinity label")
                tx.bump(lookups.label_members(tx.conn, label_id))
            self._update(tx.conn, s.affinity_labels, label_id, effective)
        return new

    def remove_affinity_label(self, label_id: UUID) -> None:
        with self._tx() as tx:
            self._one(tx.conn, s.affinity_labels, AffinityLabel, label_id, "affinity label")
            tx.bump(lookups.label_members(tx.conn, label_id))
            tx.conn.execute(delete(s.affinity_labels).where(s.affinity_labels.c.id == label_id))

    def list_affinity_labels(self) -> list[AffinityLabel]:
        with self.db.read() as conn:
            return self._all(conn, s.affinity_labels, AffinityLabel)

    def add_affinity_label_member(self, label_id: UUID, entity_id: UUID) -> None:
        with self._tx() as tx:
            self._one(tx.conn, s.affinity_labels, AffinityLabel, label_id, "affinity label")
            lookups.entity_type(tx.conn, entity_id)
            m = s.affinity_label_members
            if not exists(tx.conn, m, m.c.label_id == label_id, m.c.entity_id == entity_id):
                tx.conn.execute(insert(m).values(label_id=label_id, entity_id=entity_id))
                tx.bump([entity_id])

    def remove_affinity_label_member(self, label_id: UUID, entity_id: UUID) -> None:
        with self._tx() as tx:
            m = s.affinity_label_members
            result = tx.conn.execute(delete(m).where(m.c.label_id == label_id, m.c.entity_id == entity_id))
            if result.rowcount:
                tx.bump([entity_id])


def _check_store_count(count: int) -> None:
    if not 0 <= count <= MAX_OVF_STORES:
        raise InvalidInput(
            f"ovf_store_count {count} is out of range: keep 0 (no OVF stores) to {MAX_OVF_STORES}; 2 is the default"
        )


def _check_vlan(vlan_id: int | None) -> None:
    if vlan_id is not None and not 0 <= vlan_id <= 4094:
        raise InvalidInput(f"VLAN id {vlan_id} is out of range 0..4094")
