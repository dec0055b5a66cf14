"""A JSON list of strings that can be asked "do you contain X?" on PostgreSQL and SQLite alike.

Django's `__contains` on a JSONField is PostgreSQL-only; `__has_element` works on both. On PostgreSQL it is
`@>`, which a GIN index on the column answers (audit/migrations/0004 adds one for study UIDs).
"""

from __future__ import annotations

import json

from django.db import models
from django.db.models import Lookup


class StringListField(models.JSONField):
    """A list of strings, stored as JSON (jsonb on PostgreSQL)."""


@StringListField.register_lookup
class HasElement(Lookup):
    lookup_name = "has_element"
    prepare_rhs = False

    def get_db_prep_lookup(self, value, connection):
        return ("%s", [str(value)])

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return (
            f"EXISTS (SELECT 1 FROM json_each({lhs}) AS elements WHERE elements.value = %s)",  # noqa: S608 (lhs is a column)
            [*lhs_params, str(self.rhs)],
        )

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} @> %s::jsonb", [*lhs_params, json.dumps([str(self.rhs)])]
