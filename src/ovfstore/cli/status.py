"""`ovfstore status`: how fresh every data domain's OVF stores are, as a table or as JSON.

Exit status, for scripts and monitoring: 0 every data domain up to date, 1 some domain behind (a change
not on its stores yet, a store outdated or failing), 2 the engine could not be asked (not running,
login refused, an error answer).
"""

from __future__ import annotations

import json
from typing import Any

import click
from lxml import etree
from rich.console import Console
from rich.table import Table

from ovfstore.cli.client import ApiClient, with_api

ALL_UP_TO_DATE, BEHIND, UNREACHABLE = 0, 1, 2


class _Unreachable(click.ClickException):
    """The engine did not answer the status (its own message says why): not the same as a domain behind."""

    exit_code = UNREACHABLE


_NUMBERS = ("ovf_store_count", "entity_count", "pending_count", "unstorable_count", "generation", "size", "ovf_size")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@with_api
def status(api: ApiClient, as_json: bool) -> None:
    """Every data domain's OVF store freshness: up to date, changes pending and how old the oldest is,
    last error. Exit 0 all up to date, 1 some domain behind, 2 the engine could not be asked."""
    try:
        domains = [_domain(d) for d in api.get("/ovfstorestatus").findall("storage_domain")]
    except click.ClickException as exc:
        raise _Unreachable(exc.message) from exc
    behind = [d for d in domains if not d["up_to_date"]]
    if as_json:
        click.echo(json.dumps({"up_to_date": not behind, "storage_domains": domains}, indent=2))
    else:
        _table(domains)
    if behind:
        raise SystemExit(BEHIND)


def _domain(node: etree._Element) -> dict[str, Any]:
    """One domain of the API's answer as JSON values; its stores under `stores`."""
    found = _fields(node)
    found["id"] = node.get("id")
    found["stores"] = [{**_fields(st), "id": st.get("id")} for st in node.findall("stores/store")]
    found["unstorable"] = [{**_fields(e), "id": e.get("id")} for e in node.findall("unstorable/entity")]
    return found


def _fields(node: etree._Element) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for child in node:
        if len(child) or not isinstance(child.tag, str):
            continue  # nested (the stores) or a comment
        text = child.text
        if child.tag == "up_to_date":
            found[child.tag] = text == "true"
        elif child.tag in _NUMBERS and text is not None:
            found[child.tag] = int(text)
        elif child.tag == "pending_age_seconds" and text is not None:
            found[child.tag] = float(text)
        else:
            found[child.tag] = text
    if "ovf_size" not in found:  # an entity of `unstorable` has no freshness of its own
        found.setdefault("up_to_date", False)
    return found


def _table(domains: list[dict[str, Any]]) -> None:
    out = Table(
        "domain", "stores", "fresh", "entities", "pending", "oldest pending", "last updated", "outdated since",
        "last error",
    )  # fmt: skip
    for d in domains:
        age = d.get("pending_age_seconds")
        out.add_row(
            d.get("name") or "",
            str(d.get("ovf_store_count", "")),
            "[green]yes[/green]" if d["up_to_date"] else "[red]no[/red]",
            str(d.get("entity_count", 0)),
            str(d.get("pending_count", 0)),
            "" if d["up_to_date"] else ("unknown" if age is None else f"{age:.0f} s ago"),
            d.get("last_updated") or "never",
            d.get("outdated_since") or "",
            (d.get("last_error") or "")[:80],
        )
    console = Console()
    console.print(out)
    for d in domains:
        for entity in d.get("unstorable", []):
            console.print(
                f"[red]not protected[/red] on {d.get('name')}: {entity.get('name')} ({entity.get('id')}), its OVF "
                f"is {entity.get('ovf_size')} bytes, too large for a store; shorten its description or comment"
            )
