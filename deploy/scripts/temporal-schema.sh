#!/bin/sh
# One-shot (service temporal-schema, image temporalio/admin-tools): creates or upgrades Temporal's
# schema in PostgreSQL. Safe to run again: setup-schema keeps an existing schema and
# update-schema applies only the versions not yet applied. The databases themselves are created by
# PostgreSQL at its first start (POSTGRES_DB and deploy/postgres/initdb/).
#
# Needs: POSTGRES_SEEDS, DB_PORT, POSTGRES_USER, SQL_PASSWORD (secret-env.sh reads it from a file).
set -eu
: "${POSTGRES_SEEDS:?}" "${DB_PORT:?}" "${POSTGRES_USER:?}" "${SQL_PASSWORD:?}"
DBNAME=${DBNAME:-temporal}
VISIBILITY_DBNAME=${VISIBILITY_DBNAME:-temporal_visibility}
SCHEMA=/etc/temporal/schema/postgresql/v12

sql_tool() {
    temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$DB_PORT" -u "$POSTGRES_USER" "$@"
}

for db in "$DBNAME:temporal" "$VISIBILITY_DBNAME:visibility"; do
    name=${db%%:*}
    schema=${db#*:}
    echo "temporal-schema: database $name ($schema schema)"
    sql_tool --db "$name" setup-schema -v 0.0
    sql_tool --db "$name" update-schema -d "$SCHEMA/$schema/versioned"
done
echo "temporal-schema: done"
