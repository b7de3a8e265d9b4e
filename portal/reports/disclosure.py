"""The disclosure packet of a case, for the prosecution and the defence (docs/disclosure.md): one ZIP holding
`disclosure.json` (machine-readable, "format": 1), `disclosure.pdf` (the same contents for people) and
`manifest.json` (the SHA-256 and size of both). It discloses every use of face search in the case: every search
— from its rows and from the audit log, so a search whose data was erased still appears with its audit
metadata —, every candidate (likely or not, chosen or not), every decision with names and times, the
authorisations, the watch-list and its alerts, and the case's audit entries. Each packet made is audited with
its own SHA-256.

Reads only; the single write is the packet's audit entry.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import date, datetime

from django.db import transaction
from django.utils import timezone
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import KeepTogether, PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from accounts.models import Role, User
from portal.audit import audit_record
from portal.models import AuditEntry, Case
from portal.reports.layout import GREY, LEADS_STATEMENT, PALE, WIDTH, text
from search.comparison import CONCLUSION_LABELS
from search.lineup import clearance_of
from search.models import (
    Candidate,
    CaseAuthorisation,
    LeadReview,
    SearchJob,
    WatchlistAlert,
    WatchlistEntry,
)
from search.selectors import candidate_is_match, job_result_faces

FORMAT = 1
# Who may produce a packet: the agency's supervisors and admins (the people who answer for the case's
# disclosure); an officer gets the portal's 403, another agency's user a 404 before any of this runs.
DISCLOSERS = (Role.SUPERVISOR, Role.AGENCY_ADMIN)
SEARCH_ACTIONS = (
    AuditEntry.Action.SEARCH_STARTED,
    AuditEntry.Action.SEARCH_RESULTS,
    AuditEntry.Action.SEARCH_FAILED,
    AuditEntry.Action.CANDIDATE_ERASED,
)
ERASED_WITHOUT_ENTRY = "Its rows are no longer held; no erasure entry of this case names it."
BLIND = "Withheld while the proposal awaits its second person's blind verification."


class DisclosureRefused(ValueError):
    """A packet the user may not produce, with the reason."""


def _iso(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _person(user: User | None) -> dict | None:
    if user is None:
        return None
    return {"username": user.username, "full_name": user.get_full_name().strip()}


# --- The contents, as JSON-ready data --------------------------------------------------------------------------


def _records(candidate: Candidate, review: LeadReview | None) -> list[dict] | str:
    if review is not None and review.status == LeadReview.Status.POSSIBLE_LEAD:
        return BLIND
    return [
        {
            "role": record.role,
            "examiner": _person(record.examiner),
            "conclusion": record.conclusion,
            "conclusion_words": CONCLUSION_LABELS.get(record.conclusion, record.conclusion),
            "features": record.features,
            "notes": record.notes,
            "recorded_at": _iso(record.created_at),
        }
        for record in candidate.comparison_records.select_related("examiner").order_by("created_at", "id")
    ]


def _clearance(review: LeadReview) -> dict:
    clearance = clearance_of(review)
    return {
        "cleared_for_identification": clearance.cleared,
        "identification_procedures": clearance.sentence,
        "cleared_by": _person(review.cleared_by) if review.cleared_at else None,
        "cleared_at": _iso(review.cleared_at),
        "note": review.clearance_note,
        "evidence": [
            {
                "id": str(item.code),
                "kind": item.kind,
                "kind_words": item.get_kind_display(),
                "description": item.description,
                "obtained_by": item.obtained_by,
                "obtained_on": _iso(item.obtained_on),
                "recorded_by": _person(item.recorded_by),
                "recorded_at": _iso(item.recorded_at),
            }
            for item in review.evidence.select_related("recorded_by").order_by("recorded_at", "id")
        ],
    }


def _review(review: LeadReview | None) -> dict | None:
    if review is None:
        return None
    body = {
        "status": review.status,
        "status_words": review.get_status_display(),
        "proposed_by": _person(review.proposed_by),
        "proposed_at": _iso(review.proposed_at),
        "proposal_note": BLIND if review.status == LeadReview.Status.POSSIBLE_LEAD else review.proposal_note,
        "reviewed_by": _person(review.reviewed_by),
        "reviewed_at": _iso(review.reviewed_at),
        "review_note": review.review_note,
    }
    if review.status == LeadReview.Status.CONFIRMED:
        body["lineup_gate"] = _clearance(review)
    return body


def _candidate(candidate: Candidate) -> dict:
    review = getattr(candidate, "review", None)
    profile, face_image = candidate.profile, candidate.face_image
    erased = candidate.erased_at is not None or profile is None
    alert = WatchlistAlert.objects.filter(candidate=candidate).select_related("entry").first()
    return {
        "rank": candidate.rank,
        "distance": round(candidate.distance, 6),
        "engine": candidate.found_with,
        "likely": bool(candidate_is_match(candidate)),
        "profile": None if erased else profile.display_name,
        "erased": erased,
        "erased_reason": candidate.erased_reason or ("erased" if erased else ""),
        "erased_at": _iso(candidate.erased_at),
        "gallery": None
        if erased
        else {
            "name": profile.gallery.name,
            "owner": profile.gallery.owner.name,
            "legal_basis": profile.gallery.legal_basis,
        },
        "record_reference": "" if erased else profile.record_reference,
        "gallery_photo_sha256": face_image.content_hash if face_image is not None and not erased else None,
        "review_state": review.status if review is not None else "not_reviewed",
        "review": _review(review),
        "comparison_records": _records(candidate, review),
        "watchlist_alert": {"entry": str(alert.entry.code), "raised_at": _iso(alert.created_at)} if alert else None,
    }


def _edits(probe) -> list[dict]:
    return [
        {
            "number": edit.number,
            "operation": edit.operation,
            "parameters": edit.parameters,
            "made_by": _person(edit.made_by),
            "made_at": _iso(edit.created_at),
            "sha256_before": edit.hash_before,
            "sha256_after": edit.hash_after,
        }
        for edit in probe.edits.select_related("made_by").order_by("number")
    ]


def _search_from_rows(job: SearchJob, entries: list[AuditEntry]) -> dict:
    probe = job.probe
    faces = job_result_faces(job=job)
    return {
        "id": str(job.code),
        "data_erased": False,
        "started_at": _iso(job.created_at),
        "finished_at": _iso(job.finished_at),
        "started_by": _person(job.started_by),
        "purpose": job.offense_category.name if job.offense_category else None,
        "justification": job.justification,
        "status": job.status,
        "error": job.error,
        "found_no_face": job.found_no_face,
        "found_no_one": job.status == SearchJob.Status.DONE and not any(face.likely for face in faces),
        "sensitive_detector": job.sensitive,
        "top_k": job.top_k,
        "probe": {
            "file_name": probe.original_name,
            "sha256": probe.content_hash,
            "prepared_sha256": probe.prepared_hash or None,
            "edits": _edits(probe),
            "video_sha256": probe.video_hash or None,
            "video_frame_ms": probe.frame_time_ms,
            "image_purged_at": _iso(probe.purged_at),
        },
        "engine": job.engine,
        "engines": sorted((job.thresholds or {}).keys()) or [job.engine],
        "threshold": job.threshold,
        "thresholds": job.thresholds or {},
        "face_choice": job.face_choice or {},
        "authorisation": str(job.authorisation.code) if job.authorisation_id else None,
        "faces": [
            {
                "index": face.probe_face.index,
                "box": face.probe_face.box,
                "engine": face.probe_face.engine,
                "quality": face.quality,
                "decision": face.decision,
                "decision_words": face.decision_words,
                "threshold": face.threshold.distance,
                "calibration_version": face.threshold.version,
                "candidates": [_candidate(candidate) for candidate in sorted(face.candidates, key=lambda c: c.rank)],
            }
            for face in faces
        ],
        "audit_entry_ids": [entry.id for entry in entries],
    }


def _erasures(case: Case) -> dict[str, AuditEntry]:
    """Job code → the entry that erased its rows (a refused authorisation erases a case's search data)."""
    found = {}
    for entry in AuditEntry.objects.filter(case=case, action=AuditEntry.Action.CASE_SEARCH_DATA_ERASED).order_by("id"):
        for code in (entry.data or {}).get("jobs", []):
            found.setdefault(str(code), entry)
    return found


def _search_from_audit(entries: list[AuditEntry], erasures: dict[str, AuditEntry]) -> dict:
    """A search whose rows are gone, from what the audit log kept of it."""
    started = next((e for e in entries if e.action == AuditEntry.Action.SEARCH_STARTED), None)
    results = next((e for e in entries if e.action == AuditEntry.Action.SEARCH_RESULTS), None)
    failed = next((e for e in entries if e.action == AuditEntry.Action.SEARCH_FAILED), None)
    data = (started.data if started else {}) or {}
    code = data.get("job")
    erasure = erasures.get(str(code)) if code else None
    outcome = (results.data if results else {}) or {}
    return {
        "id": code,
        "data_erased": True,
        "erased_because": (erasure.data or {}).get("reason", erasure.detail) if erasure else ERASED_WITHOUT_ENTRY,
        "erased_at": _iso(erasure.at) if erasure else None,
        "erased_by": erasure.username if erasure else None,
        "started_at": _iso(started.at) if started else None,
        "started_by": {"username": started.username, "full_name": _full_name(started)} if started else None,
        "purpose": data.get("purpose"),
        "justification": data.get("justification"),
        "probe": {
            "sha256": data.get("probe_hash"),
            "prepared_sha256": data.get("prepared_hash"),
            "edits": data.get("edits", []),
            "video_sha256": data.get("video_hash"),
            "video_frame_ms": data.get("frame_ms"),
        },
        "authorisation": data.get("authorisation"),
        "status": "failed" if failed else ("done" if results else "unknown"),
        "error": failed.detail if failed else "",
        "results": {
            "at": _iso(results.at),
            "summary": results.detail,
            "faces": outcome.get("faces"),
            "candidates": len(outcome.get("candidate_ids", [])),
            "likely": outcome.get("likely"),
            "decisions": outcome.get("decisions"),
            "thresholds": outcome.get("thresholds"),
        }
        if results
        else None,
        "faces": [],
        "audit_entry_ids": [entry.id for entry in entries],
    }


def _full_name(entry: AuditEntry) -> str:
    return entry.actor.get_full_name().strip() if entry.actor_id else ""


def _searches(case: Case, audit: list[AuditEntry]) -> list[dict]:
    by_job: dict[str, list[AuditEntry]] = {}
    for entry in audit:
        if entry.target_type == "search.searchjob" and entry.action in SEARCH_ACTIONS:
            by_job.setdefault(entry.target_id, []).append(entry)
    jobs = (
        SearchJob.objects.filter(probe__case=case, agency_id=case.agency_id)
        .select_related("probe", "started_by", "offense_category", "authorisation")
        .order_by("created_at", "id")
    )
    found = [(job.created_at, _search_from_rows(job, by_job.pop(str(job.pk), []))) for job in jobs]
    erasures = _erasures(case)
    for entries in by_job.values():
        if any(e.action == AuditEntry.Action.SEARCH_STARTED for e in entries):
            found.append((entries[0].at, _search_from_audit(entries, erasures)))
    found.sort(key=lambda pair: pair[0])
    for number, (_, search) in enumerate(found, start=1):
        search["number"] = number
    return [search for _, search in found]


def _decisions(searches: list[dict]) -> list[dict]:
    """Every decision on a candidate, oldest first, from the searches above: who, what, when."""
    decisions = []
    for search in searches:
        for face in search["faces"]:
            for candidate in face["candidates"]:
                where = {"search": search["id"], "face": face["index"], "rank": candidate["rank"]}
                review = candidate["review"]
                records = candidate["comparison_records"]
                for record in records if isinstance(records, list) else []:
                    decisions.append(
                        where
                        | {
                            "decision": f"comparison_recorded ({record['role']})",
                            "by": record["examiner"],
                            "at": record["recorded_at"],
                            "detail": record["conclusion_words"],
                        }
                    )
                if review is None:
                    continue
                decisions.append(
                    where
                    | {
                        "decision": "excluded" if review["status"] == "excluded" else "proposed_as_possible_lead",
                        "by": review["proposed_by"],
                        "at": review["proposed_at"],
                        "detail": review["proposal_note"],
                    }
                )
                if review["reviewed_by"]:
                    decisions.append(
                        where
                        | {
                            "decision": review["status"],
                            "by": review["reviewed_by"],
                            "at": review["reviewed_at"],
                            "detail": review["review_note"],
                        }
                    )
                gate = review.get("lineup_gate")
                for item in gate["evidence"] if gate else []:
                    decisions.append(
                        where
                        | {
                            "decision": "independent_evidence_recorded",
                            "by": item["recorded_by"],
                            "at": item["recorded_at"],
                            "detail": f"{item['kind_words']}: {item['description']}",
                        }
                    )
                if gate and gate["cleared_for_identification"]:
                    decisions.append(
                        where
                        | {
                            "decision": "cleared_for_identification_procedures",
                            "by": gate["cleared_by"],
                            "at": gate["cleared_at"],
                            "detail": gate["note"],
                        }
                    )
    return sorted(decisions, key=lambda d: d["at"] or "")


def _authorisations(case: Case, audit: list[AuditEntry]) -> dict:
    rows = (
        CaseAuthorisation.objects.filter(case=case, agency_id=case.agency_id)
        .select_related("requested_by", "recorded_by")
        .prefetch_related("galleries", "offense_categories", "search_jobs")
        .order_by("created_at", "id")
    )
    actions = {
        AuditEntry.Action.AUTHORISATION_REQUESTED,
        AuditEntry.Action.AUTHORISATION_GRANTED,
        AuditEntry.Action.AUTHORISATION_REFUSED,
        AuditEntry.Action.SEARCH_REFUSED,
        AuditEntry.Action.CASE_SEARCH_DATA_ERASED,
    }
    return {
        "records": [
            {
                "id": str(row.code),
                "status": row.status,
                "requested_at": _iso(row.requested_at),
                "requested_by": _person(row.requested_by),
                "window_ends_at": _iso(row.window_ends_at),
                "authority": row.authority,
                "reference": row.reference,
                "decided_on": _iso(row.decided_on),
                "expires_at": _iso(row.expires_at),
                "galleries": sorted(g.name for g in row.galleries.all()) or "every gallery the agency may search",
                "offense_categories": sorted(c.name for c in row.offense_categories.all()) or "every category",
                "refusal_reason": row.refusal_reason,
                "recorded_by": _person(row.recorded_by),
                "recorded_at": _iso(row.recorded_at),
                "created_at": _iso(row.created_at),
                "searches": [str(job.code) for job in row.search_jobs.all()],
            }
            for row in rows
        ],
        "audit_entry_ids": [entry.id for entry in audit if entry.action in actions],
    }


def _watchlist(case: Case, audit: list[AuditEntry]) -> dict:
    entries = (
        WatchlistEntry.objects.filter(case=case, agency_id=case.agency_id)
        .select_related("job", "probe_face", "proposed_by", "decided_by")
        .order_by("proposed_at", "id")
    )
    alerts = (
        WatchlistAlert.objects.filter(entry__case=case, entry__agency_id=case.agency_id)
        .select_related("entry", "candidate", "candidate__job", "candidate__profile", "candidate__probe_face")
        .order_by("created_at", "id")
    )
    return {
        "entries": [
            {
                "id": str(entry.code),
                "status": entry.status,
                "search": str(entry.job.code),
                "face": entry.probe_face.index,
                "days": entry.days,
                "proposed_by": _person(entry.proposed_by),
                "proposed_at": _iso(entry.proposed_at),
                "proposal_note": entry.proposal_note,
                "decided_by": _person(entry.decided_by),
                "decided_at": _iso(entry.decided_at),
                "decision_note": entry.decision_note,
                "expires_at": _iso(entry.expires_at),
                "ended_at": _iso(entry.ended_at),
                "end_reason": entry.end_reason,
            }
            for entry in entries
        ],
        "alerts": [
            {
                "entry": str(alert.entry.code),
                "raised_at": _iso(alert.created_at),
                "engine": alert.engine,
                "distance": round(alert.distance, 6),
                "threshold": alert.threshold,
                "search": str(alert.candidate.job.code),
                "face": alert.candidate.probe_face.index,
                "rank": alert.candidate.rank,
                "profile": alert.candidate.profile.display_name
                if alert.candidate.profile_id and not alert.candidate.erased_at
                else None,
                "seen_at": _iso(alert.seen_at),
            }
            for alert in alerts
        ],
        "audit_entry_ids": [entry.id for entry in audit if entry.action.startswith("watchlist_")],
    }


def _audit_row(entry: AuditEntry) -> dict:
    return {
        "id": entry.id,
        "at": _iso(entry.at),
        "action": entry.action,
        "action_words": entry.get_action_display(),
        "actor": {"username": entry.username, "full_name": _full_name(entry)},
        "target": f"{entry.target_type}:{entry.target_id}" if entry.target_type else "",
        "detail": entry.detail,
        "data": entry.data,
        "entry_sha256": entry.entry_hash,
    }


def disclosure_data(*, case: Case, user: User, produced_at: datetime) -> dict:
    """Everything the packet discloses, as JSON-ready data (the PDF is laid out from the same)."""
    audit = list(AuditEntry.objects.filter(case=case).select_related("actor").order_by("id"))
    searches = _searches(case, audit)
    return {
        "format": FORMAT,
        "kind": "face-search disclosure packet",
        "statement": LEADS_STATEMENT,
        "produced_at": _iso(produced_at),
        "produced_by": _person(user) | {"role": user.role},
        "case": {
            "id": str(case.code),
            "number": case.number,
            "title": case.title,
            "status": case.status,
            "agency": case.agency.name,
            "opened_at": _iso(case.created_at),
            "opened_by": _person(case.created_by),
            "closed_at": _iso(case.closed_at),
        },
        "summary": {
            "searches": len(searches),
            "searches_data_erased": sum(s["data_erased"] for s in searches),
            "searches_no_face_found": sum(bool(s.get("found_no_face")) for s in searches),
            "searches_found_no_one": sum(bool(s.get("found_no_one")) for s in searches),
            "candidates": sum(len(f["candidates"]) for s in searches for f in s["faces"]),
            "confirmed_leads": sum(
                c["review_state"] == "confirmed" for s in searches for f in s["faces"] for c in f["candidates"]
            ),
            "cleared_for_identification": sum(
                bool(((c["review"] or {}).get("lineup_gate") or {}).get("cleared_for_identification"))
                for s in searches
                for f in s["faces"]
                for c in f["candidates"]
            ),
        },
        "searches": searches,
        "decisions": _decisions(searches),
        "authorisations": _authorisations(case, audit),
        "watchlist": _watchlist(case, audit),
        "audit": [_audit_row(entry) for entry in audit],
    }


# --- The PDF, laid out from the data ---------------------------------------------------------------------------


def _styles() -> dict:
    sheet = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=sheet["BodyText"], fontSize=9, leading=11.5)
    return {
        "title": ParagraphStyle("title", parent=sheet["Title"], fontSize=16, leading=20, spaceAfter=4),
        "h2": ParagraphStyle("h2", parent=sheet["Heading2"], fontSize=12, leading=15, spaceBefore=8, spaceAfter=3),
        "h3": ParagraphStyle(
            "h3", parent=sheet["Heading3"], fontSize=10, leading=13, spaceBefore=6, backColor=PALE, borderPadding=2
        ),
        "body": body,
        "small": ParagraphStyle("small", parent=body, fontSize=7.5, leading=9.2),
        "mono": ParagraphStyle("mono", parent=body, fontName="Courier", fontSize=6.5, leading=8),
        "banner": ParagraphStyle(
            "banner",
            parent=body,
            backColor=colors.HexColor("#fef3c7"),
            borderColor=colors.HexColor("#f59e0b"),
            borderWidth=1,
            borderPadding=6,
            textColor=colors.HexColor("#78350f"),
            spaceBefore=4,
            spaceAfter=10,
        ),
    }


