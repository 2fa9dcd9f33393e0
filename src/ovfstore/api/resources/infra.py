"""Data centers, clusters, hosts, networks, vNIC profiles, roles and jobs."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from ovfstore.agent.config import DEFAULT_PORT as AGENT_PORT
from ovfstore.api import search, views
from ovfstore.api.resources.common import action_done, given, listing, name_keys, required, resolve
from ovfstore.api.router import Call, Document, Handler, Router
from ovfstore.api.xmlio import Body, Node, to_bool
from ovfstore.engine.errors import InvalidInput, NotFound
from ovfstore.engine.inventory import (
    UNSET,
    ClusterChanges,
    DataCenterChanges,
    HostChanges,
    NetworkChanges,
    VnicProfileChanges,
)
from ovfstore.model import Cluster, DataCenter, DomainStatus, Host, HostStatus, Network, VnicProfile


def _version(body: Body) -> str | None:
    major, minor = body.int("version/major"), body.int("version/minor")
    if major is None:
        return None
    return f"{major}.{minor or 0}"


# --- data centers -------------------------------------------------------------------------------------------


def dc_status(call: Call, dc: DataCenter) -> str:
    """oVirt shows a data center `up` once its master domain is active, `maintenance` when its domains
    are all down, `uninitialized` before any domain is attached."""
    domains = call.engine.inventory.storage_domains.list(dc.id)
    if any(d.status is DomainStatus.ACTIVE for d in domains):
        return "up"
    return "maintenance" if domains else "uninitialized"


def dc_view(call: Call) -> Callable[[DataCenter], Node]:
    return lambda dc: views.data_center(dc, status=dc_status(call, dc))


def list_dcs(call: Call) -> Document:
    return listing(
        call, "data_center", call.engine.inventory.data_centers.list(), dc_view(call), name_keys(), "data center"
    )


def get_dc(call: Call) -> Document:
    dc = call.engine.inventory.data_centers.get(call.id("dc", "data center"))
    return Document("data_center", views.data_center(dc, status=dc_status(call, dc)))


def add_dc(call: Call) -> Document:
    body = call.doc("data_center")
    dc = DataCenter(
        name=body.get("name") or "",
        description=body.get("description", "") or "",
        comment=body.get("comment", "") or "",
        local=bool(body.bool("local", False)),
    )
    dc.compatibility_version = _version(body) or dc.compatibility_version
    dc = call.engine.inventory.data_centers.add(dc)
    return Document("data_center", views.data_center(dc, status=dc_status(call, dc)), 201)


def update_dc(call: Call) -> Document:
    body = call.doc("data_center")
    found = DataCenterChanges(
        name=given(body, "name", str), description=given(body, "description", str),
        comment=given(body, "comment", str), local=given(body, "local", to_bool),
        compatibility_version=_version(body) or UNSET,
    )  # fmt: skip
    dc = call.engine.inventory.data_centers.update(call.id("dc", "data center"), found)
    return Document("data_center", views.data_center(dc, status=dc_status(call, dc)))


def remove_dc(call: Call) -> None:
    call.engine.inventory.data_centers.remove(call.id("dc", "data center"))


def dc_clusters(call: Call) -> Document:
    dc_id = call.id("dc", "data center")
    call.engine.inventory.data_centers.get(dc_id)
    return listing(call, "cluster", call.engine.inventory.clusters.list(dc_id), views.cluster, name_keys(), "cluster")


def dc_networks(call: Call) -> Document:
    dc_id = call.id("dc", "data center")
    call.engine.inventory.data_centers.get(dc_id)
    return listing(call, "network", call.engine.inventory.networks.list(dc_id), views.network, name_keys(), "network")


# --- clusters -----------------------------------------------------------------------------------------------


def _dc_names(call: Call) -> dict[UUID, str]:
    return {dc.id: dc.name for dc in call.engine.inventory.data_centers.list()}


def _dc_keys(call: Call) -> search.Keys:
    """Search keys of what belongs to a data center (clusters, networks): name, id and `datacenter`."""
    names = _dc_names(call)
    return name_keys({"datacenter": lambda item: [names.get(item.data_center_id, "")]})


def list_clusters(call: Call) -> Document:
    return listing(call, "cluster", call.engine.inventory.clusters.list(), views.cluster, _dc_keys(call), "cluster")


def get_cluster(call: Call) -> Document:
    return Document("cluster", views.cluster(call.engine.inventory.clusters.get(call.id("cluster", "cluster"))))


def add_cluster(call: Call) -> Document:
    body = call.doc("cluster")
    inv = call.engine.inventory
    dc = required(body, "data_center", inv.data_centers.list(), "data center")
    cluster = Cluster(
        name=body.get("name") or "",
        data_center_id=dc.id,
        description=body.get("description", "") or "",
        comment=body.get("comment", "") or "",
    )
    cluster.cpu_type = body.get("cpu/type") or cluster.cpu_type
    cluster.compatibility_version = _version(body) or dc.compatibility_version
    return Document("cluster", views.cluster(inv.clusters.add(cluster)), 201)


def update_cluster(call: Call) -> Document:
    body = call.doc("cluster")
    found = ClusterChanges(
        name=given(body, "name", str), description=given(body, "description", str),
        comment=given(body, "comment", str), cpu_type=given(body, "cpu/type", str),
        compatibility_version=_version(body) or UNSET,
    )  # fmt: skip
    return Document(
        "cluster", views.cluster(call.engine.inventory.clusters.update(call.id("cluster", "cluster"), found))
    )


def remove_cluster(call: Call) -> None:
    call.engine.inventory.clusters.remove(call.id("cluster", "cluster"))


# --- hosts --------------------------------------------------------------------------------------------------


def _host_keys(call: Call) -> search.Keys:
    inv = call.engine.inventory
    clusters = {c.id: c for c in inv.clusters.list()}
    dcs = _dc_names(call)
    domains = inv.storage_domains.list()

    def dc_of(h: Host) -> UUID | None:
        return clusters[h.cluster_id].data_center_id if h.cluster_id in clusters else None

    return name_keys(
        {
            "status": lambda h: [h.status.value],
            "cluster": lambda h: [clusters[h.cluster_id].name] if h.cluster_id in clusters else [],
            "datacenter": lambda h: (
                [dcs.get(clusters[h.cluster_id].data_center_id, "")] if h.cluster_id in clusters else []
            ),
            "address": lambda h: [h.address],
            # The domains a host reaches: those attached to its data center.
            "storage": lambda h: (
                [
                    d.name
                    for d in domains
                    if h.cluster_id in clusters and d.data_center_id == clusters[h.cluster_id].data_center_id
                ]
            ),
        }
    )


def list_hosts(call: Call) -> Document:
    return listing(call, "host", call.engine.inventory.hosts.list(), views.host, _host_keys(call), "host")


def get_host(call: Call) -> Document:
    return Document("host", views.host(call.engine.inventory.hosts.get(call.id("host", "host"))))


def host_storage(call: Call) -> Document:
    """The block devices the host offers (oVirt's `HostStorage` per LUN), each with the volume group and
    storage domain it holds. Asked of the host's agent now; `report_status` is accepted and ignored (the
    status is known without I/O)."""
    host = call.engine.inventory.hosts.get(call.id("host", "host"))
    devices = call.engine.domains.host_devices(host)
    return Document("host_storages", {"host_storage": [views.host_storage(d, host.id) for d in devices]})


def agent_url(address: str) -> str:
    """A host is the address of its agent: `http://h:port`; a bare host name gets the agent's default port."""
    address = address.strip()
    if not address:
        raise InvalidInput(f"a host needs <address>: its agent's URL (http://host:{AGENT_PORT}) or host name")
    if "://" not in address:
        address = f"http://{address}"
    if address.count(":") == 1:
        address = f"{address}:{AGENT_PORT}"
    return address.rstrip("/")


