"""PostgreSQL only: a GIN index for "which events name this Study Instance UID?", and the exported
digests made append-only like the events. Everywhere: the chain head row exists from the start, so
the first two writers never race to create it.
"""

from django.db import migrations

FORWARD = """
CREATE INDEX IF NOT EXISTS audit_study_uids_gin ON audit_auditevent USING gin (study_uids jsonb_path_ops);
CREATE TRIGGER audit_digest_no_update_delete
  BEFORE UPDATE OR DELETE ON audit_chaindigest
  FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS audit_digest_no_update_delete ON audit_chaindigest;
DROP INDEX IF EXISTS audit_study_uids_gin;
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)
    apps.get_model("audit", "ChainHead").objects.get_or_create(pk=1)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_events_scope_indexes_alerts_digests")]
    operations = [migrations.RunPython(forward, backward)]
