"""PostgreSQL only: the audit tables refuse TRUNCATE, and the chain moves only by appending.

Row triggers (0002, 0004) never fire for TRUNCATE, so a statement trigger refuses it on the events,
the digests and the chain head. The head itself may only step forward by one, onto the event just
appended after it, and an event may only be inserted right after the head: the append path
(audit.services.record_event) is the one way the chain grows. A table owner or superuser can still
switch triggers off; the digest files written outside the database (audit.anchors) catch what they do.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION audit_refuse_truncate() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'the audit trail cannot be truncated: TRUNCATE % refused', TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_auditevent
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_truncate();
CREATE TRIGGER audit_digest_no_truncate BEFORE TRUNCATE ON audit_chaindigest
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_truncate();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_chainhead
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_truncate();

CREATE OR REPLACE FUNCTION audit_event_follows_head() RETURNS trigger AS $$
DECLARE
  head_seq bigint;
  head_hash varchar;
BEGIN
  SELECT seq, hash INTO head_seq, head_hash FROM audit_chainhead WHERE id = 1;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'audit events are appended after the chain head, and there is none';
  END IF;
  IF NEW.seq <> head_seq + 1 OR NEW.prev_hash <> head_hash THEN
    RAISE EXCEPTION 'audit events are appended after the chain head (#%): event #% refused', head_seq, NEW.seq;
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_event_append_at_head BEFORE INSERT ON audit_auditevent
  FOR EACH ROW EXECUTE FUNCTION audit_event_follows_head();

CREATE OR REPLACE FUNCTION audit_head_moves_by_append() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'the audit chain head cannot be deleted';
  END IF;
  IF TG_OP = 'INSERT' THEN
    -- Two first writers race to create the head: the loser's insert must fail on the primary key
    -- (which record_event expects), whether or not the winner has committed its first event. One
    -- expression, so one snapshot: the winner's head and first event are seen together or not at all.
    IF NEW.id = 1 AND (
         EXISTS (SELECT 1 FROM audit_chainhead WHERE id = 1)
         OR (NEW.seq = 0 AND NEW.hash = repeat('0', 64) AND NOT EXISTS (SELECT 1 FROM audit_auditevent))) THEN
      RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the audit chain head starts once, at the genesis, before any event';
  END IF;
  IF NEW.id = OLD.id AND NEW.seq = OLD.seq + 1 AND EXISTS (
       SELECT 1 FROM audit_auditevent WHERE seq = NEW.seq AND hash = NEW.hash AND prev_hash = OLD.hash) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'the audit chain head moves only onto the event appended after it: #% to #% refused',
    OLD.seq, NEW.seq;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_head_guard BEFORE INSERT OR UPDATE OR DELETE ON audit_chainhead
  FOR EACH ROW EXECUTE FUNCTION audit_head_moves_by_append();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS audit_head_guard ON audit_chainhead;
DROP FUNCTION IF EXISTS audit_head_moves_by_append();
DROP TRIGGER IF EXISTS audit_event_append_at_head ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_event_follows_head();
DROP TRIGGER IF EXISTS audit_head_no_truncate ON audit_chainhead;
DROP TRIGGER IF EXISTS audit_digest_no_truncate ON audit_chaindigest;
DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_refuse_truncate();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_postgres_study_index_digest_guard")]
    operations = [migrations.RunPython(forward, backward)]
