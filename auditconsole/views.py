"""The IG officer's console: search, patient access and user activity reports, alerts, chain verification.

Views validate, call selectors and services, and render; each page that shows audit events records that
it did (110101), each download is an export (110106).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_safe

from accounts import permissions as perms
from audit import alerts, exports, tasks
from audit.codes import ActorType, EventID, LocalEventType, Outcome
from audit.context import actor_from_request
from audit.models import AuditAlert, AuditEvent, ChainDigest, ChainHead
from copies import selectors as copies_selectors
from portal.enqueue import enqueue_after_commit

from . import selectors
from .serializers import AuditQuerySerializer
from .usage import record_export, record_read, run_verification


def _require_audit(request: HttpRequest) -> None:
    if not perms.may_view_audit(request.user):
        raise PermissionDenied("Only IG officers and regional administrators may read the audit trail.")


def _trust_choices(user) -> list[str]:
    codes = perms.audit_trust_codes(user)
    if codes is None:
        from directory.models import Trust

        return list(Trust.objects.order_by("ods_code").values_list("ods_code", flat=True))
    return sorted(codes)


def _export(request: HttpRequest, events, filters, fmt: str, report: str) -> StreamingHttpResponse:
    record_export(request, filters, fmt, report=report)
    content_type, _ = exports.FORMATS[fmt]
    response = StreamingHttpResponse(exports.render(fmt, selectors.iterate(events)), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{exports.filename(fmt)}"'
    return response


_DATE_PARTS = ("day", "month", "year")


def _query(request: HttpRequest) -> AuditQuerySerializer:
    """The filters; the page's dates come as day, month and year boxes (the service manual's pattern, not
    the browser's locale-dependent date picker) and are read as the API's ISO dates."""
    data = {key: value for key, value in request.GET.items() if key != "cursor" and not key.endswith(_DATE_PARTS)}
    for name in ("since", "until"):
        parts = [request.GET.get(f"{name}_{part}", "").strip() for part in _DATE_PARTS]
        if any(parts) and not data.get(name):
            day, month, year = parts
            data[name] = f"{year}-{month.zfill(2)}-{day.zfill(2)}" if all(parts) else "incomplete"
    return AuditQuerySerializer(data=data)


def _page(request: HttpRequest, events) -> selectors.Page | None:
    try:
        return selectors.page_of(events, cursor=request.GET.get("cursor") or None)
    except selectors.BadCursor as exc:
        messages.error(request, str(exc))
        return None


def _context(request: HttpRequest, query: AuditQuerySerializer, **extra: object) -> dict:
    return {
        "params": request.GET,
        "errors": query.errors if query.errors else {},
        "event_ids": EventID.choices,
        "outcomes": Outcome.choices,
        "actor_types": ActorType.choices,
        "trusts": _trust_choices(request.user),
        "export_formats": [("csv", "CSV"), ("fhir", "FHIR R4 (JSON)"), ("dicom", "DICOM audit XML")],
        "querystring": request.GET.urlencode(),
        "date_parts": [("day", 2), ("month", 2), ("year", 4)],
        **extra,
    }


@login_required
@require_safe
def search(request: HttpRequest) -> HttpResponse:
    _require_audit(request)
    query = _query(request)
    if not query.is_valid():
        return render(request, "audit/search.html", _context(request, query, page=None), status=400)
    filters = query.filters()
    events = selectors.search_events(request.user, filters)
    fmt = query.validated_data["format"]
    if fmt in exports.FORMATS:
        return _export(request, events, filters, fmt, "search")
    page = _page(request, events)
    record_read(request, filters, returned=len(page.events) if page else 0)
    return render(request, "audit/search.html", _context(request, query, page=page))


@login_required
@require_safe
def patient_report(request: HttpRequest) -> HttpResponse:
    """Every access to one patient's images: by whom, when, from where, and why (a subject access request)."""
    _require_audit(request)
    query = _query(request)
    valid = query.is_valid()
    if not request.GET.get("nhs_number") or not valid:
        status = 400 if request.GET.get("nhs_number") else 200
        return render(request, "audit/patient_report.html", _context(request, query, page=None), status=status)
    filters = query.filters()
    events = selectors.patient_events(request.user, filters.nhs_number)
    fmt = query.validated_data["format"]
    if fmt in exports.FORMATS:
        return _export(request, events, filters, fmt, "patient access")
    page = _page(request, events)
    summary = selectors.patient_summary(events)
    record_read(request, filters, returned=len(page.events) if page else 0, report="patient access")
    context = _context(request, query, page=page, summary=summary, nhs_number=filters.nhs_number)
    # Copies of the patient's images across the region (the register), as this officer's trusts see them.
    context["holdings"] = copies_selectors.holdings(request.user, nhs_number=filters.nhs_number)
    return render(request, "audit/patient_report.html", context)


