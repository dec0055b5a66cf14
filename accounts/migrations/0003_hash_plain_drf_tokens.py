"""Move DRF's plain-text tokens (rest_framework.authtoken, no longer installed) into hashed, expiring
ApiTokens and delete the plain keys.

Clients keep working with the key they have: only its SHA-256 is kept, under the same audit fingerprint.
Each migrated token expires MIGRATED_TOKEN_DAYS after this migration, so its owner makes a new one
(with a name and an expiry of their choosing) within a month. A migrated token of a user with no second
factor is refused at its next use, like any other.
"""

import hashlib
from datetime import timedelta

from django.db import migrations
from django.utils import timezone

MIGRATED_TOKEN_DAYS = 30
PLAIN_TABLE = "authtoken_token"


def hash_plain_tokens(apps, schema_editor):
    connection = schema_editor.connection
    if PLAIN_TABLE not in connection.introspection.table_names():
        return
    ApiToken = apps.get_model("accounts", "ApiToken")
    expires = timezone.now() + timedelta(days=MIGRATED_TOKEN_DAYS)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key, user_id, created FROM {PLAIN_TABLE}")  # noqa: S608 - a constant
        rows = cursor.fetchall()
        for key, user_id, created in rows:
            ApiToken.objects.create(
                user_id=user_id,
                name="API token made before tokens were hashed",
                prefix=key[:8],
                digest=hashlib.sha256(key.encode()).hexdigest(),
                created_at=created,
                expires_at=expires,
            )
        cursor.execute(f"DELETE FROM {PLAIN_TABLE}")  # noqa: S608 - a constant


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_service_accounts_and_hashed_api_tokens")]

    operations = [migrations.RunPython(hash_plain_tokens, migrations.RunPython.noop)]
