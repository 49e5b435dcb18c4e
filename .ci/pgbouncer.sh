#!/usr/bin/env bash
# Starts Debian's PgBouncer in transaction mode in front of the local
# PostgreSQL, as an operator would put it in front of a fleet:
#
#   bash .ci/pgbouncer.sh DATABASE [PORT]
#
# Every role PostgreSQL knows can log in through it (auth_query against
# pg_shadow, SCRAM passed through), so tests can isolate themselves with a
# role and schema each. Any database name is routed to the local server.
# Idempotent: a running PgBouncer on PORT is restarted with this setup.
set -euo pipefail

DATABASE="${1:?usage: pgbouncer.sh DATABASE [PORT]}"
PORT="${2:-6432}"
DIR=/var/lib/postgresql/pgbouncer-ci

if ! command -v pgbouncer >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
fi
# The package's own instance (where an init system started it) would hold the port.
service pgbouncer stop >/dev/null 2>&1 || true

psql_admin() { su postgres -c "psql -v ON_ERROR_STOP=1 -qtA -d '$1'" ; }

# The role PgBouncer looks passwords up as, and the lookup it may run.
psql_admin "$DATABASE" <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgbouncer_auth') THEN
    CREATE ROLE pgbouncer_auth LOGIN PASSWORD 'pgbouncer_auth';
  END IF;
END $$;
CREATE SCHEMA IF NOT EXISTS pgbouncer;
CREATE OR REPLACE FUNCTION pgbouncer.user_lookup(name text, OUT uname text, OUT phash text)
  RETURNS record LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog
  AS $$ SELECT usename::text, passwd::text FROM pg_shadow WHERE usename = name $$;
REVOKE ALL ON FUNCTION pgbouncer.user_lookup(text) FROM PUBLIC;
GRANT USAGE ON SCHEMA pgbouncer TO pgbouncer_auth;
GRANT EXECUTE ON FUNCTION pgbouncer.user_lookup(text) TO pgbouncer_auth;
SQL

mkdir -p "$DIR"
cat >"$DIR/userlist.txt" <<'EOF'
"pgbouncer_auth" "pgbouncer_auth"
EOF
cat >"$DIR/pgbouncer.ini" <<EOF
[databases]
* = host=127.0.0.1 port=5432

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PORT
unix_socket_dir =
pool_mode = transaction
auth_type = scram-sha-256
auth_file = $DIR/userlist.txt
auth_user = pgbouncer_auth
auth_query = SELECT uname, phash FROM pgbouncer.user_lookup(\$1)
max_client_conn = 2000
default_pool_size = 20
max_db_connections = 80
server_idle_timeout = 10
; At most the service's database.acquire_timeout_ms: a statement queued
; longer could start after the service answered 503.
query_wait_timeout = 1
server_lifetime = 600
logfile = $DIR/pgbouncer.log
pidfile = $DIR/pgbouncer.pid
EOF
chown -R postgres:postgres "$DIR"

if [ -f "$DIR/pgbouncer.pid" ] && kill -0 "$(cat "$DIR/pgbouncer.pid")" 2>/dev/null; then
  kill "$(cat "$DIR/pgbouncer.pid")"
  for _ in $(seq 1 50); do kill -0 "$(cat "$DIR/pgbouncer.pid" 2>/dev/null)" 2>/dev/null || break; sleep 0.1; done
fi
su postgres -c "pgbouncer -d '$DIR/pgbouncer.ini'"
for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p "$PORT" && break; sleep 0.1; done
pg_isready -h 127.0.0.1 -p "$PORT"
