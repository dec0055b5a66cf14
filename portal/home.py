"""The home page: what waits for the signed-in member of staff (portal.worklist), by role."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .worklist import worklist


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html", {"boxes": worklist(request.user)})
