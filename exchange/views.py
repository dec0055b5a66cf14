"""Study search pages and the "Echo now" button: validate, check permission, call a service, render."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts import permissions as perms
from accounts.permissions import Perm
from audit.context import actor_from_request
from directory.access import GatewayBusy
from directory.models import Gateway, Trust

from . import services
from .apis import BUSY_RETRY_AFTER, trust_for_study_search
from .forms import CRITERIA, StudySearchForm
from .models import QuarantinedInstance, ReceivedInstance


@login_required
def study_search_home(request: HttpRequest) -> HttpResponse:
    """Straight to the search page of the user's trust, or a choice when they search at several."""
    trusts = Trust.objects.filter(pk__in=perms.study_search_trust_ids(request.user)).order_by("name")
    if len(trusts) == 1:
        return redirect("exchange:study_search", ods_code=trusts[0].ods_code)
    return render(request, "exchange/study_search_home.html", {"trusts": trusts})


@login_required
def study_search(request: HttpRequest, ods_code: str) -> HttpResponse:
    trust = trust_for_study_search(request.user, ods_code)
    submitted = any(request.GET.get(name) for name in CRITERIA) or "search" in request.GET
    form = StudySearchForm(_as_typed(request.GET) if submitted else None)
    context: dict = {"trust": trust, "form": form, "rows": None, "error": ""}
    status = 200
    if submitted and form.is_valid():
        try:
            context["rows"] = services.study_search(
                trust=trust, criteria=form.cleaned_data, actor=actor_from_request(request)
            )
        except services.GatewayUnavailable as exc:
            context["error"], context["busy"], status = str(exc), exc.busy, 503
    elif submitted:
        status = 400
    context["back_query"] = urlencode({"q": _search_query(request.GET)})
    context["demo_patients"] = demo_patients_for(trust)
    return _busy_aware(render(request, "exchange/study_search.html", context, status=status), context)


_DATE_PARTS = [f"{n}_{p}" for n in ("birth_date", "study_date_from", "study_date_to") for p in ("day", "month", "year")]
_SEARCH_KEYS = (*CRITERIA, "family_name", "given_name", "search", *_DATE_PARTS)


def _as_typed(params: QueryDict) -> QueryDict:
    """A DICOM `patient_name=Family^Given` (a link, a bookmark, the API's spelling) shown in the family and
    given name boxes, so that what the user then types there is what is searched for."""
    name = params.get("patient_name", "")
    if not name or params.get("family_name") or params.get("given_name"):
        return params
    data = params.copy()
    family, _, given = name.partition("^")
    data.setlist("family_name", [family])
    data.setlist("given_name", [given.split("^")[0]])
    del data["patient_name"]
    return data


def _search_query(params) -> str:
    """The search's own parameters only, re-encoded: the study page's back link returns to the results."""
    return urlencode([(k, v) for k in _SEARCH_KEYS for v in params.getlist(k)[:1] if v])


def demo_patients_for(trust: Trust) -> list[dict]:
    """In the demo (DEBUG), the synthetic patients this trust's PACS holds, so a newcomer has one to search."""
    if not settings.DEBUG:
        return []
    from .demo import demo_patients_at

    return demo_patients_at(trust.ods_code)


@login_required
def study_detail(request: HttpRequest, ods_code: str, study_uid: str) -> HttpResponse:
    trust = trust_for_study_search(request.user, ods_code)
    context: dict = {"trust": trust, "row": None, "series": [], "error": ""}
    context["search_query"] = _search_query(QueryDict(request.GET.get("q", "")))
    try:
        context["row"], context["series"] = services.study_detail(
            trust=trust, study_uid=study_uid, actor=actor_from_request(request)
        )
        context["summary"] = context["row"].summary()
    except services.StudyNotFound as exc:
        raise Http404("No such study in this trust's PACS.") from exc
    except services.GatewayUnavailable as exc:
        context["error"], context["busy"] = str(exc), exc.busy
        return _busy_aware(render(request, "exchange/study_detail.html", context, status=503), context)
    return render(request, "exchange/study_detail.html", context)


def _busy_aware(response: HttpResponse, context: dict) -> HttpResponse:
    """A PACS that was not asked because it is busy: tell browsers and clients when to try again."""
    if context.get("busy"):
        response["Retry-After"] = str(BUSY_RETRY_AFTER)
    return response


@login_required
@require_POST
def gateway_echo(request: HttpRequest, pk: int) -> HttpResponse:
    gateway = perms.get_visible_or_404(
        perms.visible_gateways(request.user, Gateway.objects.select_related("trust")), pk=pk
    )
    perms.require(perms.has_perm_at(request.user, Perm.CHANGE_GATEWAY, gateway.trust_id))
    try:
        result = services.gateway_echo(gateway=gateway)
    except GatewayBusy as exc:
        messages.warning(request, f"Not echoed: {exc}")
        return redirect("directory:trust_detail", ods_code=gateway.trust.ods_code)
    if result.ok:
        messages.success(request, f"{gateway.name} answered in {result.latency_ms:.0f} ms.")
    else:
        messages.error(request, f"{gateway.name} did not answer: {result.error}")
    return redirect("directory:trust_detail", ods_code=gateway.trust.ods_code)


@login_required
def receiver_activity(request: HttpRequest) -> HttpResponse:
    """What the portal's DICOM receiver took in and refused from the user's trusts' gateways."""
    perms.require(perms.may_view_receiver(request.user), "Imaging managers and regional administrators only.")
    quarantined = perms.visible_receiver_records(
        request.user, QuarantinedInstance.objects.select_related("sender_trust")
    )
    received = perms.visible_receiver_records(request.user, ReceivedInstance.objects.select_related("sender_trust"))
    context = {"quarantined": quarantined[:100], "received": received[:100]}
    return render(request, "exchange/receiver_activity.html", context)


def chosen_studies(request: HttpRequest, trust: Trust, uids: list[str], purpose: str) -> tuple[list[dict], str]:
    """What the trust's PACS says the chosen studies are (patient, date, description), looked up once per
    browser session and choice; with the reason when the PACS could not be asked."""
    key = f"study_summaries:{trust.ods_code}"
    cached = request.session.get(key, {})
    if uids and all(uid in cached for uid in uids):
        return [cached[uid] for uid in uids], ""
    try:
        found = services.study_summaries(
            trust=trust, study_uids=uids, actor=actor_from_request(request), purpose=purpose
        )
    except services.GatewayUnavailable as exc:
        return [{"study_instance_uid": uid} for uid in uids], str(exc)
    request.session[key] = {**cached, **{s["study_instance_uid"]: s for s in found if "patient_name" in s}}
    return found, ""


def patient_studies(request: HttpRequest, trust: Trust, uids: list[str], purpose: str) -> tuple[list[dict], str]:
    """The chosen studies first, then the same patient's other studies at the trust (by NHS number)."""
    chosen, error = chosen_studies(request, trust, uids, purpose)
    numbers = {s.get("nhs_number") for s in chosen if s.get("nhs_number")}
    if error or len(numbers) != 1:
        return chosen, error
    try:
        rows = services.study_search(
            trust=trust, criteria={"nhs_number": next(iter(numbers))}, actor=actor_from_request(request)
        )
    except services.GatewayUnavailable as exc:
        return chosen, str(exc)
    known = {s["study_instance_uid"] for s in chosen}
    return chosen + [r.summary() for r in rows if r.study.study_instance_uid not in known], ""
