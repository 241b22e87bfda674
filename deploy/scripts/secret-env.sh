#!/bin/sh
# secret-env.sh NAME=FILE... -- COMMAND [ARG...]
#
# Exports each NAME with the content of FILE (a Docker secret, a file in a volume), then runs
# COMMAND in its place. Keeps secrets out of docker-compose.yml, `docker inspect` and argv.
set -eu
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
    name=${1%%=*}
    file=${1#*=}
    if [ ! -r "$file" ]; then
        echo "secret-env.sh: cannot read $file for $name" >&2
        exit 1
    fi
    value=$(cat "$file")
    export "$name=$value"
    shift
done
if [ "$#" -lt 2 ]; then
    echo "usage: secret-env.sh NAME=FILE... -- COMMAND [ARG...]" >&2
    exit 2
fi
shift
exec "$@"
