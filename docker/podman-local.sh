#!/usr/bin/env bash
# podman for a machine that cannot reach a container registry, as this project's Debian 12
# machines (and CI) are: what `make image` falls back to without a working docker, and
# what tests/container/run.sh builds and runs with.
#
#   docker/podman-local.sh --setup      prepare, then print the settings (KEY=VALUE lines)
#   docker/podman-local.sh ARGS...      prepare, then run `podman ARGS...` with them
#
# Preparing means:
# - apt-get install podman runc mmdebstrap catatonit, those that are missing;
# - a private containers.conf (CONTAINERS_CONF): runc (crun refuses hybrid cgroups),
#   cgroupfs, the file events logger, and default ulimits within the hard limit (podman's
#   own exceed it, and root here lacks CAP_SYS_RESOURCE);
# - a private store, passed as --root/--runroot (the same through
#   CONTAINERS_STORAGE_CONF stalls every command 20 s);
# - the base image: a minbase bookworm made by mmdebstrap from the machine's own apt
#   sources, imported and tagged docker.io/library/debian:bookworm-slim and :bookworm,
#   so that the Dockerfile's FROM lines resolve with --pull=never. The tarball is cached.
#
# RG_CONTAINER_CACHE (default ~/.cache/respgate-container) holds the tarball and the store;
# delete it to start over. PODMAN_LOCAL=0 uses the machine's podman settings as they are.
set -euo pipefail

cache=${RG_CONTAINER_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/respgate-container}
root=$cache/storage
runroot=${RG_CONTAINER_RUNROOT:-/run/respgate-podman}
conf=$cache/containers.conf
rootfs=$cache/debian-bookworm-minbase.tar

say() { echo "podman-local: $*" >&2; }
die() { say "$*"; exit 1; }

install_missing() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing ${missing[*]}"
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    local log
    log=$(mktemp)
    if ! { "${sudo[@]}" apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
            "${missing[@]}"; } >"$log" 2>&1; then
        tail -20 "$log" >&2
        rm -f "$log"
        die "apt-get install ${missing[*]} failed"
    fi
    rm -f "$log"
}

# The machine's apt sources, for the base image: deb822 files first, then sources.list.
apt_sources() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && grep -q '^URIs:.*debian' "$f" && { echo "$f"; return; }
    done
    [ -s /etc/apt/sources.list ] && grep -q '^deb ' /etc/apt/sources.list && {
        echo /etc/apt/sources.list
        return
    }
    echo http://deb.debian.org/debian
}

setup() {
    if [ "${PODMAN_LOCAL:-1}" = 0 ]; then
        command -v podman >/dev/null || die "podman is not installed"
        return
    fi
    install_missing podman runc mmdebstrap catatonit
    # The run root is runtime state: podman learns of a reboot by its files vanishing,
    # as they would on a tmpfs. /run is not one everywhere, so wipe it on a new boot.
    local boot
    boot=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown)
    if [ -d "$runroot" ] && [ "$(cat "$runroot/.boot_id" 2>/dev/null)" != "$boot" ]; then
        rm -rf "$runroot"
    fi
    mkdir -p "$cache" "$root" "$runroot"
    echo "$boot" >"$runroot/.boot_id"
    local hard
    hard=$(ulimit -Hn)
    [ "$hard" = unlimited ] && hard=1048576
    cat >"$conf.tmp" <<CONF
# Written by docker/podman-local.sh; rewritten on every run.
[containers]
default_ulimits = ["nofile=$hard:$hard", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$runroot/libpod"
CONF
    mv "$conf.tmp" "$conf"
    export CONTAINERS_CONF=$conf
    local p=(podman --root "$root" --runroot "$runroot")
    if ! "${p[@]}" image exists docker.io/library/debian:bookworm-slim ||
        ! "${p[@]}" image exists docker.io/library/debian:bookworm; then
        if [ ! -s "$rootfs" ]; then
            local src start=$SECONDS
            src=$(apt_sources)
            say "making the base image with mmdebstrap from $src (once; cached in $rootfs)"
            mmdebstrap --variant=minbase --format=tar --quiet bookworm "$rootfs.tmp" "$src" >&2 ||
                die "mmdebstrap failed (see above)"
            mv "$rootfs.tmp" "$rootfs"
            say "mmdebstrap took $((SECONDS - start)) s"
        fi
        "${p[@]}" import --quiet --change 'CMD ["bash"]' "$rootfs" \
            docker.io/library/debian:bookworm-slim >/dev/null || die "podman import failed"
        "${p[@]}" tag docker.io/library/debian:bookworm-slim docker.io/library/debian:bookworm
        say "imported the base image as docker.io/library/debian:bookworm-slim and :bookworm"
    fi
}

setup
if [ "${1:-}" = --setup ]; then
    # Shell-quoted, for eval: CONTAINERS_CONF, then the podman command line.
    if [ "${PODMAN_LOCAL:-1}" = 0 ]; then
        printf 'CONTAINERS_CONF=%q\nPODMAN=%q\n' "${CONTAINERS_CONF:-}" podman
    else
        printf 'CONTAINERS_CONF=%q\nPODMAN=%q\n' "$conf" "podman --root $root --runroot $runroot"
    fi
    exit 0
fi
if [ "${PODMAN_LOCAL:-1}" = 0 ]; then
    exec podman "$@"
fi
exec podman --root "$root" --runroot "$runroot" "$@"
