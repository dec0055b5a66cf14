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
from portal.api import MAX_OBJECT_ID
from portal.forms import add_service_errors

from . import selectors, services
from .forms import PushForm, TransferFilterForm
from .models import FINISHED, RETRYABLE, InstanceState

DIRECTIONS = ("", "outgoing", "incoming")


@login_required
def transfer_push(request: HttpRequest, ods_code: str) -> HttpResponse:
    """Arriving from the search results (no `confirm`), the form starts with the chosen studies."""
    source = trust_for_study_search(request.user, ods_code)
    perms.require(perms.may_push_from(request.user, source.pk), f"Only clinicians of {source.ods_code} may send.")
    if request.method == "POST" and request.POST.get("confirm"):
        form = PushForm(request.POST, source=source)
        if form.is_valid():
            data = form.cleaned_data
            try:
                transfer = services.transfer_create(
                    source=source,
                    destination=data["destination_trust"],
                    study_instance_uids=data["study_instance_uids"],
                    priority=data["priority"],
                    reason=data["reason"],
                    requested_by=request.user,
                    actor=actor_from_request(request),
                )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, f"Transfer {transfer.pk} queued.")
                return redirect("transfers:detail", pk=transfer.pk)
        status = 400
    else:
        uids = request.POST.getlist("study_instance_uids") if request.method == "POST" else []
        form = PushForm(initial={"study_instance_uids": uids}, source=source)
        status = 200
    uids = form["study_instance_uids"].value() or []
    context = {"source": source, "form": form, "uids": uids if isinstance(uids, list) else [uids]}
    return render(request, "transfers/push.html", context, status=status)


@login_required
def transfer_list(request: HttpRequest) -> HttpResponse:
    direction = request.GET.get("direction", "")
    direction = direction if direction in DIRECTIONS else ""
    form = TransferFilterForm(request.GET)
    status = form.cleaned_data["status"] if form.is_valid() else ""
    transfers = selectors.transfer_list(user=request.user, direction=direction, status=status)
    page = Paginator(transfers, 50).get_page(request.GET.get("page"))
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
    context = {
        "transfer": transfer,
        "failed_instances": failed[:200],
        "finished": transfer.status in FINISHED,
        "may_cancel": may_manage and transfer.status not in FINISHED,
        "may_retry": may_manage and transfer.status in RETRYABLE,
        "rate": rate,
    }
    return render(request, "transfers/detail.html", context)


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
