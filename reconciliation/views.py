"""The reconciliation queue page for imaging managers, and the resolve form."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts import permissions as perms
from audit.context import actor_from_request
from directory.models import Trust
from directory.services import trust_save

from . import selectors, services
from .models import Outcome


@login_required
def queue(request: HttpRequest) -> HttpResponse:
    outcome = request.GET.get("outcome", Outcome.HELD)
    outcome = outcome if outcome in Outcome.values else Outcome.HELD
    items = selectors.reconciliation_list(user=request.user, outcome=outcome)
    page = Paginator(items, 50).get_page(request.GET.get("page"))
    managed = Trust.objects.filter(pk__in=perms.member_trust_ids(request.user, perms.Perm.RECONCILE_ARRIVALS))
    context = {"page": page, "outcome": outcome, "outcomes": Outcome.choices, "managed": managed.order_by("name")}
    return render(request, "reconciliation/queue.html", context)


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


class SwitchesForm(forms.ModelForm):
    class Meta:
        model = Trust
        fields = sorted(perms.RECONCILIATION_SETTINGS)


@login_required
def switches(request: HttpRequest, ods_code: str) -> HttpResponse:
    """A trust's reconciliation switches: its imaging managers (and regional administrators) change them."""
    trust = perms.get_visible_or_404(Trust.objects.all(), ods_code=ods_code)
    perms.require(
        perms.may_change_trust(request.user, trust.pk, set(perms.RECONCILIATION_SETTINGS)),
        f"Only imaging managers of {trust.ods_code} may change how it reconciles arrivals.",
    )
    form = SwitchesForm(request.POST or None, instance=Trust.objects.get(pk=trust.pk))
    if request.method == "POST" and form.is_valid():
        trust_save(actor=actor_from_request(request), instance=trust, **form.cleaned_data)
        messages.success(request, f"Reconciliation settings of {trust.ods_code} saved.")
        return redirect("reconciliation:switches", ods_code=trust.ods_code)
    return render(request, "reconciliation/switches.html", {"trust": trust, "form": form})