def add_host(call: Call) -> Document:
    body = call.doc("host")
    inv = call.engine.inventory
    cluster = resolve(body, "cluster", inv.clusters.list(), "cluster", required=False)
    if cluster is None:
        cluster = next((c for c in inv.clusters.list() if c.name == "Default"), None)
        if cluster is None:
            raise InvalidInput('the host needs <cluster id="..."/>; there is no Default cluster')
    host = Host(
        name=body.get("name") or "",
        cluster_id=cluster.id,
        address=agent_url(body.get("address") or ""),
        description=body.get("description", "") or "",
    )
    return Document("host", views.host(inv.hosts.add(host)), 201)


def update_host(call: Call) -> Document:
    body = call.doc("host")
    found = HostChanges(
        name=given(body, "name", str), description=given(body, "description", str),
        address=given(body, "address", agent_url),
    )  # fmt: skip
    return Document("host", views.host(call.engine.inventory.hosts.update(call.id("host", "host"), found)))


def remove_host(call: Call) -> None:
    call.engine.inventory.hosts.remove(call.id("host", "host"))


def host_status(status: HostStatus) -> Handler:
    def action(call: Call) -> Document:
        call.engine.inventory.hosts.update(call.id("host", "host"), HostChanges(status=status))
        return action_done()

    return action