def _who(person: dict | None) -> str:
    if not person:
        return "—"
    name = person.get("full_name") or ""
    return text(f"{name} ({person['username']})" if name else person["username"])


def _when(value: str | None) -> str:
    if not value:
        return "—"
    moment = datetime.fromisoformat(value)
    if isinstance(moment, datetime) and timezone.is_aware(moment):
        moment = timezone.localtime(moment)
    return f"{moment:%d %b %Y %H:%M:%S}" if "T" in value else f"{moment:%d %b %Y}"


def _table(rows, widths, styles, *, header=True) -> Table:
    cells = [[cell if not isinstance(cell, str) else Paragraph(cell, styles["small"]) for cell in row] for row in rows]
    table = Table(cells, colWidths=widths, repeatRows=1 if header else 0)
    commands = [
        ("GRID", (0, 0), (-1, -1), 0.25, GREY),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
        ("LEFTPADDING", (0, 0), (-1, -1), 2.5),
        ("RIGHTPADDING", (0, 0), (-1, -1), 2.5),
    ]
    if header:
        commands.append(("BACKGROUND", (0, 0), (-1, 0), PALE))
    table.setStyle(TableStyle(commands))
    return table


def _pairs(rows, styles) -> Table:
    return _table(
        [[f"<b>{label}</b>", value] for label, value in rows], [34 * mm, WIDTH - 34 * mm], styles, header=False
    )


