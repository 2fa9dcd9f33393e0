"""The typed change sets: each names only fields of its entity, and `apply` changes what was given."""

from __future__ import annotations

import dataclasses
import types
import typing
from uuid import uuid4

import pytest

from ovfstore.engine.errors import InvalidInput
from ovfstore.engine.inventory import (
    UNSET,
    AffinityGroupChanges,
    AffinityLabelChanges,
    AttachmentChanges,
    ClusterChanges,
    DataCenterChanges,
    DiskChanges,
    HostChanges,
    NetworkChanges,
    NicChanges,
    RoleChanges,
    SnapshotChanges,
    StorageDomainChanges,
    TemplateChanges,
    VmChanges,
    VnicProfileChanges,
    VolumeChanges,
)
from ovfstore.engine.inventory.changes import ChangeSet, Unset, apply
from ovfstore.model import (
    AffinityGroup,
    AffinityLabel,
    Cluster,
    DataCenter,
    Disk,
    DiskAttachment,
    Host,
    Network,
    Nic,
    Role,
    Snapshot,
    StorageDomain,
    Template,
    Vm,
    VmStatus,
    VnicProfile,
    Volume,
)

PAIRS: list[tuple[type[ChangeSet], type]] = [
    (VmChanges, Vm), (TemplateChanges, Template), (NicChanges, Nic), (SnapshotChanges, Snapshot),
    (DiskChanges, Disk), (VolumeChanges, Volume), (AttachmentChanges, DiskAttachment),
    (DataCenterChanges, DataCenter), (ClusterChanges, Cluster), (HostChanges, Host),
    (StorageDomainChanges, StorageDomain), (NetworkChanges, Network), (VnicProfileChanges, VnicProfile),
    (RoleChanges, Role), (AffinityGroupChanges, AffinityGroup), (AffinityLabelChanges, AffinityLabel),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "entity"), PAIRS, ids=lambda c: c.__name__)
def test_each_field_is_a_field_of_the_entity_with_its_type(changes: type[ChangeSet], entity: type) -> None:
    entity_hints = typing.get_type_hints(entity)
    for name, hint in typing.get_type_hints(changes).items():
        assert name in entity_hints, f"{changes.__name__}.{name} is no field of {entity.__name__}"
        given = {a for a in typing.get_args(hint) if a is not Unset}
        own = entity_hints[name]
        expected = set(typing.get_args(own)) if isinstance(own, types.UnionType) else {own}
        assert given == expected, f"{changes.__name__}.{name}: {hint} does not match {entity_hints[name]}"
        assert next(f for f in dataclasses.fields(changes) if f.name == name).default is UNSET


def test_apply_changes_only_what_was_given_and_reports_real_changes() -> None:
    vm = Vm(name="web", memory_mb=1024)
    new, effective = apply(vm, VmChanges(name="web", memory_mb=2048, status=VmStatus.UP), "VM")
    assert effective == {"memory_mb": 2048, "status": VmStatus.UP}
    assert (new.name, new.memory_mb, new.status, new.description) == ("web", 2048, VmStatus.UP, vm.description)
    assert vm.memory_mb == 1024
    assert apply(vm, VmChanges(), "VM")[1] == {}


def test_apply_coerces_parsed_values_and_refuses_bad_ones() -> None:
    domain_id = uuid4()
    vm = Vm(name="web")
    new, _ = apply(vm, VmChanges(status=1, lease_domain_id=str(domain_id)), "VM")  # type: ignore[arg-type]
    assert (new.status, new.lease_domain_id) == (VmStatus.UP, domain_id)
    assert apply(vm, VmChanges(lease_domain_id=None), "VM")[0].lease_domain_id is None
    with pytest.raises(InvalidInput, match="VM memory_mb: 'lots' is not a valid int"):
        apply(vm, VmChanges(memory_mb="lots"), "VM")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="VM stateless: 1 is not a valid bool"):
        apply(vm, VmChanges(stateless=1), "VM")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="VM memory_mb: True is not a valid int"):
        apply(vm, VmChanges(memory_mb=True), "VM")
    with pytest.raises(InvalidInput, match="VM status: 99 is not one of"):
        apply(vm, VmChanges(status=99), "VM")  # type: ignore[arg-type]


def test_given_lists_the_fields_set() -> None:
    assert HostChanges(name="h", description="").given() == {"name": "h", "description": ""}
    with pytest.raises(dataclasses.FrozenInstanceError):
        HostChanges().name = "h"  # type: ignore[misc]
