"""The reconciliation queue page for imaging managers, and the resolve form."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts import permissions as perms
from audit.context import actor_from_request

from . import selectors, services
from .models import Outcome


@login_required
def queue(request: HttpRequest) -> HttpResponse:
    outcome = request.GET.get("outcome", Outcome.HELD)
    outcome = outcome if outcome in Outcome.values else Outcome.HELD
    items = selectors.reconciliation_list(user=request.user, outcome=outcome)
    page = Paginator(items, 50).get_page(request.GET.get("page"))
    return render(request, "reconciliation/queue.html", {"page": page, "outcome": outcome, "outcomes": Outcome.choices})


@login_required
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    item = perms.get_visible_or_404(selectors.reconciliation_list(user=request.user, outcome=""), pk=pk)
    return render(request, "reconciliation/detail.html", {"item": item, "may_resolve": item.outcome == Outcome.HELD})


@login_required
@require_POST
def resolve(request: HttpRequest, pk: int) -> HttpResponse:
    item = perms.get_visible_or_404(selectors.reconciliation_list(user=request.user, outcome=""), pk=pk)
    try:
        services.reconciliation_resolve(
            item=item,
            user=request.user,
            patient_id=request.POST.get("patient_id", ""),
            issuer=request.POST.get("issuer", ""),
            new_patient=request.POST.get("new_patient") == "on",
            actor=actor_from_request(request),
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Resolved: the held images are being forwarded to your PACS.")
    return redirect("reconciliation:detail", pk=pk)
