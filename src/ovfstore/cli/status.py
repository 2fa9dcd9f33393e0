"""`ovfstore status`: how fresh every data domain's OVF stores are, with the recovery point and the number
of VMs and templates no store protects, as a table or as JSON; `ovfstore unprotected` lists those.

Exit status, for scripts and monitoring: 0 every data domain within its recovery point threshold and
everything protected, 1 some domain behind (its recovery point at or past the threshold: the engine's
`recovery_point_threshold_s`, 0 by default, or `--threshold`) or something unprotected, 2 the engine
could not be asked (not running, login refused, an error answer).
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


_NUMBERS = (
    "ovf_store_count", "entity_count", "pending_count", "unstorable_count", "generation", "size", "ovf_size",
    "unprotected_count",
)  # fmt: skip
_FLAGS = ("up_to_date", "behind", "protects")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option(
    "--threshold",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds of recovery point a domain may have before it counts as behind (default: the engine's "
    "recovery_point_threshold_s, 0 unless set).",
)
@with_api
def status(api: ApiClient, as_json: bool, threshold: float | None) -> None:
    """Every data domain's OVF store freshness: up to date, the recovery point (how old the oldest change
    not on its stores is), changes pending, last error; and how many VMs and templates no store protects.
    Exit 0 all within the threshold and protected, 1 some domain behind or something unprotected, 2 the
    engine could not be asked."""
    try:
        answer = api.get("/ovfstorestatus")
    except click.ClickException as exc:
        raise _Unreachable(exc.message) from exc
    domains = [_domain(d) for d in answer.findall("storage_domain")]
    if threshold is not None:
        for d in domains:
            d["behind"] = _behind(d, threshold)
    unprotected = int(answer.findtext("unprotected_count") or 0)
    behind = [d for d in domains if d.get("behind", not d["up_to_date"])]
    leader = _leader(answer.find("leader"))
    if as_json:
        document = {
            "leader": leader,
            "up_to_date": all(d["up_to_date"] for d in domains),
            "behind": bool(behind),
            "unprotected_count": unprotected,
            "storage_domains": domains,
        }
        click.echo(json.dumps(document, indent=2))
    else:
        _table(domains)
        Console().print(_leader_line(leader))
        if unprotected:
            Console().print(
                f"[red]{unprotected} VMs and templates are not protected[/red]: `ovfstore unprotected` lists them"
            )
    if behind or unprotected:
        raise SystemExit(BEHIND)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@with_api
def unprotected(api: ApiClient, as_json: bool) -> None:
    """The VMs and templates no OVF store protects, with the reason and where they belong. Exit 0 none,
    1 some, 2 the engine could not be asked."""
    try:
        answer = api.get("/ovfstoreunprotected")
    except click.ClickException as exc:
        raise _Unreachable(exc.message) from exc
    found = [{**_fields(e), "id": e.get("id")} for e in answer.findall("entity")]
    if as_json:
        click.echo(json.dumps(found, indent=2))
    else:
        out = Table("name", "type", "reason", "detail", "kept on", "since")
        for e in found:
            out.add_row(
                e.get("name") or "", e.get("type") or "", e.get("reason_text") or e.get("reason") or "",
                e.get("detail") or "", e.get("kept_on") or "", e.get("since") or "",
            )  # fmt: skip
        Console().print(out if found else "every VM and template is protected")
    if found:
        raise SystemExit(BEHIND)


def _leader(node: etree._Element | None) -> dict[str, Any]:
    """Which engine leads the OVF updater (None between leaders), under which term, since when."""
    found = _fields(node) if node is not None else {}
    term = found.get("term")
    return {
        "engine": found.get("engine"),
        "term": int(term) if term else 0,
        "since": found.get("since"),
        "served_by": found.get("served_by"),
    }


def _leader_line(leader: dict[str, Any]) -> str:
    if leader["engine"] is None:
        return "[red]no engine leads the OVF updater right now[/red] (one takes over within the lease)"
    return f"OVF updater led by engine {leader['engine']} (term {leader['term']}) since {leader['since']}"


def _behind(d: dict[str, Any], threshold: float) -> bool:
    """The engine's rule (`DomainOvfStatus.behind`) with another threshold: a domain whose stores are
    disabled waits for nothing, one never written or with no usable copy is always behind."""
    state = d.get("state")
    if state == "stores_disabled":
        return False
    if state in ("never_written", "stores_failing"):
        return True
    age = d.get("pending_age_seconds")
    return not d["up_to_date"] and (age is None or age >= threshold)


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
        if child.tag in _FLAGS:
            found[child.tag] = text == "true"
        elif child.tag in _NUMBERS and text is not None:
            found[child.tag] = int(text)
        elif child.tag == "pending_age_seconds" and text is not None:
            found[child.tag] = float(text)
        else:
            found[child.tag] = text
    if "ovf_size" not in found and "reason" not in found:  # an entity has no freshness of its own
        found.setdefault("up_to_date", False)
    return found


def _table(domains: list[dict[str, Any]]) -> None:
    out = Table(
        "domain", "stores", "fresh", "entities", "pending", "recovery point", "last updated", "outdated since",
        "last error",
    )  # fmt: skip
    for d in domains:
        age = d.get("pending_age_seconds")
        state = d.get("state")
        if d["up_to_date"]:
            fresh = "[green]yes[/green]"
        elif state in ("stores_disabled", "never_written", "stores_failing"):
            fresh = f"[red]{state}[/red]" if d.get("behind") else str(state)
        else:
            fresh = "[red]behind[/red]" if d.get("behind") else "no"
        out.add_row(
            d.get("name") or "",
            str(d.get("ovf_store_count", "")),
            fresh,
            str(d.get("entity_count", 0)),
            str(d.get("pending_count", 0)),
            "0 s"
            if d["up_to_date"]
            else "-"
            if state == "stores_disabled"
            else ("unknown" if age is None else f"{age:.0f} s"),
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
