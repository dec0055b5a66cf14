"""The IG officers' console over the audit store: search, reports, alerts, chain verification, exports, the
REST API and the admin of audit rows. Above accounts and directory (who may read what is a permission rule);
the store itself (`audit`) imports no other app. See docs/architecture.md."""
