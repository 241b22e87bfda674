#!/bin/sh
# One-shot (service temporal-setup, image temporalio/admin-tools): once the server answers, makes
# the failback namespace and registers the custom search attributes the workflows set and the
# Web UI filters on. Safe to run again: an existing namespace is kept and creating a search
# attribute that exists with the same type does nothing (a different type is an error).
set -eu
: "${TEMPORAL_ADDRESS:?}"
NAMESPACE=${FAILBACK_TEMPORAL_NAMESPACE:-default}
RETENTION=${TEMPORAL_NAMESPACE_RETENTION:-30d}
SEARCH_ATTRIBUTES="FailbackPhase RecoveryPlan Vault"

# retry DESCRIPTION COMMAND...: a fresh server, or a namespace made a moment ago, may not answer
# yet; try for up to two minutes.
retry() {
    what=$1
    shift
    tries=0
    until "$@"; do
        tries=$((tries + 1))
        if [ "$tries" -ge 60 ]; then
            echo "temporal-setup: gave up: $what" >&2
            return 1
        fi
        sleep 2
    done
}

retry "the server at $TEMPORAL_ADDRESS is not serving" \
    temporal operator cluster health --address "$TEMPORAL_ADDRESS"

if temporal operator namespace describe --address "$TEMPORAL_ADDRESS" \
    --namespace "$NAMESPACE" >/dev/null 2>&1; then
    echo "temporal-setup: namespace $NAMESPACE exists"
else
    echo "temporal-setup: creating namespace $NAMESPACE (retention $RETENTION)"
    retry "creating namespace $NAMESPACE" \
        temporal operator namespace create --address "$TEMPORAL_ADDRESS" \
        --namespace "$NAMESPACE" --retention "$RETENTION"
fi

# One attribute per call: the CLI pairs each --name with a --type, so with one --type only the
# first --name would be created.
for name in $SEARCH_ATTRIBUTES; do
    echo "temporal-setup: search attribute $name (Keyword) in namespace $NAMESPACE"
    retry "creating search attribute $name" \
        temporal operator search-attribute create --address "$TEMPORAL_ADDRESS" \
        --namespace "$NAMESPACE" --name "$name" --type Keyword
done
echo "temporal-setup: done"
