#!/bin/sh
# One-shot (service db-password, postgres image, as root): makes the PostgreSQL password once, in
# the db-secret volume, so that no password is written in docker-compose.yml or kept on the host.
# Readable by postgres (uid 999, the owner) and by the Temporal images (gid 1000) only.
set -eu
file=${DB_PASSWORD_FILE:-/run/db/postgres-password}
if [ ! -s "$file" ]; then
    umask 077
    tr -dc 'A-Za-z0-9' </dev/urandom | head -c 40 >"$file.new"
    mv "$file.new" "$file"
    echo "db-password: made a new database password"
else
    echo "db-password: keeping the database password"
fi
if [ "$(id -u)" = 0 ]; then
    chown "${DB_PASSWORD_OWNER:-999:1000}" "$file"
fi
chmod 0440 "$file"
