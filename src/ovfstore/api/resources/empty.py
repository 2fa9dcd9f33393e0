"""Sub-collections of oVirt's API that ovfstore has nothing in: they answer an empty list (after checking
that their owner exists), so that clients which list them, as the `ovirt.ovirt` modules do when they
check a VM, template, host or cluster for changes, find nothing rather than a 404."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from ovfstore.api.router import Call, Document, Router
from ovfstore.api.views import href
from ovfstore.engine.errors import NotFound
from ovfstore.engine.inventory import Inventory

# Owner collection: its path parameter, what it is called, and how the inventory finds one.
_OWNERS: dict[str, tuple[str, str, Callable[[Inventory, UUID], object]]] = {
    "vms": ("vm", "VM", lambda inv, i: inv.vms.get(i)),
    "templates": ("template", "template", lambda inv, i: inv.templates.get(i)),
    "clusters": ("cluster", "cluster", lambda inv, i: inv.clusters.get(i)),
    "hosts": ("host", "host", lambda inv, i: inv.hosts.get(i)),
    "datacenters": ("dc", "data center", lambda inv, i: inv.data_centers.get(i)),
    "storagedomains": ("sd", "storage domain", lambda inv, i: inv.storage_domains.get(i)),
}

# Per owner: sub-collection -> the element of one item (oVirt's API model); the list is its plural.
_COMMON = {"permissions": "permission", "tags": "tag"}
_DEVICES = {"watchdogs": "watchdog", "graphicsconsoles": "graphics_console", "cdroms": "cdrom",
            "mediateddevices": "vm_mediated_device", "affinitylabels": "affinity_label"}  # fmt: skip
EMPTY: dict[str, dict[str, str]] = {
    "vms": {
        **_COMMON,
        **_DEVICES,
        "numanodes": "vm_numa_node",
        "hostdevices": "host_device",
        "sessions": "session",
        "applications": "application",
        "reporteddevices": "reported_device",
        "katelloerrata": "katello_erratum",
        "statistics": "statistic",
        "backups": "backup",
        "checkpoints": "checkpoint",
    },
    "templates": {**_COMMON, **_DEVICES},
    "clusters": {
        **_COMMON,
        "affinitygroups": "affinity_group",
        "cpuprofiles": "cpu_profile",
        "enabledfeatures": "cluster_feature",
        "glustervolumes": "gluster_volume",
    },
    "hosts": {
        **_COMMON,
        "affinitylabels": "affinity_label",
        "nics": "host_nic",
        "numanodes": "host_numa_node",
        "statistics": "statistic",
        "hooks": "hook",
        "devices": "host_device",
        "networkattachments": "network_attachment",
        "fenceagents": "agent",
        "katelloerrata": "katello_erratum",
    },
    "datacenters": {**_COMMON, "quotas": "quota", "qoss": "qos", "iscsibonds": "iscsi_bond"},
    "storagedomains": {
        **_COMMON,
        "diskprofiles": "disk_profile",
        "storageconnections": "storage_connection",
        "disksnapshots": "disk_snapshot",
    },
}
# Top-level collections ovfstore keeps nothing in.
TOP: dict[str, str] = {"affinitylabels": "affinity_label", "tags": "tag", "permissions": "permission",
                       "diskprofiles": "disk_profile", "cpuprofiles": "cpu_profile"}  # fmt: skip


def _empty_of(owners: str, item: str) -> Callable[[Call], Document]:
    param, kind, get = _OWNERS[owners]

    def handler(call: Call) -> Document:
        get(call.engine.inventory, call.id(param, kind))  # NotFound for an unknown owner
        return Document(item + "s", {item: []})

    return handler


def _dc_affinity_groups(call: Call) -> Document:
    """A data center's cluster's affinity groups: none, once the cluster is found in that data center."""
    inv = call.engine.inventory
    dc = inv.data_centers.get(call.id("dc", "data center"))
    cluster = inv.clusters.get(call.id("cluster", "cluster"))
    if cluster.data_center_id != dc.id:
        raise NotFound("cluster", f"{cluster.id} in data center {dc.id}")
    return Document("affinity_groups", {"affinity_group": []})


def _top(item: str) -> Callable[[Call], Document]:
    def handler(call: Call) -> Document:
        return Document(item + "s", {item: []})

    return handler


#: ovfstore's users are all of one authorization domain, oVirt's built-in one.
INTERNAL_AUTHZ = UUID("5ad6b7c8-3a0b-5c59-9b7e-0f1a3c0d4e21")


def aaa_domains(call: Call) -> Document:
    """`/domains`: the authorization domains users come from (oVirt's `internal-authz`, the only one here)."""
    return Document("domains", {"domain": [{"id": INTERNAL_AUTHZ, "href": href("domains", INTERNAL_AUTHZ),
                                            "name": "internal-authz"}]})  # fmt: skip


def register(router: Router) -> None:
    router.add("GET", "/domains", aaa_domains)
    # A data center's cluster is the cluster itself (the SDK reaches affinity groups through either path).
    router.add("GET", "/datacenters/{dc}/clusters/{cluster}/affinitygroups", _dc_affinity_groups)
    for owners, subs in EMPTY.items():
        param = _OWNERS[owners][0]
        for sub, item in subs.items():
            router.add("GET", f"/{owners}/{{{param}}}/{sub}", _empty_of(owners, item))
    for name, item in TOP.items():
        router.add("GET", f"/{name}", _top(item))
