"""`ovfstore status`: how fresh every data domain's OVF stores are, as a table."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from ovfstore.cli.client import ApiClient, with_api


@click.command()
@with_api
def status(api: ApiClient) -> None:
    """Every data domain's OVF store freshness: up to date, since when outdated, last error."""
    out = Table("domain", "stores", "fresh", "entities", "last updated", "outdated since", "last error")
    stale = 0
    for d in api.get("/ovfstorestatus").findall("storage_domain"):
        fresh = d.findtext("up_to_date") == "true"
        stale += not fresh
        out.add_row(
            d.findtext("name") or "",
            d.findtext("ovf_store_count") or "",
            "[green]yes[/green]" if fresh else "[red]no[/red]",
            d.findtext("entity_count") or "0",
            d.findtext("last_updated") or "never",
            d.findtext("outdated_since") or "",
            (d.findtext("last_error") or "")[:80],
        )
    Console().print(out)
    if stale:
        raise SystemExit(1)  # scripts and monitoring can tell
