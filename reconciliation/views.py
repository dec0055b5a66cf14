"""The reconciliation queue page for imaging managers, and the resolve form."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts import permissions as perms
from audit.context import actor_from_request
from copies import selectors as copies_selectors
from directory.models import Trust
from directory.services import trust_save
from exchange import viewing
from exchange.services import GatewayUnavailable, local_patients
from exchange.view_pages import serve_folder, viewer_context

from . import selectors, services
from .assistant import Assistant, assistant_for, held_study, siblings_of
from .models import Outcome


@login_required
def queue(request: HttpRequest) -> HttpResponse:
    outcome = request.GET.get("outcome", Outcome.HELD)
    outcome = outcome if outcome in Outcome.values else Outcome.HELD
    items = selectors.reconciliation_list(user=request.user, outcome=outcome)
    page = Paginator(items, 50).get_page(request.GET.get("page"))
    managed = Trust.objects.filter(pk__in=perms.member_trust_ids(request.user, perms.Perm.RECONCILE_ARRIVALS))
    context = {"page": page, "outcome": outcome, "outcomes": Outcome.choices, "managed": managed.order_by("name")}
    # Corrections of studies this trust holds, sent by their source: acknowledged here as on the home page.
    context["received"] = copies_selectors.received_deliveries(request.user, unacknowledged=True)[:50]
    return render(request, "reconciliation/queue.html", context)


@login_required
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    item = perms.get_visible_or_404(selectors.reconciliation_list(user=request.user, outcome=""), pk=pk)
    may_resolve = item.outcome == Outcome.HELD
    context = {
        "item": item,
        "may_resolve": may_resolve,
        "typed": request.session.pop(f"reconcile:{pk}", {}),
        "sent": {
            "patient_name": item.patient_name,
            "nhs_number": item.nhs_number,
            "birth_date": item.birth_date,
            "sex": item.sex,
            "patient_id": item.source_patient_id,
            "patient_id_issuer": item.source_issuer,
        },
    }
    if may_resolve:
        context["assistant"] = assistant_for(item, actor=actor_from_request(request))
    else:
        context["assistant"] = Assistant(held_study(item), [], "", [])
    return render(request, "reconciliation/detail.html", context)


@login_required
@require_POST
def resolve(request: HttpRequest, pk: int) -> HttpResponse:
    """File the held study (and, when asked, every other held study of the patient in the same transfer)
    under a local patient. A typed ID is first looked up at the trust's PACS: one it does not hold is
    refused, so a mistyped MRN never files images against nobody (or somebody else)."""
    item = perms.get_visible_or_404(selectors.reconciliation_list(user=request.user, outcome=""), pk=pk)
    patient_id = request.POST.get("patient_id", "").strip()
    issuer = request.POST.get("issuer", "").strip()
    new_patient = request.POST.get("new_patient") == "on"
    items = [item, *siblings_of(item)] if request.POST.get("all_of_patient") == "on" else [item]
    if patient_id and not new_patient:
        problem = _unknown_locally(request, item, patient_id)
        if problem:
            messages.error(request, problem)
            request.session[f"reconcile:{pk}"] = {"patient_id": patient_id, "issuer": issuer}
            return redirect("reconciliation:detail", pk=pk)
    try:
        done = services.reconciliation_resolve_many(
            items=items,
            user=request.user,
            patient_id=patient_id,
            issuer=issuer,
            new_patient=new_patient,
            actor=actor_from_request(request),
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("reconciliation:detail", pk=pk)
    filed = done[0].patient_id
    studies = f"{len(done)} studies" if len(done) > 1 else "The study"
    messages.success(request, f"{studies} filed under {filed}: the held images are being forwarded to your PACS.")
    return redirect("reconciliation:detail", pk=pk)


def _unknown_locally(request: HttpRequest, item, patient_id: str) -> str:
    """Why the typed ID cannot be accepted ('' when the PACS holds a patient with it)."""
    trust = item.destination
    try:
        found = local_patients(
            trust=trust, actor=actor_from_request(request), patient_id=patient_id, purpose=f"reconciliation {item.pk}"
        )
    except GatewayUnavailable as exc:
        return f"The ID could not be checked at {trust.ods_code}'s PACS, so nothing was filed: {exc}"
    if not found:
        return (
            f"{trust.name}'s PACS holds no patient with the local ID {patient_id}. Check the ID, or file the "
            "images as a new patient."
        )
    return ""


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


def _held_endpoint(what: str):
    """The held copy in the queue folder, through the staff viewer's renderer; each series view audited."""

    @login_required
    def endpoint(request: HttpRequest, pk: int, sop: str = "", frame: int = 0) -> HttpResponse:
        item = perms.get_visible_or_404(selectors.reconciliation_list(user=request.user, outcome=""), pk=pk)

        def note(path) -> None:
            viewing.note_series_viewed(
                request.session,
                trust=item.destination,
                study_uid=item.study_instance_uid,
                path=path,
                actor=actor_from_request(request),
                what=f"held arrival {item.pk}",
            )

        return serve_folder(
            request, folder=lambda: services.queue_dir(item.pk), note_view=note, what=what, sop=sop, frame=frame
        )

    return endpoint


held_manifest = _held_endpoint("manifest")
held_image = _held_endpoint("image")
held_thumb = _held_endpoint("thumb")
held_status = _held_endpoint("status")


@login_required
def held_view(request: HttpRequest, pk: int) -> HttpResponse:
    item = perms.get_visible_or_404(selectors.reconciliation_list(user=request.user, outcome=""), pk=pk)
    base = reverse("reconciliation:view", args=[item.pk])
    context = {
        "trust": item.destination,
        "summary": {"patient_name": item.patient_name, "nhs_number": item.nhs_number},
        "state": "ready" if services.queue_dir(item.pk).is_dir() else "failed",
        "detail": "The held copy is no longer in the queue folder (it was forwarded).",
        "back_url": reverse("reconciliation:detail", args=[item.pk]),
        **viewer_context(base),
    }
    return render(request, "exchange/study_viewer.html", context)
