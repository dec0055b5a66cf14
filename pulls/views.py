"""Request pages: the request form, the list (outgoing and the approval inbox), the detail page with
candidates and mismatch flags, approve and decline. Validate, check, call a service, render."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts import permissions as perms
from audit.context import actor_from_request
from directory.models import Trust
from portal.forms import add_service_errors

from . import selectors, services
from .forms import DeclineForm, RequestForm
from .models import RequestStatus
from .progress import request_stage

DIRECTIONS = ("", "outgoing", "incoming")


def _requesting_trusts(user) -> list[Trust]:
    return list(Trust.objects.filter(pk__in=perms.member_trust_ids(user, perms.Perm.REQUEST_STUDIES)).order_by("name"))


@login_required
def request_new(request: HttpRequest) -> HttpResponse:
    trusts = _requesting_trusts(request.user)
    if not trusts:
        raise PermissionDenied("Only clinicians may request images from another trust.")
    requesting = next((t for t in trusts if t.ods_code == request.GET.get("as", request.POST.get("as"))), trusts[0])
    form = RequestForm(request.POST or None, requesting=requesting)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = dict(form.cleaned_data)
            try:
                pull = services.request_create(
                    requesting_trust=requesting,
                    source_trust=data.pop("source_trust"),
                    requested_by=request.user,
                    actor=actor_from_request(request),
                    **data,
                )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, f"Request {pull.pk} sent to {pull.source_trust.name}.")
                return redirect("pulls:detail", pk=pull.pk)
    context = {"form": form, "requesting": requesting, "trusts": trusts}
    return render(request, "pulls/new.html", context, status=status)


@login_required
def request_list(request: HttpRequest) -> HttpResponse:
    direction = request.GET.get("direction", "")
    direction = direction if direction in DIRECTIONS else ""
    status = request.GET.get("status", "")
    status = status if status in RequestStatus.values else ""
    pulls = selectors.request_list(user=request.user, direction=direction, status=status)
    page = Paginator(pulls, 50).get_page(request.GET.get("page"))
    for pull in page:
        pull.stage = request_stage(pull)
    context = {
        "page": page,
        "direction": direction,
        "status": status,
        "statuses": RequestStatus.choices,
        "may_request": bool(_requesting_trusts(request.user)),
    }
    return render(request, "pulls/list.html", context)


@login_required
def request_detail(request: HttpRequest, pk: int) -> HttpResponse:
    pull = perms.get_visible_or_404(selectors.request_list(user=request.user), pk=pk)
    may_decide = pull.status == RequestStatus.PENDING and perms.may_approve_requests_at(
        request.user, pull.source_trust_id
    )
    may_search_again = pull.status == RequestStatus.PENDING and perms.may_search_request_again(request.user, pull)
    context = {
        "pull": pull,
        "stage": request_stage(pull),
        "patient": {
            "patient_name": f"{pull.family_name}^{pull.given_name}",
            "nhs_number": pull.nhs_number,
            "birth_date": pull.birth_date,
            "sex": pull.sex,
        },
        "may_decide": may_decide,
        "may_search_again": may_search_again,
        "may_view_source": perms.may_search_studies(request.user, pull.source_trust_id),
        "decline_form": DeclineForm(),
    }
    return render(request, "pulls/detail.html", context)


@login_required
@require_POST
def request_approve(request: HttpRequest, pk: int) -> HttpResponse:
    pull = perms.get_visible_or_404(selectors.request_list(user=request.user), pk=pk)
    uids = request.POST.getlist("study_instance_uids")
    if not uids:
        messages.error(request, "Choose at least one study to send, or decline the request.")
        return redirect("pulls:detail", pk=pk)
    return _decide(request, pull, services.request_approve, "approved", study_instance_uids=uids)


@login_required
@require_POST
def request_decline(request: HttpRequest, pk: int) -> HttpResponse:
    pull = perms.get_visible_or_404(selectors.request_list(user=request.user), pk=pk)
    form = DeclineForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say why the request is declined.")
        return redirect("pulls:detail", pk=pk)
    return _decide(request, pull, services.request_decline, "declined", reason=form.cleaned_data["reason"])


@login_required
@require_POST
def request_search_again(request: HttpRequest, pk: int) -> HttpResponse:
    pull = perms.get_visible_or_404(selectors.request_list(user=request.user), pk=pk)
    return _decide(request, pull, services.request_search_again, "searched again")


def _decide(request: HttpRequest, pull, service, done: str, **kwargs) -> HttpResponse:
    try:
        service(request=pull, user=request.user, actor=actor_from_request(request), **kwargs)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Request {pull.pk} {done}.")
    return redirect("pulls:detail", pk=pull.pk)
