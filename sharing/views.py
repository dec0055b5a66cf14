"""Staff pages for share links: create, list, the link's page (progress, accesses, opinions), revoke."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts import permissions as perms
from audit.context import actor_from_request
from directory.models import Trust
from exchange.views import patient_studies
from portal.forms import add_service_errors

from . import selectors, services, writeback
from .forms import ShareLinkForm
from .models import ShareLink


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    return response


@login_required
def share_link_new(request: HttpRequest, ods_code: str) -> HttpResponse:
    """Three steps, as a push: the studies of one patient (ticked among theirs), the consultant and the
    question; a confirmation naming the patient and the consultant (`step=review`); `step=send` creates
    the link and redirects to the page that shows its URL once (so a reload never makes a second link)."""
    trust = perms.get_visible_or_404(
        Trust.objects.filter(pk__in=perms.member_trust_ids(request.user)), ods_code=ods_code
    )
    perms.require(
        perms.may_create_share_link(request.user, trust.pk), f"Only clinicians of {trust.ods_code} may share."
    )
    step = request.POST.get("step", "send" if request.method == "POST" else "")
    asked = request.POST.getlist("study_instance_uids") if request.method == "POST" else request.GET.getlist("study")
    asked = [u for u in asked if u]
    studies, lookup_error = patient_studies(request, trust, asked, "share") if asked else ([], "")
    form = ShareLinkForm(request.POST or None, trust=trust, studies=studies, initial={"study_instance_uids": asked})
    status = 200
    context = {"form": form, "trust": trust, "studies": studies, "lookup_error": lookup_error}
    if request.method == "POST":
        status = 400
        if form.is_valid():
            chosen = [s for s in studies if s["study_instance_uid"] in form.cleaned_data["study_instance_uids"]]
            context.update(chosen=chosen, patients=_patients(chosen))
            if step == "review":
                return render(request, "sharing/confirm.html", context)
            try:
                link, url = services.share_link_create(
                    trust=trust,
                    created_by=request.user,
                    actor=actor_from_request(request),
                    studies=chosen,
                    **form.cleaned_data,
                )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                request.session[f"share_link_url:{link.pk}"] = url
                return redirect("sharing:created", pk=link.pk)
    context["patients"] = _patients([s for s in studies if s["study_instance_uid"] in asked])
    return render(request, "sharing/new.html", context, status=status)


def _patients(studies: list[dict]) -> list[dict]:
    seen: dict[str, dict] = {}
    for study in studies:
        if "patient_name" in study:
            seen.setdefault(study.get("nhs_number") or study.get("patient_id") or study["patient_name"], study)
    return list(seen.values())


@login_required
def share_link_created(request: HttpRequest, pk: int) -> HttpResponse:
    """The link's URL, shown this once: it leaves the session as it is shown, and the page is never cached."""
    link = perms.get_visible_or_404(selectors.share_link_list(user=request.user), pk=pk)
    url = request.session.pop(f"share_link_url:{link.pk}", "")
    return _no_store(render(request, "sharing/created.html", {"link": link, "url": url}))


@login_required
def share_link_list(request: HttpRequest) -> HttpResponse:
    context = {
        "links": selectors.share_link_list(user=request.user)[:200],
        "may_share_at": Trust.objects.filter(pk__in=perms.member_trust_ids(request.user, perms.Perm.PUSH_STUDIES)),
    }
    return render(request, "sharing/list.html", context)


@login_required
def share_link_detail(request: HttpRequest, pk: int) -> HttpResponse:
    link = perms.get_visible_or_404(selectors.share_link_list(user=request.user), pk=pk)
    context = {
        "link": link,
        "accesses": selectors.share_link_access_rows(link),
        "patients": _patients(link.studies),
        "opinions": link.opinions.all(),
        "write_backs": link.write_backs.all(),
        "may_revoke": perms.may_manage_share_link(request.user, link) and not link.revoked_at,
        "refresh": link.state == "staging",
    }
    return _no_store(render(request, "sharing/detail.html", context))


@login_required
@require_POST
def share_link_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    link: ShareLink = perms.get_visible_or_404(selectors.share_link_list(user=request.user), pk=pk)
    services.share_link_revoke(link=link, user=request.user, actor=actor_from_request(request))
    messages.success(request, "The link is revoked; its staged copy is deleted.")
    return redirect("sharing:detail", pk=link.pk)


@login_required
@require_POST
def write_back_file(request: HttpRequest, pk: int, write_back_id: int) -> HttpResponse:
    """File an object the consultant's viewer sent back into the source PACS: the reviewer's one action."""
    link: ShareLink = perms.get_visible_or_404(selectors.share_link_list(user=request.user), pk=pk)
    row = perms.get_visible_or_404(link.write_backs.all(), pk=write_back_id)
    writeback.writeback_approve(write_back=row, user=request.user, actor=actor_from_request(request))
    messages.success(request, f"Filing it into {link.gateway.name}; this page shows when it is done.")
    return redirect("sharing:detail", pk=link.pk)
