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
from portal.forms import add_service_errors

from . import selectors, services, writeback
from .forms import ShareLinkForm
from .models import ShareLink


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    return response


@login_required
def share_link_new(request: HttpRequest, ods_code: str) -> HttpResponse:
    trust = perms.get_visible_or_404(
        Trust.objects.filter(pk__in=perms.member_trust_ids(request.user)), ods_code=ods_code
    )
    perms.require(
        perms.may_create_share_link(request.user, trust.pk), f"Only clinicians of {trust.ods_code} may share."
    )
    initial = {"study_instance_uids": "\n".join(request.GET.getlist("study"))}
    form = ShareLinkForm(request.POST or None, trust=trust, initial=initial)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                link, url = services.share_link_create(
                    trust=trust, created_by=request.user, actor=actor_from_request(request), **form.cleaned_data
                )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                # The URL is shown this once (it holds the token); the page is never cached.
                return _no_store(render(request, "sharing/created.html", {"link": link, "url": url}))
    return render(request, "sharing/new.html", {"form": form, "trust": trust}, status=status)


@login_required
def share_link_list(request: HttpRequest) -> HttpResponse:
    return render(request, "sharing/list.html", {"links": selectors.share_link_list(user=request.user)[:200]})


@login_required
def share_link_detail(request: HttpRequest, pk: int) -> HttpResponse:
    link = perms.get_visible_or_404(selectors.share_link_list(user=request.user), pk=pk)
    context = {
        "link": link,
        "accesses": selectors.share_link_accesses(link),
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
