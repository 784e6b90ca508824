#!/usr/bin/env bash
# `make test-compose`: build the images and drive the compose stack with tests/test_compose.py.
# Installs docker.io, docker-compose and debootstrap when missing, and starts a private dockerd (as root, own
# socket, stopped at the end) when no engine answers. Its data root stays in IM2SP_DOCKER_STATE (default
# /var/tmp/im2sp-docker) so that the next run reuses the image layers. Without a registry, the images are
# built on a base made from Debian packages (docker/base-image.sh) and Postgres from Debian's package; without
# PyTorch's index, torch comes from the wheel in IM2SP_TORCH_WHEELS (default /opt/wheels).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
state=${IM2SP_DOCKER_STATE:-/var/tmp/im2sp-docker}
wheels=${IM2SP_TORCH_WHEELS:-/opt/wheels}
torch_wheel=torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl
say() { echo "test-compose: $*"; }
fail() { echo "test-compose: error: $*" >&2; exit 1; }
elapsed() { echo "$((SECONDS - $1)) s"; }

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || fail "missing ${missing[*]}: install them (apt-get install ${missing[*]}) or run as root"
    say "installing ${missing[*]}"
    apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 \
        || { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; } \
        || fail "apt-get install ${missing[*]} failed"
fi
# Debian's client matches Debian's engine; the classic builder needs no buildx plugin.
export DOCKER=${DOCKER:-$(command -v /usr/bin/docker || command -v docker)}
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0

daemon_pid=""
run_dir=""
stop_daemon() {
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill "$daemon_pid"
        for _ in $(seq 60); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.5; done
        kill -0 "$daemon_pid" 2>/dev/null && kill -9 "$daemon_pid"
    fi
    if [ -n "$run_dir" ]; then
        # dockerd leaves its network namespace mounted under the exec root
        grep -o " $run_dir/[^ ]*" /proc/mounts | xargs -r -n1 umount -l 2>/dev/null || true
        rm -rf "$run_dir"
    fi
    return 0
}
trap stop_daemon EXIT

start_daemon() {  # $1: storage driver; returns 1 when the daemon does not come up
    run_dir=$(mktemp -d /tmp/im2sp-dockerd.XXXXXX)
    export DOCKER_HOST="unix://$run_dir/docker.sock"
    dockerd --storage-driver "$1" --iptables=false --ip6tables=false --bridge=none \
        --data-root "$state/data" --exec-root "$run_dir/exec" --pidfile "$run_dir/dockerd.pid" \
        -H "$DOCKER_HOST" >"$state/dockerd.log" 2>&1 &
    daemon_pid=$!
    for _ in $(seq 120); do
        "$DOCKER" info >/dev/null 2>&1 && return 0
        kill -0 "$daemon_pid" 2>/dev/null || break
        sleep 0.5
    done
    stop_daemon
    daemon_pid=""
    return 1
}

if ! "$DOCKER" info >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || fail "no Docker engine answers and a private one needs root"
    mkdir -p "$state"
    exec 9>"$state/lock"
    flock -n 9 || fail "another test-compose uses $state (set IM2SP_DOCKER_STATE to run beside it)"
    started=$SECONDS
    # overlay2 where the kernel allows it (fast, small); vfs everywhere else.
    for driver in ${IM2SP_DOCKER_STORAGE_DRIVER:-overlay2 vfs}; do
        start_daemon "$driver" && break
    done
    [ -n "$daemon_pid" ] || fail "dockerd did not start: $(tail -3 "$state/dockerd.log")"
    say "private dockerd ($driver, data root $state/data) up in $(elapsed "$started")"
fi

pulled() { timeout 60 "$DOCKER" pull -q "$1" >/dev/null 2>&1; }
started=$SECONDS
if pulled python:3.11-slim; then
    base=python:3.11-slim
else
    base=im2sp-base
    if ! "$DOCKER" image inspect "$base" >/dev/null 2>&1; then
        say "no registry: making $base from Debian packages"
        DOCKER=$DOCKER docker/base-image.sh "$base"
    fi
fi
if pulled postgres:16-alpine; then
    export IM2SP_POSTGRES_IMAGE=postgres:16-alpine
else
    export IM2SP_POSTGRES_IMAGE=im2sp-postgres:latest
    "$DOCKER" build -q --network host -f docker/Dockerfile.postgres --build-arg BASE="$base" \
        -t "$IM2SP_POSTGRES_IMAGE" . >/dev/null
fi
torch_args=()
if ! timeout 20 "$python" -c "import urllib.request as u; u.urlopen('https://download.pytorch.org/whl/cpu/', timeout=15)" \
    >/dev/null 2>&1; then
    [ -f "$wheels/$torch_wheel" ] || fail "PyTorch's index is unreachable and $wheels has no $torch_wheel"
    cp -u "$wheels/$torch_wheel" docker/wheels/
    torch_args=(--build-arg TORCH_INDEX_URL=)
fi
"$DOCKER" build --network host -f docker/Dockerfile --build-arg BASE="$base" "${torch_args[@]}" \
    -t im2sp:latest . >"$state/build.log" 2>&1 || { tail -30 "$state/build.log" >&2; fail "the image build failed"; }
"$DOCKER" image prune -f >/dev/null  # the layers of earlier builds' images, no longer tagged
say "images on $base, Postgres $IM2SP_POSTGRES_IMAGE, built in $(elapsed "$started")"

started=$SECONDS
IM2SP_COMPOSE_TEST=1 "$python" -m pytest -q -p no:cacheprovider tests/test_compose.py "$@"
say "stack tests passed in $(elapsed "$started")"
