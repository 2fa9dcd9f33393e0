"""`ovfstore unregistered` and `ovfstore register`: what an imported domain holds, and registering it
through the REST API (one entity, or `--all` with a progress bar; `--dry-run` reports without changing)."""

from __future__ import annotations

import click
from lxml import etree
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from ovfstore.cli.client import ApiClient, with_api, x
from ovfstore.cli.resources import table


def _domain_id(api: ApiClient, name: str) -> str:
    return api.find_id("storagedomains", name, "storage_domain")


@click.command()
@click.argument("domain")
@click.option("--type", "kind", type=click.Choice(["vm", "template", "disk", "all"]), default="all", show_default=True)
@with_api
def unregistered(domain: str, kind: str, api: ApiClient) -> None:
    """What DOMAIN (imported and attached) holds that this engine does not know."""
    sd = _domain_id(api, domain)
    if kind in ("template", "all"):
        click.echo("templates:")
        table(api.get(f"/storagedomains/{sd}/templates", unregistered=True).findall("template"),
              [("name", "name"), ("id", "@id"), ("problems", "comment")])  # fmt: skip
    if kind in ("vm", "all"):
        click.echo("VMs:")
        table(api.get(f"/storagedomains/{sd}/vms", unregistered=True).findall("vm"),
              [("name", "name"), ("status", "status"), ("HA", "high_availability/enabled"), ("id", "@id")])  # fmt: skip
    if kind in ("disk", "all"):
        click.echo("disks:")
        table(api.get(f"/storagedomains/{sd}/disks", unregistered=True).findall("disk"),
              [("alias", "alias"), ("size", "provisioned_size"), ("id", "@id")])  # fmt: skip


