#!/usr/bin/env bash
# make container-test: builds respgate's image with podman and runs it against a real
# Redis and Sentinel on loopback, then the Kubernetes manifest (podman play kube) and the
# compose demo (docker-compose against podman's API). container_test.py says what it
# checks; docs/container.md, how it is set up. Installs what is missing (as root, or
# through sudo): podman, runc, mmdebstrap, catatonit (docker/podman-local.sh), Redis,
# docker-compose.
#
# RG_CONTAINER_CACHE  where the base image tarball and podman's store are kept between
#                     runs (default ~/.cache/respgate-container; the first run spends
#                     about a minute making the base image and installing the build
#                     stage's packages)
# RG_COMPOSE=0        skip the compose demo
# RG_KEEP=1           keep the logs of a failed run
set -euo pipefail
cd "$(dirname "$0")/../.."

need=(redis-server redis-sentinel redis-tools python3)
[ "${RG_COMPOSE:-1}" = 0 ] || need+=(docker-compose)
missing=()
for p in "${need[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "container-test: installing ${missing[*]}"
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    log=$(mktemp)
    if ! { "${sudo[@]}" apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
            "${missing[@]}"; } >"$log" 2>&1; then
        tail -20 "$log"
        echo "container-test: apt-get install ${missing[*]} failed" >&2
        exit 1
    fi
    rm -f "$log"
fi
# podman runs rootful with a private store: root, or sudo for the whole test.
if [ "$(id -u)" -ne 0 ]; then
    exec sudo -E /usr/bin/python3 tests/container/container_test.py
fi
exec /usr/bin/python3 tests/container/container_test.py
