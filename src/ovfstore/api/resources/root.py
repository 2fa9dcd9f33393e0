"""`GET /ovirt-engine/api`: product information, the blank template and a summary; `connection.test()`."""

from __future__ import annotations

from ovfstore.api import views
from ovfstore.api.router import Call, Document, Router
from ovfstore.model import BLANK_TEMPLATE_ID, DomainStatus, HostStatus, VmStatus, utcnow


def api_root(call: Call) -> Document:
    inv = call.engine.inventory
    vms = inv.vms.list()
    hosts = inv.hosts.list()
    domains = inv.storage_domains.list()
    summary = {
        "hosts": (sum(h.status is HostStatus.UP for h in hosts), len(hosts)),
        "storage_domains": (sum(d.status is DomainStatus.ACTIVE for d in domains), len(domains)),
        "users": (len(call.engine.users.list()), len(call.engine.users.list())),
        "vms": (sum(v.status is VmStatus.UP for v in vms), len(vms)),
    }
    return Document("api", views.api_root(summary, utcnow(), call.user.id, BLANK_TEMPLATE_ID))


def register(router: Router) -> None:
    router.add("GET", "/", api_root)