def _pairs(values: tuple[str, ...], what: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        source, sep, target = value.partition("=")
        if not sep or not source:
            raise click.BadParameter(f"{value!r}: write {what} as SOURCE=TARGET")
        pairs.append((source, target))
    return pairs


def _action(
    api: ApiClient,
    *,
    cluster: str | None,
    cluster_maps: tuple[str, ...],
    vnic_maps: tuple[str, ...],
    role_maps: tuple[str, ...],
    partial: bool,
    reassign_macs: bool,
    dry_run: bool,
    clone: bool = False,
    name: str | None = None,
) -> str:
    parts = [f"<allow_partial_import>{str(partial).lower()}</allow_partial_import>",
             f"<reassign_bad_macs>{str(reassign_macs).lower()}</reassign_bad_macs>",
             f"<dry_run>{str(dry_run).lower()}</dry_run>", f"<clone>{str(clone).lower()}</clone>"]  # fmt: skip
    if cluster:
        parts.append(f"<cluster><name>{x(cluster)}</name></cluster>")
    if name:
        parts.append(f"<vm><name>{x(name)}</name></vm>")
    conf = []
    clusters = _pairs(cluster_maps, "--cluster-map")
    if clusters:
        conf.append("<cluster_mappings>" + "".join(
            f"<registration_cluster_mapping><from><name>{x(a)}</name></from><to><name>{x(b)}</name></to>"
            "</registration_cluster_mapping>" for a, b in clusters) + "</cluster_mappings>")  # fmt: skip
    roles = _pairs(role_maps, "--role-map")
    if roles:
        conf.append("<role_mappings>" + "".join(
            f"<registration_role_mapping><from><name>{x(a)}</name></from><to><name>{x(b)}</name></to>"
            "</registration_role_mapping>" for a, b in roles) + "</role_mappings>")  # fmt: skip
    if conf:
        parts.append("<registration_configuration>" + "".join(conf) + "</registration_configuration>")
    mappings = []
    for source, target in _pairs(vnic_maps, "--vnic-map"):
        network, sep, profile = source.partition("/")
        if not sep:
            raise click.BadParameter(f"{source!r}: the source of --vnic-map is NETWORK/PROFILE")
        target_xml = ""
        if target:  # empty: leave those NICs without a profile
            target_xml = f'<target_vnic_profile id="{x(api.find_id("vnicprofiles", target, "vnic_profile"))}"/>'
        mappings.append(
            f"<vnic_profile_mapping><source_network_name>{x(network)}</source_network_name>"
            f"<source_network_profile_name>{x(profile)}</source_network_profile_name>{target_xml}</vnic_profile_mapping>"
        )
    if mappings:
        parts.append("<vnic_profile_mappings>" + "".join(mappings) + "</vnic_profile_mappings>")
    return "<action>" + "".join(parts) + "</action>"


def _report_row(report: etree._Element) -> list[str]:
    entity = report.find("entity")
    name = entity.findtext("name", "") if entity is not None else ""
    kind = entity.findtext("type", "") if entity is not None else ""
    notes = [w.text or "" for w in report.findall("warnings/warning")]
    renamed = report.findtext("renamed_from")
    if renamed:
        notes.append(f"renamed from {renamed}")
    notes += [f"MAC of {m.findtext('nic')}: {m.findtext('from')} -> {m.findtext('to')}"
              for m in report.findall("reassigned_macs/reassigned_mac")]  # fmt: skip
    outcome = report.findtext("outcome", "")
    color = {"registered": "green", "would_register": "cyan", "refused": "red"}.get(outcome, "white")
    return [kind, name, f"[{color}]{outcome}[/{color}]", report.findtext("reason") or "; ".join(notes)]


@click.command()
@click.argument("domain")
@click.argument("entities", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Every template, then every VM, on the domain.")
@click.option("--dry-run", is_flag=True, help="Check and report; register nothing.")
@click.option("--cluster", default=None, help="Target cluster (otherwise mapped, or found by the original name).")
@click.option("--cluster-map", "cluster_maps", multiple=True, metavar="OLD=NEW", help="Cluster name mapping.")
@click.option("--vnic-map", "vnic_maps", multiple=True, metavar="NET/PROFILE=PROFILE",
              help="vNIC profile mapping (target by name or id; empty: no profile).")  # fmt: skip
@click.option("--role-map", "role_maps", multiple=True, metavar="OLD=NEW", help="Role name mapping.")
@click.option("--partial/--no-partial", default=True, show_default=True,
              help="Drop disks found on no attached domain instead of refusing.")  # fmt: skip
@click.option("--reassign-macs/--keep-macs", default=True, show_default=True,
              help="Give NICs whose MAC is taken or out of the pool a new one.")  # fmt: skip
@click.option("--clone", is_flag=True, help="Register a copy with new ids (one entity only).")
@click.option("--name", default=None, help="Register under this name (one entity only).")
@with_api
def register(
    domain: str,
    entities: tuple[str, ...],
    everything: bool,
    dry_run: bool,
    cluster: str | None,
    cluster_maps: tuple[str, ...],
    vnic_maps: tuple[str, ...],
    role_maps: tuple[str, ...],
    partial: bool,
    reassign_macs: bool,
    clone: bool,
    name: str | None,
    api: ApiClient,
) -> None:
    """Register unregistered VMs and templates of DOMAIN by name or id, or --all of them."""
    if everything == bool(entities):
        raise click.UsageError("name the entities to register, or pass --all")
    if (clone or name) and (everything or len(entities) > 1):
        raise click.UsageError("--clone and --name apply to one entity")
    sd = _domain_id(api, domain)

    def action(dry: bool, **one: object) -> str:
        return _action(api, cluster=cluster, cluster_maps=cluster_maps, vnic_maps=vnic_maps, role_maps=role_maps,
                       partial=partial, reassign_macs=reassign_macs, dry_run=dry, **one)  # type: ignore[arg-type]  # fmt: skip

    reports: list[etree._Element] = []
    if everything and dry_run:
        # One call: the engine checks VMs against the templates it would register first.
        answer = api.post(f"/storagedomains/{sd}/registerall", action(True))
        assert answer is not None
        reports = answer.findall("registration_reports/registration_report")
    else:
        todo = _todo(api, sd, entities, everything)
        body = action(dry_run, clone=clone, name=name)
        with Progress(transient=True) as progress:
            task = progress.add_task("registering", total=len(todo))
            for collection, entity_id, entity_name in todo:
                progress.update(task, description=f"registering {entity_name}")
                try:
                    answer = api.post(f"/storagedomains/{sd}/{collection}/{entity_id}/register", body)
                    assert answer is not None
                    found = answer.find("registration_report")
                    assert found is not None
                    reports.append(found)
                except click.ClickException as exc:
                    reports.append(_refused(collection, entity_name, exc.message))
                progress.advance(task)
    out = Table("type", "name", "outcome", "reason / notes", title="dry run: nothing registered" if dry_run else None)
    for report in reports:
        out.add_row(*_report_row(report))
    Console().print(out)
    if any(r.findtext("outcome") == "refused" for r in reports):
        raise SystemExit(1)


def _todo(api: ApiClient, sd: str, names: tuple[str, ...], everything: bool) -> list[tuple[str, str, str]]:
    """(collection, id, name) to register: templates (base templates before versions) before VMs."""
    found: list[tuple[int, str, str, str]] = []
    for collection, tag in (("templates", "template"), ("vms", "vm")):
        for e in api.get(f"/storagedomains/{sd}/{collection}", unregistered=True).findall(tag):
            entity_id, entity_name = str(e.get("id")), e.findtext("name", "")
            if not everything and entity_id not in names and entity_name not in names:
                continue
            base = e.find("version/base_template")
            order = 0 if tag == "template" and (base is None or base.get("id") == entity_id) else 1
            found.append((order if tag == "template" else 2, collection, entity_id, entity_name))
    if not everything:
        missing = set(names) - {f[2] for f in found} - {f[3] for f in found}
        if missing:
            raise click.ClickException(f"not unregistered on the domain: {', '.join(sorted(missing))}")
    return [(c, i, n) for _, c, i, n in sorted(found)]


def _refused(collection: str, name: str, reason: str) -> etree._Element:
    report = etree.Element("registration_report")
    entity = etree.SubElement(report, "entity")
    etree.SubElement(entity, "name").text = name
    etree.SubElement(entity, "type").text = collection[:-1]
    etree.SubElement(report, "outcome").text = "refused"
    etree.SubElement(report, "reason").text = reason
    return report
