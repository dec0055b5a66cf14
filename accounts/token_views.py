"""Pages for API tokens: everyone's own, and regional administrators' service accounts and their tokens.

A new token's key is shown on the page that answers its creation, once; only its hash is kept.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from audit.context import actor_from_request

from . import permissions as perms
from . import tokens
from .forms import ServiceAccountForm, TokenForm
from .models import ApiToken, User


def _tokens_page(request: HttpRequest, form: TokenForm, created: tuple[ApiToken, str] | None = None) -> HttpResponse:
    context = {
        "tokens": tokens.visible_tokens(request.user),
        "form": form,
        "created": created,
        "may_hold_token": tokens.may_hold_token(request.user),
        "is_regional_admin": perms.is_regional_admin(request.user),
    }
    return render(request, "accounts/tokens.html", context)


@login_required
def token_list(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _tokens_page(request, TokenForm())
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _tokens_page(request, form)
    try:
        created = tokens.api_token_create(
            user=request.user, created_by=request.user, actor=actor_from_request(request), **form.cleaned_data
        )
    except ValidationError as exc:
        form.add_error(None, exc.messages)
        return _tokens_page(request, form)
    return _tokens_page(request, TokenForm(), created)


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(tokens.visible_tokens(request.user), pk=pk)
    perms.require(tokens.may_revoke(request.user, token))
    tokens.api_token_revoke(token=token, revoked_by=request.user, actor=actor_from_request(request))
    messages.success(request, f"Token “{token.name}” ({token.prefix}…) is revoked: it no longer works.")
    return redirect("accounts:tokens")


def _service_accounts_page(request: HttpRequest, form: ServiceAccountForm, **extra: object) -> HttpResponse:
    accounts = User.objects.filter(is_service_account=True).prefetch_related("memberships__trust", "api_tokens")
    context = {"accounts": accounts.order_by("email"), "form": form, "token_form": TokenForm(), **extra}
    return render(request, "accounts/service_accounts.html", context)


@login_required
def service_account_list(request: HttpRequest) -> HttpResponse:
    perms.require(perms.is_regional_admin(request.user), "Only regional administrators manage service accounts.")
    if request.method != "POST":
        return _service_accounts_page(request, ServiceAccountForm())
    form = ServiceAccountForm(request.POST)
    if form.is_valid():
        try:
            account = tokens.service_account_create(actor=actor_from_request(request), **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc.messages)
        else:
            messages.success(request, f"Service account {account.email} created: now make it a token.")
            return redirect("accounts:service_accounts")
    return _service_accounts_page(request, form)


@login_required
@require_POST
def service_account_token(request: HttpRequest, pk: int) -> HttpResponse:
    perms.require(perms.is_regional_admin(request.user), "Only regional administrators manage service accounts.")
    account = get_object_or_404(User, pk=pk, is_service_account=True)
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _service_accounts_page(request, ServiceAccountForm(), token_form=form)
    try:
        created = tokens.api_token_create(
            user=account, created_by=request.user, actor=actor_from_request(request), **form.cleaned_data
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("accounts:service_accounts")
    return _service_accounts_page(request, ServiceAccountForm(), created=created)
