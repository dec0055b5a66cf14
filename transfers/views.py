"""Transfer pages: the push form, the list and the detail page. Validate, check, call a service, render."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts import permissions as perms
from audit.context import actor_from_request
from exchange.apis import trust_for_study_search
from exchange.views import chosen_studies
from portal.api import MAX_OBJECT_ID
from portal.forms import add_service_errors

from . import selectors, services
from .forms import PushForm, TransferFilterForm
from .models import FINISHED, RETRYABLE, InstanceState, Status
from .progress import transfer_stage

DIRECTIONS = ("", "outgoing", "incoming")


@login_required
def transfer_push(request: HttpRequest, ods_code: str) -> HttpResponse:
    """Three steps: the studies ticked in the search results (no `step`), the form (where to, how urgently,
    why), then a confirmation naming the patient and the destination (`step=review`); only `step=send`
    (or the older `confirm`) creates the transfer."""
    source = trust_for_study_search(request.user, ods_code)
    perms.require(perms.may_push_from(request.user, source.pk), f"Only clinicians of {source.ods_code} may send.")
    step = request.POST.get("step") or ("send" if request.POST.get("confirm") else "")
    status = 200
    if request.method == "POST" and step in ("review", "send"):
        form = PushForm(request.POST, source=source)
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            studies, lookup_error = chosen_studies(request, source, data["study_instance_uids"], "push")
            if step == "review":
                context = {"source": source, "form": form, "studies": studies, "lookup_error": lookup_error}
                context["thumbs_trust"] = source.ods_code
                context["patients"] = _patients(studies)
                return render(request, "transfers/push_confirm.html", context)
            try:
                transfer = services.transfer_create(
                    source=source,
                    destination=data["destination_trust"],
                    study_instance_uids=data["study_instance_uids"],
                    priority=data["priority"],
                    reason=data["reason"],
                    requested_by=request.user,
                    actor=actor_from_request(request),
                    studies=studies,
                )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, f"Transfer {transfer.pk} queued: it appears on your home page.")
                return redirect("transfers:detail", pk=transfer.pk)
    else:
        uids = request.POST.getlist("study_instance_uids") if request.method == "POST" else request.GET.getlist("study")
        form = PushForm(initial={"study_instance_uids": uids}, source=source)
    uids = form["study_instance_uids"].value() or []
    uids = uids if isinstance(uids, list) else [uids]
    studies, lookup_error = chosen_studies(request, source, [u for u in uids if u], "push") if uids else ([], "")
    context = {
        "source": source,
        "form": form,
        "uids": uids,
        "studies": studies,
        "patients": _patients(studies),
        "lookup_error": lookup_error,
    }
    return render(request, "transfers/push.html", context, status=status)


def _patients(studies: list[dict]) -> list[dict]:
    """One summary per patient among the studies (more than one is worth a warning before sending)."""
    seen: dict[str, dict] = {}
    for study in studies:
        if "patient_name" in study:
            seen.setdefault(study.get("nhs_number") or study.get("patient_id") or study["patient_name"], study)
    return list(seen.values())


@login_required
def transfer_list(request: HttpRequest) -> HttpResponse:
    direction = request.GET.get("direction", "")
    direction = direction if direction in DIRECTIONS else ""
    form = TransferFilterForm(request.GET)
    status = form.cleaned_data["status"] if form.is_valid() else ""
    transfers = selectors.transfer_list(user=request.user, direction=direction, status=status)
    page = Paginator(transfers, 50).get_page(request.GET.get("page"))
    for transfer in page:
        transfer.stage = transfer_stage(transfer)
    context = {"page": page, "form": form, "direction": direction, "status": status}
    return render(request, "transfers/list.html", context)


@login_required
def transfer_detail(request: HttpRequest, pk: int) -> HttpResponse:
    transfer = perms.get_visible_or_404(selectors.transfer_list(user=request.user), pk=pk)
    failed = transfer.instances.filter(state=InstanceState.FAILED).exclude(last_error="")
    may_manage = perms.may_manage_transfer(request.user, transfer)
    rate = None
    if transfer.started_at and transfer.bytes_done and transfer.status not in FINISHED:
        seconds = (timezone.now() - transfer.started_at).total_seconds()
        rate = transfer.bytes_done / seconds / 1_000_000 if seconds > 0 else None
    studies = transfer.studies or [{"study_instance_uid": uid} for uid in transfer.study_instance_uids]
    context = {
        "transfer": transfer,
        "stage": transfer_stage(transfer),
        "studies": studies,
        "patients": _patients(studies),
        "errors": errors_once(transfer.errors, failed[:200]),
        "thumbs_trust": _thumbnail_trust(request.user, transfer),
        "held": transfer.instances.filter(state=InstanceState.HELD).count(),
        # Nothing more to poll for: ended, or waiting on a person (an imaging manager's matching).
        "resting": transfer.status in FINISHED or transfer.status == Status.AWAITING_RECONCILIATION,
        "may_cancel": may_manage and transfer.status not in FINISHED,
        "may_retry": may_manage and transfer.status in RETRYABLE,
        "rate": rate,
    }
    return render(request, "transfers/detail.html", context)


def _thumbnail_trust(user, transfer) -> str:
    """Whose PACS the study thumbnails come from: the source's for its own staff, else the destination's
    once the images are there (a user sees only their own trust's images)."""
    if perms.may_search_studies(user, transfer.source_id):
        return transfer.source.ods_code
    if transfer.status == Status.COMPLETED and perms.may_search_studies(user, transfer.destination_id):
        return transfer.destination.ods_code
    return ""


def errors_once(errors: list[dict], failed_rows) -> list[dict]:
    """One row per instance: the engine lists each failed instance in `errors` and the ledger says the same,
    so a page showing both listed every failure twice (40 rows for 20 after a retry)."""
    rows, seen = [], set()
    for entry in errors:
        uid = entry.get("sop_instance_uid") or entry.get("study_instance_uid") or ""
        if uid and uid in seen:
            continue
        seen.add(uid)
        rows.append({"uid": uid, "error": entry.get("error", "")})
    for row in failed_rows:
        if row.sop_instance_uid not in seen:
            seen.add(row.sop_instance_uid)
            rows.append({"uid": row.sop_instance_uid, "error": row.last_error})
    return rows


@login_required
@require_POST
def transfer_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    return _change(request, pk, services.transfer_cancel, "cancelled")


@login_required
@require_POST
def transfer_retry(request: HttpRequest, pk: int) -> HttpResponse:
    return _change(request, pk, services.transfer_retry, "queued again")


def _change(request: HttpRequest, pk: int, service, done: str) -> HttpResponse:
    transfer = perms.get_visible_or_404(selectors.transfer_list(user=request.user), pk=pk)
    try:
        service(transfer=transfer, user=request.user, actor=actor_from_request(request))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Transfer {transfer.pk} {done}.")
    return redirect("transfers:detail", pk=transfer.pk)


@login_required
def transfer_operations(request: HttpRequest) -> HttpResponse:
    """The imaging manager's desk: queues per gateway, stuck and failed transfers, bulk retry and cancel."""
    perms.require(perms.may_view_transfer_operations(request.user), "For imaging managers of a trust.")
    if request.method == "POST":
        ids = _ids(request.POST.getlist("transfer"))
        if ids is None:
            messages.error(request, "Choose transfers by their numbers.")
            return redirect("transfers:operations")
        chosen = selectors.visible_in_order(user=request.user, ids=ids)
        try:
            done = services.transfer_bulk_change(
                action=request.POST.get("action", ""),
                transfers=chosen,
                user=request.user,
                actor=actor_from_request(request),
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            verb = "cancelled" if request.POST.get("action") == "cancel" else "queued again"
            messages.success(request, f"{len(done)} transfer{'s' if len(done) != 1 else ''} {verb}.")
        return redirect("transfers:operations")
    operations = selectors.transfer_operations(user=request.user)
    return render(request, "transfers/operations.html", {"ops": operations})


def _ids(values: list[str]) -> list[int] | None:
    try:
        ids = [int(v) for v in values]
    except ValueError:
        return None
    return ids if all(1 <= i <= MAX_OBJECT_ID for i in ids) else None