# --- networks and vNIC profiles -----------------------------------------------------------------------------


def list_networks(call: Call) -> Document:
    return listing(call, "network", call.engine.inventory.networks.list(), views.network, _dc_keys(call), "network")


def get_network(call: Call) -> Document:
    return Document("network", views.network(call.engine.inventory.networks.get(call.id("network", "network"))))


def add_network(call: Call) -> Document:
    body = call.doc("network")
    inv = call.engine.inventory
    dc = required(body, "data_center", inv.data_centers.list(), "data center")
    network = Network(
        name=body.get("name") or "",
        data_center_id=dc.id,
        description=body.get("description", "") or "",
        vlan_id=_vlan(body),
        mtu=body.int("mtu", 0) or 0,
    )
    usages = [u.text() for u in body.findall("usages/usage")]
    network.vm_network = not body.has("usages") or "vm" in usages
    network = inv.networks.add(network)
    # oVirt gives a new VM network a vNIC profile of the same name.
    if network.vm_network:
        inv.vnic_profiles.add(VnicProfile(name=network.name, network_id=network.id))
    return Document("network", views.network(network), 201)


def _vlan(body: Body) -> int | None:
    vlan = body.find("vlan")
    if vlan is None or vlan.attr("id") is None:
        return None
    try:
        return int(vlan.attr("id") or "")
    except ValueError as exc:
        raise InvalidInput("<vlan id> must be a number") from exc


def update_network(call: Call) -> Document:
    body = call.doc("network")
    found = NetworkChanges(
        name=given(body, "name", str), description=given(body, "description", str), mtu=given(body, "mtu", int)
    )
    return Document(
        "network", views.network(call.engine.inventory.networks.update(call.id("network", "network"), found))
    )


def remove_network(call: Call) -> None:
    call.engine.inventory.networks.remove(call.id("network", "network"))


def network_profiles(call: Call) -> Document:
    network_id = call.id("network", "network")
    call.engine.inventory.networks.get(network_id)
    profiles = call.engine.inventory.vnic_profiles.list(network_id)
    return listing(call, "vnic_profile", profiles, views.vnic_profile, name_keys(), "vNIC profile")


def list_profiles(call: Call) -> Document:
    inv = call.engine.inventory
    networks = {n.id: n.name for n in inv.networks.list()}
    keys = name_keys({"network": lambda p: [networks.get(p.network_id, "")]})
    return listing(call, "vnic_profile", inv.vnic_profiles.list(), views.vnic_profile, keys, "vNIC profile")


def get_profile(call: Call) -> Document:
    profile = call.engine.inventory.vnic_profiles.get(call.id("profile", "vNIC profile"))
    return Document("vnic_profile", views.vnic_profile(profile))


