"""`manage.py migrate`, as the tables' owner when MIGRATION_DATABASE_URL is set (audit/dbroles.py).

Django's own command, connected as the owner for the whole run (schema changes, data migrations and
post-migrate handlers alike); afterwards the portal's role (DATABASE_URL's) is granted what it needs and
no more on the audit tables. Without MIGRATION_DATABASE_URL it is Django's command, plus the audit
tables' privileges put back to that policy for any other role.
"""

from django.conf import settings
from django.core.management.commands import migrate
from django.db import DEFAULT_DB_ALIAS, connections

from audit.dbroles import connected_as, grant_app_role, restrict_audit_tables


class Command(migrate.Command):
    def handle(self, *args: object, **options) -> None:
        connection = connections[options["database"]]
        if connection.vendor != "postgresql":
            return super().handle(*args, **options)
        owner = settings.MIGRATION_DATABASE if options["database"] == DEFAULT_DB_ALIAS else None
        if owner is None:
            super().handle(*args, **options)
            with connection.cursor() as cursor:
                restrict_audit_tables(cursor)
            return None
        app_role = connection.settings_dict["USER"]
        with connected_as(connection, owner):
            super().handle(*args, **options)
            with connection.cursor() as cursor:
                grant_app_role(cursor, app_role)
        if options["verbosity"]:
            self.stdout.write(
                f"Migrated as {owner['USER']}; {app_role} may read and append to the audit trail, not rewrite it."
            )
        return None
