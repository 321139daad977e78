#!/usr/bin/env bash
# make image: builds docker/Dockerfile from the repository root as $IMAGE:<version> and
# $IMAGE:latest, and prints its size.
#
# IMAGE_ENGINE: docker, podman, or empty for docker when its daemon answers, else
# podman. podman runs through docker/podman-local.sh (a private store and a base image
# made from the machine's apt mirror, for machines that reach no registry); with
# PODMAN_LOCAL=0 it uses the machine's own podman settings and pulls as usual.
set -euo pipefail
cd "$(dirname "$0")/.."

image=${IMAGE:-respgate}
version=$(sed -n 's/^project(respgate VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
[ -n "$version" ] || { echo "build-image: no version in CMakeLists.txt" >&2; exit 1; }
engine=${IMAGE_ENGINE:-}
if [ -z "$engine" ]; then
    if command -v docker >/dev/null && timeout 20 docker info >/dev/null 2>&1; then
        engine=docker
    else
        engine=podman
    fi
fi

tags=(-t "$image:$version" -t "$image:latest")
start=$SECONDS
case $engine in
docker)
    echo "build-image: docker build -f docker/Dockerfile ${tags[*]} ."
    docker build -f docker/Dockerfile "${tags[@]}" .
    size=$(docker image inspect --format '{{.Size}}' "$image:latest")
    run="docker run --rm $image:latest --version"
    ;;
podman)
    pull=()
    [ "${PODMAN_LOCAL:-1}" = 0 ] || pull=(--pull=never)
    # --format docker: the OCI image format has no HEALTHCHECK. --network host: RUN
    # steps reach the apt mirror without a bridge (no firewall rules, no ip_forward).
    echo "build-image: podman build ${pull[*]} --network host --format docker -f docker/Dockerfile ${tags[*]} ."
    docker/podman-local.sh build "${pull[@]}" --network host --format docker \
        -f docker/Dockerfile "${tags[@]}" .
    size=$(docker/podman-local.sh image inspect --format '{{.Size}}' "$image:latest")
    if [ "${PODMAN_LOCAL:-1}" = 0 ]; then
        run="podman run --rm $image:latest --version"
    else
        run="docker/podman-local.sh run --rm $image:latest --version"
    fi
    ;;
*)
    echo "build-image: IMAGE_ENGINE must be docker or podman, not '$engine'" >&2
    exit 1
    ;;
esac
echo "build-image: built $image:$version and $image:latest with $engine in $((SECONDS - start)) s;" \
    "size $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.1f MB", s / 1e6 }'))"
echo "build-image: try it: $run"
