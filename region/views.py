"""The region's pages: a trust's forwarding rules; migrations, their progress and their reports."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts import permissions as perms
from audit.context import actor_from_request
from directory.models import Trust
from portal.forms import add_service_errors

from . import forwarding, migration, selectors
from .forms import ForwardingRuleForm, MigrationForm
from .models import ForwardingRule, MigrationJob


@login_required
def forwarding_rules(request: HttpRequest) -> HttpResponse:
    trusts = list(Trust.objects.filter(pk__in=perms.forwarding_trust_ids(request.user)).exclude(kind=Trust.Kind.REGION))
    if not trusts:
        raise PermissionDenied("Forwarding rules are set by a trust's imaging managers.")
    form = ForwardingRuleForm(request.POST or None, trusts=trusts)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                rule = forwarding.forwarding_rule_create(
                    **form.cleaned_data, user=request.user, actor=actor_from_request(request)
                )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, f"Rule added: {rule.trust.ods_code} copies {rule.describe()}.")
                return redirect("region:forwarding")
    rules = perms.visible_forwarding_rules(request.user, ForwardingRule.objects.select_related("trust", "archive"))
    return render(request, "region/forwarding.html", {"form": form, "rules": rules}, status=status)


@login_required
@require_POST
def forwarding_rule_switch(request: HttpRequest, pk: int) -> HttpResponse:
    rules = perms.visible_forwarding_rules(request.user, ForwardingRule.objects.all())
    rule = get_object_or_404(rules, pk=pk)
    if request.POST.get("action") == "delete":
        forwarding.forwarding_rule_delete(rule=rule, user=request.user, actor=actor_from_request(request))
        messages.success(request, "Rule removed.")
    else:
        active = request.POST.get("action") == "on"
        forwarding.forwarding_rule_set_active(
            rule=rule, active=active, user=request.user, actor=actor_from_request(request)
        )
        messages.success(request, f"Rule switched {'on' if active else 'off'}.")
    return redirect("region:forwarding")


def _require_admin(request: HttpRequest) -> None:
    perms.require(perms.may_run_migrations(request.user), "Migrations are for regional administrators.")


@login_required
def migration_list(request: HttpRequest) -> HttpResponse:
    _require_admin(request)
    form = MigrationForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                job = migration.migration_create(
                    **form.cleaned_data, user=request.user, actor=actor_from_request(request)
                )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, f"Migration {job.pk} queued.")
                return redirect("region:migration", pk=job.pk)
    jobs = [
        (job, selectors.migration_progress(job))
        for job in MigrationJob.objects.select_related("source", "destination")[:50]
    ]
    return render(request, "region/migrations.html", {"form": form, "jobs": jobs}, status=status)


@login_required
def migration_detail(request: HttpRequest, pk: int) -> HttpResponse:
    _require_admin(request)
    job = get_object_or_404(MigrationJob.objects.select_related("source__trust", "destination__trust"), pk=pk)
    if request.method == "POST":
        try:
            migration.migration_change(
                job=job, change=request.POST.get("action", ""), actor=actor_from_request(request)
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        return redirect("region:migration", pk=job.pk)
    problems = job.studies.exclude(verdict__in=("", "ok")).order_by("pk")
    context = {
        "job": job,
        "progress": selectors.migration_progress(job),
        "problems": Paginator(problems, 100).get_page(request.GET.get("page")),
    }
    return render(request, "region/migration.html", context)
