"""ovfstore's own operations resources: how fresh every data domain's OVF stores are
(`/ovfstorestatus`, what `ovfstore status` shows) and which VMs and templates no store protects
(`/ovfstoreunprotected`, what `ovfstore unprotected` lists)."""

from __future__ import annotations

from ovfstore.api import views
from ovfstore.api.router import Call, Document, Router
from ovfstore.engine.leadership import current
from ovfstore.engine.updater.protection import REASONS, Unprotected
from ovfstore.engine.updater.status import DomainOvfStatus


def ovf_status(call: Call) -> Document:
    updater = call.engine.updater
    statuses = updater.status()
    unprotected = updater.unprotected(statuses)
    threshold = updater.config.recovery_point_threshold_s
    return Document(
        "ovf_store_status",
        {
            "leader": _leader(call),
            "recovery_point_threshold_seconds": threshold,
            "unprotected_count": len(unprotected),
            "storage_domain": [_domain(st, threshold) for st in statuses],
        },
    )


def _leader(call: Call) -> dict[str, object]:
    """Which engine runs the OVF updater, since when, under which term; and which engine answers."""
    leader = current(call.engine.db)
    alive = leader is not None and leader.alive
    return {
        "engine": leader.engine if leader is not None and alive else None,
        "term": leader.term if leader is not None else 0,
        "since": leader.since if leader is not None and alive else None,
        "served_by": call.engine.name,
    }


def _domain(st: DomainOvfStatus, threshold: float) -> dict[str, object]:
    return {
        "id": st.domain_id,
        "href": views.href("storagedomains", st.domain_id),
        "name": st.name,
        "ovf_store_count": st.ovf_store_count,
        "up_to_date": st.up_to_date,
        # up_to_date, pending, stores_failing, never_written or stores_disabled (status.STATES).
        "state": st.state,
        "protects": st.protects,
        # Not up to date for the engine's recovery point threshold or longer: `ovfstore status` exits 1.
        "behind": st.behind(threshold),
        "last_updated": st.last_updated,
        "outdated_since": st.outdated_since,
        "last_error": st.last_error,
        "entity_count": st.entity_count,
        # The recovery point: changes not on the domain's stores yet, and how old the oldest is.
        "pending_count": st.pending_count,
        "oldest_pending_change": st.oldest_pending_change,
        "pending_age_seconds": None if st.pending_age_s is None else round(st.pending_age_s, 3),
        # Left out of every store because their OVF is too large: not protected until changed.
        "unstorable_count": len(st.unstorable),
        "unstorable": {
            "entity": [
                {"id": u.entity_id, "name": u.name, "ovf_size": u.ovf_size, "detected_at": u.detected_at}
                for u in st.unstorable
            ]
        },
        "stores": {
            "store": [
                {
                    "id": s.disk_id,
                    "status": s.status.value,
                    "generation": s.generation,
                    "size": s.size,
                    "sha256": s.sha256,
                    "entity_count": s.entity_count,
                    "segments": s.segments,
                    "appended": s.appended,
                    "last_updated": s.last_updated,
                    "outdated_since": s.outdated_since,
                    "last_error": s.last_error,
                }
                for s in st.stores
            ]
        },
    }


def unprotected(call: Call) -> Document:
    return Document("unprotected", {"entity": [_entity(u) for u in call.engine.updater.unprotected()]})


def _entity(u: Unprotected) -> dict[str, object]:
    return {
        "id": u.entity_id,
        "href": views.href("vms" if u.entity_type.value == "vm" else "templates", u.entity_id),
        "name": u.name,
        "type": u.entity_type.value,
        "reason": u.reason,
        "reason_text": REASONS[u.reason],
        "detail": u.detail,
        "kept_on": u.kept_on,
        "since": u.since,
    }


def register(router: Router) -> None:
    router.add("GET", "/ovfstorestatus", ovf_status)
    router.add("GET", "/ovfstoreunprotected", unprotected)
