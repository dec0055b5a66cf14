"""The regional image exchange portal project package; exposes the Celery app as `portal`."""

from .celery import app as celery_app

__all__ = ("celery_app",)
