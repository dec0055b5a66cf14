"""The operations view's banner when background work has stopped (portal.liveness):

{% load process_health %}
{% process_health_banner %}
"""

from __future__ import annotations

from django import template
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from portal.liveness import process_health

register = template.Library()


@register.simple_tag
def process_health_banner() -> SafeString:
    """A warning callout naming queues no worker consumes and a beat that has stopped; nothing when all run."""
    health = process_health()
    if not (health.problems or health.warnings):
        return SafeString("")
    return SafeString(render_to_string("includes/process_health_banner.html", {"health": health}))
