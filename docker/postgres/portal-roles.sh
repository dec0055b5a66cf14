#!/bin/sh
# The portal's two database roles, made once by the postgres image on an empty data directory
# (mounted at /docker-entrypoint-initdb.d; for an existing database run it by hand, see docs/audit.md).
#
#   PORTAL_DB_OWNER (portal_owner)  owns the database and every table: `manage.py migrate` connects as
#                                   it through MIGRATION_DATABASE_URL, and nothing else does.
#   PORTAL_DB_APP (portal_app)      what web, worker, beat and receiver connect as (DATABASE_URL). After
#                                   each migrate it holds SELECT, INSERT, UPDATE, DELETE on the working
#                                   tables and only SELECT, INSERT on the audit trail (audit/dbroles.py):
#                                   it cannot rewrite, delete, truncate or alter audit events.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v db="$POSTGRES_DB" \
  -v owner="${PORTAL_DB_OWNER:-portal_owner}" -v owner_password="$PORTAL_DB_OWNER_PASSWORD" \
  -v app="${PORTAL_DB_APP:-portal_app}" -v app_password="$PORTAL_DB_APP_PASSWORD" <<'SQL'
CREATE ROLE :"owner" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'owner_password';
CREATE ROLE :"app" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD :'app_password';
ALTER DATABASE :"db" OWNER TO :"owner";
ALTER SCHEMA public OWNER TO :"owner";
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO :"app";
SQL
