"""Directory pages: every trust and its gateways' health; imaging managers edit their gateways."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts import permissions as perms
from accounts.permissions import Perm
from audit.context import actor_from_request

from . import services
from .forms import GatewayForm
from .models import Gateway, SharingAgreement, Trust


@login_required
def trust_list(request: HttpRequest) -> HttpResponse:
    trusts = Trust.objects.prefetch_related("gateways").order_by("name")
    return render(request, "directory/trust_list.html", {"trusts": trusts})


@login_required
def trust_detail(request: HttpRequest, ods_code: str) -> HttpResponse:
    trust = perms.get_visible_or_404(Trust.objects.all(), ods_code=ods_code)
    # Every trust's gateways' health is public in the region; their addresses and a trust's agreements
    # are for its own members (as in the API).
    agreements = perms.visible_agreements(
        request.user, SharingAgreement.objects.filter(Q(trust_a=trust) | Q(trust_b=trust), active=True)
    ).select_related("trust_a", "trust_b")
    context = {
        "trust": trust,
        "gateways": trust.gateways.all(),
        "gateway_details": set(perms.visible_gateways(request.user, trust.gateways.all()).values_list("pk", flat=True)),
        "agreements": list(agreements),
        "sees_all": perms.is_regional_admin(request.user) or trust.pk in perms.member_trust_ids(request.user),
        "can_change_gateways": perms.has_perm_at(request.user, Perm.CHANGE_GATEWAY, trust.pk),
    }
    return render(request, "directory/trust_detail.html", context)


@login_required
def gateway_create(request: HttpRequest, ods_code: str) -> HttpResponse:
    # Gateways of a trust you don't belong to are not yours to know about: 404, not 403.
    trust = perms.get_visible_or_404(
        Trust.objects.filter(pk__in=_trusts_visible_for_gateways(request.user)), ods_code=ods_code
    )
    perms.require(perms.has_perm_at(request.user, Perm.CHANGE_GATEWAY, trust.pk))
    return _gateway_form(request, GatewayForm(request.POST or None, trust=trust), trust, instance=None)


@login_required
def gateway_edit(request: HttpRequest, pk: int) -> HttpResponse:
    gateway = perms.get_visible_or_404(perms.visible_gateways(request.user, Gateway.objects.all()), pk=pk)
    perms.require(perms.has_perm_at(request.user, Perm.CHANGE_GATEWAY, gateway.trust_id))
    form = GatewayForm(request.POST or None, instance=gateway)
    return _gateway_form(request, form, gateway.trust, instance=gateway)


def _trusts_visible_for_gateways(user) -> list[int]:
    if perms.is_regional_admin(user):
        return list(Trust.objects.values_list("pk", flat=True))
    return list(perms.member_trust_ids(user))


def _gateway_form(request: HttpRequest, form: GatewayForm, trust: Trust, instance: Gateway | None) -> HttpResponse:
    if request.method == "POST" and form.is_valid():
        values = {name: form.cleaned_data[name] for name in form.Meta.fields}
        if instance is None:
            values["trust"] = trust
        gateway = services.gateway_save(actor=actor_from_request(request), instance=instance, **values)
        messages.success(request, f"Gateway “{gateway.name}” saved.")
        return redirect("directory:trust_detail", ods_code=trust.ods_code)
    status = 400 if request.method == "POST" else 200
    return render(
        request, "directory/gateway_form.html", {"form": form, "trust": trust, "gateway": instance}, status=status
    )
