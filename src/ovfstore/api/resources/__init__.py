"""The API's resources, one module per family; each registers its routes on the router."""

from __future__ import annotations

from ovfstore.api.router import Router


def register_all(router: Router) -> None:
    from ovfstore.api.resources import empty, infra, operations, recovery, root, storage, vms

    for module in (root, infra, storage, operations, recovery, vms, empty):
        module.register(router)