def add_profile(call: Call) -> Document:
    body = call.doc("vnic_profile")
    inv = call.engine.inventory
    network = required(body, "network", inv.networks.list(), "network")
    profile = VnicProfile(
        name=body.get("name") or "", network_id=network.id, description=body.get("description", "") or ""
    )
    return Document("vnic_profile", views.vnic_profile(inv.vnic_profiles.add(profile)), 201)


def update_profile(call: Call) -> Document:
    body = call.doc("vnic_profile")
    found = VnicProfileChanges(name=given(body, "name", str), description=given(body, "description", str))
    profile = call.engine.inventory.vnic_profiles.update(call.id("profile", "vNIC profile"), found)
    return Document("vnic_profile", views.vnic_profile(profile))


def remove_profile(call: Call) -> None:
    call.engine.inventory.vnic_profiles.remove(call.id("profile", "vNIC profile"))


# --- roles and jobs -----------------------------------------------------------------------------------------


def list_roles(call: Call) -> Document:
    return listing(call, "role", call.engine.inventory.roles.list(), views.role, name_keys(), "role")


def get_role(call: Call) -> Document:
    role_id = call.id("role", "role")
    for role in call.engine.inventory.roles.list():
        if role.id == role_id:
            return Document("role", views.role(role))
    raise NotFound("role", role_id)


def list_jobs(call: Call) -> Document:
    keys = {"status": lambda j: [j.status.value], "description": lambda j: [j.description]}
    return listing(call, "job", call.api.jobs.list(), views.job, keys, "job")


def get_job(call: Call) -> Document:
    job_id = call.id("job", "job")
    job = call.api.jobs.get(job_id)
    if job is None:
        raise NotFound("job", job_id)
    return Document("job", views.job(job))


def register(router: Router) -> None:
    r = router.add
    r("GET", "/datacenters", list_dcs)
    r("POST", "/datacenters", add_dc)
    r("GET", "/datacenters/{dc}", get_dc)
    r("PUT", "/datacenters/{dc}", update_dc)
    r("DELETE", "/datacenters/{dc}", remove_dc)
    r("GET", "/datacenters/{dc}/clusters", dc_clusters)
    r("GET", "/datacenters/{dc}/networks", dc_networks)
    r("GET", "/clusters", list_clusters)
    r("POST", "/clusters", add_cluster)
    r("GET", "/clusters/{cluster}", get_cluster)
    r("PUT", "/clusters/{cluster}", update_cluster)
    r("DELETE", "/clusters/{cluster}", remove_cluster)
    r("GET", "/hosts", list_hosts)
    r("POST", "/hosts", add_host)
    r("GET", "/hosts/{host}", get_host)
    r("GET", "/hosts/{host}/storage", host_storage)
    r("PUT", "/hosts/{host}", update_host)
    r("DELETE", "/hosts/{host}", remove_host)
    r("POST", "/hosts/{host}/activate", host_status(HostStatus.UP))
    r("POST", "/hosts/{host}/deactivate", host_status(HostStatus.MAINTENANCE))
    r("GET", "/networks", list_networks)
    r("POST", "/networks", add_network)
    r("GET", "/networks/{network}", get_network)
    r("PUT", "/networks/{network}", update_network)
    r("DELETE", "/networks/{network}", remove_network)
    r("GET", "/networks/{network}/vnicprofiles", network_profiles)
    r("GET", "/vnicprofiles", list_profiles)
    r("POST", "/vnicprofiles", add_profile)
    r("GET", "/vnicprofiles/{profile}", get_profile)
    r("PUT", "/vnicprofiles/{profile}", update_profile)
    r("DELETE", "/vnicprofiles/{profile}", remove_profile)
    r("GET", "/roles", list_roles)
    r("GET", "/roles/{role}", get_role)
    r("GET", "/jobs", list_jobs)
    r("GET", "/jobs/{job}", get_job)
