"""Pages: where copies are, correcting a study sent, corrections received (acknowledge), and a receiving
trust's procedure code mapping. Thin: validate, call copies.services / copies.coercion, render."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts import permissions as perms
from audit.context import actor_from_request
from directory.models import Trust

from . import coercion, selectors, services
from .models import CorrectionDelivery, CorrectionKind, ProcedureMapping, RejectionReason


def _errors(exc: ValidationError) -> list[str]:
    if hasattr(exc, "error_dict"):
        return [m for values in exc.message_dict.values() for m in values]
    return list(exc.messages)


@login_required
def register(request: HttpRequest) -> HttpResponse:
    """Where are copies of this study (or of this patient's images)?"""
    perms.require(selectors.may_see_copies(request.user), "Imaging managers and IG officers read the register.")
    study = request.GET.get("study", "").strip()[:64]
    nhs_number = request.GET.get("nhs_number", "").replace(" ", "")[:10]
    found = None
    if study or nhs_number:
        found = services.copies_read(
            user=request.user, request=request, study_instance_uid=study, nhs_number=nhs_number
        )
    sources = {h.source for h in found or []}
    correctable = [
        code
        for code in sorted(sources)
        if perms.has_perm_at(request.user, perms.Perm.MANAGE_TRANSFERS, Trust.objects.get(ods_code=code).pk)
    ]
    context = {
        "study": study,
        "nhs_number": nhs_number,
        "holdings": found,
        "corrections": selectors.corrections_for_study(request.user, study) if study else [],
        "correctable": correctable,
    }
    return render(request, "copies/register.html", context)


@login_required
def correct(request: HttpRequest) -> HttpResponse:
    """The source's imaging manager rejects (part of) a study it sent, or corrects the patient's identity."""
    study = (request.POST.get("study") or request.GET.get("study", "")).strip()[:64]
    source = get_object_or_404(Trust, ods_code=(request.POST.get("source") or request.GET.get("source", ""))[:5])
    if not perms.has_perm_at(request.user, perms.Perm.MANAGE_TRANSFERS, source.pk):
        raise PermissionDenied(f"Only imaging managers of {source.ods_code} correct studies it sent.")
    errors: list[str] = []
    if request.method == "POST":
        kind = request.POST.get("kind", "")
        corrected = {
            name: request.POST.get(name, "") for name in services.IDENTITY_FIELDS if request.POST.get(name, "").strip()
        }
        try:
            correction = services.correction_create(
                user=request.user,
                source=source,
                study_instance_uid=study,
                kind=kind,
                reason=request.POST.get("reason", ""),
                comment=request.POST.get("comment", ""),
                series_instance_uids=request.POST.get("series", "").split(),
                sop_instance_uids=request.POST.get("instances", "").split(),
                corrected=corrected if kind == CorrectionKind.IDENTITY else None,
                actor=actor_from_request(request),
            )
        except ValidationError as exc:
            errors = _errors(exc)
        else:
            holders = ", ".join(d.holder.ods_code for d in correction.deliveries.all())
            messages.success(request, f"Correction {correction.pk} is on its way to {holders}.")
            return redirect(reverse("copies:register") + f"?study={study}")
    context = {
        "study": study,
        "source": source,
        "holdings": selectors.holdings(request.user, study_instance_uid=study),
        "reasons": RejectionReason.choices,
        "kinds": CorrectionKind.choices,
        "errors": errors,
        "posted": request.POST,
    }
    return render(request, "copies/correct.html", context, status=400 if errors else 200)


@login_required
def corrections(request: HttpRequest) -> HttpResponse:
    """Corrections received by the user's trusts (to acknowledge) and those their trusts sent."""
    context = {
        "received": selectors.received_deliveries(request.user)[:200],
        "sent": selectors.visible_corrections(request.user).filter(
            source_id__in=perms.member_trust_ids(request.user, perms.Perm.MANAGE_TRANSFERS)
        )[:200],
    }
    return render(request, "copies/corrections.html", context)


@login_required
@require_POST
def acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = get_object_or_404(selectors.received_deliveries(request.user), pk=pk)
    services.correction_acknowledge(user=request.user, delivery=delivery, actor=actor_from_request(request))
    messages.success(request, f"Correction {delivery.correction_id} acknowledged for {delivery.holder.ods_code}.")
    return redirect(request.POST.get("next") if request.POST.get("next", "").startswith("/") else "copies:corrections")


@login_required
@require_POST
def resend(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = get_object_or_404(CorrectionDelivery, pk=pk)
    try:
        services.correction_resend(user=request.user, delivery=delivery)
    except ValidationError as exc:
        messages.error(request, " ".join(_errors(exc)))
    return redirect("copies:corrections")


def _managed(request: HttpRequest, ods_code: str) -> Trust:
    trust = get_object_or_404(Trust, ods_code=ods_code)
    if not perms.has_perm_at(request.user, perms.Perm.CHANGE_RECONCILIATION_SETTINGS, trust.pk):
        raise PermissionDenied(f"Only imaging managers of {trust.ods_code} manage its procedure code mapping.")
    return trust


@login_required
def mapping(request: HttpRequest, ods_code: str) -> HttpResponse:
    """The trust's procedure code mapping: upload a CSV (all or nothing), add, edit or delete a row, and the
    arrivals no row mapped."""
    trust = _managed(request, ods_code)
    errors: list[str] = []
    if request.method == "POST":
        try:
            if "file" in request.FILES:
                count = coercion.mappings_upload(
                    user=request.user, trust=trust, data=request.FILES["file"].read(coercion.MAX_UPLOAD + 1)
                )
                messages.success(request, f"The mapping table now has {count} rows.")
            else:
                edited = None
                if request.POST.get("id"):
                    edited = get_object_or_404(ProcedureMapping, trust=trust, pk=request.POST["id"])
                coercion.mapping_save(user=request.user, trust=trust, values=request.POST.dict(), mapping=edited)
                messages.success(request, "Mapping saved.")
            return redirect("copies:mapping", ods_code=trust.ods_code)
        except ValidationError as exc:
            errors = _errors(exc)
    if request.GET.get("format") == "csv":
        response = HttpResponse(coercion.mappings_csv(trust), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="procedure-mapping-{trust.ods_code}.csv"'
        return response
    editing = None
    if request.GET.get("edit"):
        editing = ProcedureMapping.objects.filter(trust=trust, pk=request.GET["edit"]).first()
    context = {
        "trust": trust,
        "rows": selectors.mapping_rows(trust.pk),
        "unmapped": selectors.unmapped(trust.pk),
        "errors": errors,
        "editing": editing,
        "posted": request.POST,
    }
    return render(request, "copies/mapping.html", context, status=400 if errors else 200)


@login_required
@require_POST
def mapping_delete(request: HttpRequest, ods_code: str, pk: int) -> HttpResponse:
    trust = _managed(request, ods_code)
    coercion.mapping_delete(user=request.user, mapping=get_object_or_404(ProcedureMapping, trust=trust, pk=pk))
    messages.success(request, "Mapping row deleted.")
    return redirect("copies:mapping", ods_code=trust.ods_code)