def _review_words(candidate: dict) -> str:
    review = candidate["review"]
    if review is None:
        return "not reviewed"
    words = f"<b>{text(review['status_words'])}</b>: proposed by {_who(review['proposed_by'])}"
    words += f" {_when(review['proposed_at'])}"
    if review["reviewed_by"]:
        words += f"; decided by {_who(review['reviewed_by'])} {_when(review['reviewed_at'])}"
    records = candidate["comparison_records"]
    if isinstance(records, str):
        words += f" — {text(records)}"
    for record in records if isinstance(records, list) else []:
        words += f"<br/>{text(record['role'])}: {_who(record['examiner'])}, {text(record['conclusion_words'])}"
    gate = review.get("lineup_gate")
    if gate:
        words += f"<br/><b>{text(gate['identification_procedures'])}</b>"
    return words


def _search_story(search: dict, styles) -> list:
    probe = search["probe"]
    heading = f"Search {search['number']} · {_when(search['started_at'])} · {_who(search['started_by'])}"
    if search["data_erased"]:
        heading += " · DATA ERASED"
    rows = [
        ("Search id", text(search["id"] or "—")),
        ("Purpose", f"{text(search.get('purpose') or '—')} — {text(search.get('justification') or '—')}"),
        ("Probe SHA-256", f"<font name='Courier' size='6.5'>{text(probe.get('sha256') or '—')}</font>"),
        (
            "Prepared SHA-256",
            f"<font name='Courier' size='6.5'>{text(probe.get('prepared_sha256') or 'none: as received')}</font>",
        ),
    ]
    edits = probe.get("edits") or []
    if edits:
        lines = []
        for edit in edits:
            if isinstance(edit, dict):
                lines.append(
                    f"{edit['number']}. {text(edit['operation'])} {text(json.dumps(edit['parameters']))} by "
                    f"{_who(edit['made_by'])} {_when(edit['made_at'])}: {text(edit['sha256_before'][:16])}… → "
                    f"{text(edit['sha256_after'][:16])}…"
                )
            else:
                lines.append(text(edit))
        rows.append(("Edits", "<br/>".join(lines)))
    else:
        rows.append(("Edits", "none recorded"))
    if probe.get("video_sha256"):
        rows.append(
            ("Video still", f"frame at {probe.get('video_frame_ms')} ms of video SHA-256 {text(probe['video_sha256'])}")
        )
    if search["data_erased"]:
        rows += [
            (
                "Data erased",
                f"{text(search['erased_because'])} ({_when(search['erased_at'])}, {text(search['erased_by'] or '—')})",
            ),
            ("Outcome", text(search["status"]) + (f" — {text(search['error'])}" if search["error"] else "")),
        ]
        if search["results"]:
            results = search["results"]
            rows.append(
                (
                    "Results (audit)",
                    f"{text(results['summary'])}; {results['likely']} likely; thresholds "
                    f"{text(json.dumps(results['thresholds'], sort_keys=True))}",
                )
            )
    else:
        thresholds = (
            "<br/>".join(
                f"{text(engine)}: likely under {float(t.get('distance', search['threshold'])):.4f}, calibration "
                f"{'v' + str(t['version']) if t.get('version') is not None else 'none (fixed bound)'}"
                for engine, t in sorted(search["thresholds"].items())
            )
            or f"{text(search['engine'])}: likely under {search['threshold']:.4f} (fixed bound)"
        )
        outcome = "no face found" if search["found_no_face"] else text(search["status"])
        if search["found_no_one"]:
            outcome += " — found no likely candidate"
        rows += [
            ("Engine, thresholds", thresholds),
            ("Faces", text(json.dumps(search["face_choice"], sort_keys=True))),
            ("Outcome", outcome + (f" — {text(search['error'])}" if search["error"] else "")),
            ("Authorisation", text(search["authorisation"] or "none asked by the policy")),
        ]
    story = [KeepTogether([Paragraph(heading, styles["h3"]), _pairs(rows, styles)])]
    for face in search["faces"]:
        story.append(
            Paragraph(
                f"<b>Face {face['index']}</b>: {text(face['decision_words'])} · likely under "
                f"{face['threshold']:.4f} · {len(face['candidates'])} candidates (all listed)",
                styles["small"],
            )
        )
        if face["candidates"]:
            rows = [["Rank", "Candidate", "Distance", "Likely", "Gallery", "Review and decisions"]]
            for candidate in face["candidates"]:
                rows.append(
                    [
                        str(candidate["rank"]),
                        "(erased)" if candidate["erased"] else text(candidate["profile"]),
                        f"{candidate['distance']:.4f}",
                        "yes" if candidate["likely"] else "no",
                        "—" if candidate["erased"] else text(candidate["gallery"]["name"]),
                        _review_words(candidate),
                    ]
                )
            story.append(_table(rows, [10 * mm, 30 * mm, 16 * mm, 12 * mm, 28 * mm, WIDTH - 96 * mm], styles))
    story.append(Spacer(1, 3 * mm))
    return story