@login_required
@require_safe
def user_report(request: HttpRequest) -> HttpResponse:
    """What one member of staff did, as far as the officer's trusts are concerned."""
    _require_audit(request)
    query = _query(request)
    valid = query.is_valid()
    who = request.GET.get("user", "").strip()
    target = None
    if who:
        users = get_user_model().objects
        target = (users.filter(pk=int(who)) if who.isdigit() else users.filter(email__iexact=who)).first()
    if target is None or not valid:
        if who and target is None:
            messages.error(request, f"No member of staff has the email address {who}.")
        return render(request, "audit/user_report.html", _context(request, query, page=None))
    filters = query.filters()
    events = selectors.user_events(request.user, target.pk)
    fmt = query.validated_data["format"]
    if fmt in exports.FORMATS:
        return _export(request, events, filters, fmt, "user activity")
    page = _page(request, events)
    summary = selectors.user_summary(request.user, events, target.pk)
    record_read(request, filters, returned=len(page.events) if page else 0, report="user activity")
    context = _context(request, query, page=page, summary=summary, target=target)
    return render(request, "audit/user_report.html", context)


@login_required
@require_safe
def event_detail(request: HttpRequest, seq: int) -> HttpResponse:
    _require_audit(request)
    event = perms.get_visible_or_404(selectors.visible_events(request.user), seq=seq)
    previous = AuditEvent.objects.filter(seq=seq - 1).values_list("hash", flat=True).first()
    intact = event.compute_hash() == event.hash and (seq == 1 or previous == event.prev_hash)
    record_read(request, selectors.EventFilters(), returned=1, event=event, report="event")
    return render(request, "audit/event_detail.html", {"event": event, "intact": intact})


@login_required
@require_safe
def alert_list(request: HttpRequest) -> HttpResponse:
    _require_audit(request)
    status = request.GET.get("status", AuditAlert.Status.OPEN)
    kind = request.GET.get("kind", "")
    found = selectors.alerts_for(request.user, status=status if status != "all" else "", kind=kind)[:500]
    context = {"alerts": found, "status": status, "kind": kind, "kinds": AuditAlert.Kind.choices}
    return render(request, "audit/alerts.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def alert_detail(request: HttpRequest, pk: int) -> HttpResponse:
    _require_audit(request)
    alert = perms.get_visible_or_404(selectors.visible_alerts(request.user), pk=pk)
    if request.method == "POST":
        perms.require(perms.may_acknowledge_alert(request.user, alert), "Only the trust's IG officers acknowledge it.")
        note = request.POST.get("note", "").strip()
        if not note:
            messages.error(request, "Say what you found and did: the note is kept with the alert.")
        else:
            alerts.acknowledge(alert=alert, user=request.user, note=note, actor=actor_from_request(request))
            messages.success(request, "Alert acknowledged.")
            return redirect("audit:alert_detail", pk=alert.pk)
    events = list(selectors.alert_events(request.user, alert)[:50])
    record_read(request, selectors.EventFilters(nhs_number=alert.nhs_number), returned=len(events), report="alert")
    can_ack = perms.may_acknowledge_alert(request.user, alert)
    return render(request, "audit/alert_detail.html", {"alert": alert, "events": events, "can_acknowledge": can_ack})


@login_required
@require_http_methods(["GET", "POST"])
def verify(request: HttpRequest) -> HttpResponse:
    """Check what is new since the last digest at once; walk the whole chain in the background."""
    _require_audit(request)
    if request.method == "POST" and request.POST.get("scope") == "full":
        enqueue_after_commit(tasks.verify_chain_fully)
        messages.info(request, "The whole chain is being verified. A break raises an alert; the result is recorded.")
        return redirect("audit:verify")
    report = None
    if request.method == "POST":
        report = run_verification(request, since_last_digest=True)
        level = messages.SUCCESS if report.ok else messages.ERROR
        text = (
            f"The chain is intact: {report.events_checked} events verified from #{report.from_seq}, "
            f"and the database agrees with {report.digests_checked} digest files."
            if report.ok
            else f"The chain is broken at event #{report.first_broken_seq}: {report.problem}."
            if report.first_broken_seq
            else f"The audit trail is not intact: {report.problem}."
        )
        messages.add_message(request, level, text)
    context = {
        "report": report,
        "head": ChainHead.objects.filter(pk=1).first(),
        "digests": ChainDigest.objects.order_by("-created_at")[:14],
        "last_full": AuditEvent.objects.filter(event_type=LocalEventType.CHAIN_VERIFIED)
        .filter(detail__from_seq=1)
        .order_by("-timestamp", "-seq")
        .first(),
    }
    return render(request, "audit/verify.html", context)