def disclosure_pdf(data: dict) -> bytes:
    """The packet's PDF: the same contents as its JSON, for people."""
    styles = _styles()
    case, summary = data["case"], data["summary"]
    story = [
        Paragraph(f"Disclosure packet — case {text(case['number'])}", styles["title"]),
        Paragraph(text(case["title"]), styles["h2"]),
        Paragraph(
            f"<b>Results of a face search are leads, never identifications.</b> {text(LEADS_STATEMENT)}",
            styles["banner"],
        ),
        _pairs(
            [
                ("Agency", text(case["agency"])),
                (
                    "Case",
                    f"{text(case['number'])} · {text(case['status'])} · opened {_when(case['opened_at'])} "
                    f"by {_who(case['opened_by'])}",
                ),
                ("Produced", f"{_when(data['produced_at'])} by {_who(data['produced_by'])}"),
                (
                    "Searches",
                    f"<b>{summary['searches']}</b> — {summary['searches_found_no_one']} found no likely candidate, "
                    f"{summary['searches_no_face_found']} found no face, "
                    f"{summary['searches_data_erased']} with data erased",
                ),
                ("Candidates", f"{summary['candidates']} (every one listed, chosen or not)"),
                (
                    "Confirmed leads",
                    f"{summary['confirmed_leads']}, of which {summary['cleared_for_identification']} cleared for "
                    "identification procedures on independent evidence",
                ),
                (
                    "Machine-readable",
                    "disclosure.json in the same ZIP (format 1); manifest.json holds both files' SHA-256",
                ),
            ],
            styles,
        ),
        Paragraph("Searches", styles["h2"]),
    ]
    for search in data["searches"]:
        story.extend(_search_story(search, styles))
    if not data["searches"]:
        story.append(Paragraph("No search in this case.", styles["body"]))
    story.append(Paragraph("Decisions", styles["h2"]))
    if data["decisions"]:
        rows = [["When", "Who", "Decision", "Search / face / rank", "Detail"]]
        for item in data["decisions"]:
            rows.append(
                [
                    _when(item["at"]),
                    _who(item["by"]),
                    text(item["decision"].replace("_", " ")),
                    f"{text(str(item['search'])[:8])}… / {item['face']} / {item['rank']}",
                    text(item["detail"] or ""),
                ]
            )
        story.append(_table(rows, [26 * mm, 30 * mm, 34 * mm, 26 * mm, WIDTH - 116 * mm], styles))
    else:
        story.append(Paragraph("No decision recorded on any candidate.", styles["body"]))
    story.append(Paragraph("Authorisations", styles["h2"]))
    records = data["authorisations"]["records"]
    if records:
        rows = [["Status", "Authority / reference", "Dates", "Scope", "Recorded"]]
        for row in records:
            scope = row["galleries"] if isinstance(row["galleries"], str) else ", ".join(row["galleries"])
            categories = row["offense_categories"]
            scope += "; " + (categories if isinstance(categories, str) else ", ".join(categories))
            rows.append(
                [
                    text(row["status"]) + (f": {text(row['refusal_reason'])}" if row["refusal_reason"] else ""),
                    f"{text(row['authority'] or '—')} / {text(row['reference'] or '—')}",
                    f"requested {_when(row['requested_at'])}, decided {_when(row['decided_on'])}, "
                    f"expires {_when(row['expires_at'])}, window ends {_when(row['window_ends_at'])}",
                    text(scope),
                    f"{_who(row['recorded_by'] or row['requested_by'])} "
                    f"{_when(row['recorded_at'] or row['created_at'])}",
                ]
            )
        story.append(_table(rows, [24 * mm, 36 * mm, 46 * mm, 36 * mm, WIDTH - 142 * mm], styles))
    else:
        story.append(Paragraph("No authorisation recorded for this case.", styles["body"]))
    story.append(Paragraph("Watch-list", styles["h2"]))
    watchlist = data["watchlist"]
    if watchlist["entries"]:
        rows = [["Entry", "Status", "Proposed", "Decided", "Expires / ended"]]
        for entry in watchlist["entries"]:
            rows.append(
                [
                    f"{text(entry['id'][:8])}… search {text(entry['search'][:8])}… face {entry['face']}",
                    text(entry["status"]),
                    f"{_who(entry['proposed_by'])} {_when(entry['proposed_at'])}",
                    f"{_who(entry['decided_by'])} {_when(entry['decided_at'])}",
                    f"{_when(entry['expires_at'])} / {_when(entry['ended_at'])} {text(entry['end_reason'])}",
                ]
            )
        story.append(_table(rows, [44 * mm, 20 * mm, 40 * mm, 40 * mm, WIDTH - 144 * mm], styles))
        for alert in watchlist["alerts"]:
            story.append(
                Paragraph(
                    f"Alert {_when(alert['raised_at'])}: entry {text(alert['entry'][:8])}…, "
                    f"{text(alert['profile'] or '(erased)')}, distance {alert['distance']:.4f} "
                    f"(threshold {alert['threshold']:.4f}, {text(alert['engine'])})",
                    styles["small"],
                )
            )
        if not watchlist["alerts"]:
            story.append(Paragraph("No watch-list alert.", styles["small"]))
    else:
        story.append(Paragraph("No watch-list entry for this case.", styles["body"]))
    story += [PageBreak(), Paragraph("Appendix: the audit entries of this case", styles["h2"])]
    rows = [["Id", "When", "Who", "Action", "Detail"]]
    for entry in data["audit"]:
        rows.append(
            [
                str(entry["id"]),
                _when(entry["at"]),
                _who(entry["actor"]) if entry["actor"]["username"] else "system",
                text(entry["action_words"]),
                text(entry["detail"]),
            ]
        )
    story.append(_table(rows, [12 * mm, 30 * mm, 30 * mm, 40 * mm, WIDTH - 112 * mm], styles))

    buffer = io.BytesIO()
    # The canvas draws plain strings (no markup to escape), only without control characters.
    footer_case = "".join(ch for ch in str(case["number"]) if ch.isprintable())

    def footer(canvas, doc):
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.drawString(
            18 * mm, 9 * mm, f"Disclosure packet · case {footer_case} · leads, never identifications · page {doc.page}"
        )
        canvas.restoreState()

    SimpleDocTemplate(
        buffer,
        pagesize=A4,
        title=f"Disclosure packet {case['number']}",
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=14 * mm,
        bottomMargin=16 * mm,
    ).build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()


# --- The packet ------------------------------------------------------------------------------------------------


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def disclosure_packet(*, case: Case, user: User, ip_address: str | None = None) -> tuple[bytes, str]:
    """The case's disclosure packet (ZIP bytes) and its SHA-256, recorded in the audit log before it is
    returned; only the case agency's supervisors and admins produce one."""
    if user.agency_id is None or user.agency_id != case.agency_id or user.role not in DISCLOSERS:
        raise DisclosureRefused("Only the case agency's supervisors and admins produce its disclosure packet.")
    produced_at = timezone.now()
    data = disclosure_data(case=case, user=user, produced_at=produced_at)
    disclosure_json = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False).encode()
    disclosure_pdf_bytes = disclosure_pdf(data)
    manifest = {
        "format": FORMAT,
        "case": case.number,
        "produced_at": _iso(produced_at),
        "files": {
            name: {"sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content)}
            for name, content in (("disclosure.json", disclosure_json), ("disclosure.pdf", disclosure_pdf_bytes))
        },
    }
    packet = _zip(
        {
            "disclosure.json": disclosure_json,
            "disclosure.pdf": disclosure_pdf_bytes,
            "manifest.json": json.dumps(manifest, indent=2).encode(),
        }
    )
    digest = hashlib.sha256(packet).hexdigest()
    with transaction.atomic():
        audit_record(
            action=AuditEntry.Action.DISCLOSURE_PACKET,
            actor=user,
            case=case,
            target=case,
            ip_address=ip_address,
            detail=f"Disclosure packet of case {case.number}: {len(packet)} bytes, SHA-256 {digest}",
            data={
                "sha256": digest,
                "bytes": len(packet),
                "searches": data["summary"]["searches"],
                "audit_entries": len(data["audit"]),
                "files": manifest["files"],
            },
        )
    return packet, digest
