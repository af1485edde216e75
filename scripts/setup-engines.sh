#!/usr/bin/env bash
# Installs and starts the container engines the tests use, and builds the local test image
# localhost/mesh-test:latest (busybox, imported from a rootfs: no registry is needed). Also
# installs Chromium, which the dashboard test drives headless (tests/tests/dashboard.rs).
# Run as root. Idempotent: safe to run again on a machine that already has everything.
set -euo pipefail

log() { printf '[setup-engines] %s\n' "$*"; }

wait_for_socket() { # path, what
  local path=$1 what=$2 deadline=$((SECONDS + 60))
  until [ -S "$path" ] && curl -fsS --unix-socket "$path" http://d/_ping >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      log "$what did not answer on $path within 60s"; return 1
    fi
    sleep 0.2
  done
  log "$what answers on $path"
}

export DEBIAN_FRONTEND=noninteractive
need=()
for pkg in podman docker.io runc busybox-static curl iptables chromium; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -q
  apt-get install -y -q "${need[@]}"
fi

# Podman on these machines needs runc and no default ulimits.
mkdir -p /etc/containers
conf=/etc/containers/containers.conf
if ! grep -q '^runtime = "runc"' "$conf" 2>/dev/null; then
  cat >"$conf" <<'CONF'
[containers]
default_ulimits = []

[engine]
runtime = "runc"
CONF
  log "wrote $conf"
fi

if ! curl -fsS --unix-socket /run/podman/podman.sock http://d/_ping >/dev/null 2>&1; then
  mkdir -p /run/podman
  log "starting the Podman API service"
  # From /: conmon inherits the service's working directory and fails ("write child:
  # broken pipe") once it is deleted, as a CI clone the service was started from is.
  (cd / && nohup podman system service --time=0 unix:///run/podman/podman.sock >/var/log/podman-service.log 2>&1 &)
fi
wait_for_socket /run/podman/podman.sock "podman"

if ! curl -fsS --unix-socket /var/run/docker.sock http://d/_ping >/dev/null 2>&1; then
  log "starting dockerd"
  (cd / && nohup dockerd >/var/log/dockerd.log 2>&1 &)
fi
wait_for_socket /var/run/docker.sock "dockerd"

# The test image: busybox-static with its applets linked, imported into both engines.
image=localhost/mesh-test:latest
if ! podman image exists "$image" || ! docker image inspect "$image" >/dev/null 2>&1; then
  rootfs=$(mktemp -d)
  mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,var/www,proc,sys,dev}
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in $("$rootfs/bin/busybox" --list); do
    [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
  echo 'root:x:0:' >"$rootfs/etc/group"
  echo 'mesh test page' >"$rootfs/var/www/index.html"
  tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/sh"]' - "$image" >/dev/null
  tar -C "$rootfs" -c . | docker import --change 'CMD ["/bin/sh"]' - "$image" >/dev/null
  rm -rf "$rootfs"
  log "built $image in podman and docker"
fi
log "ready: podman $(podman version --format '{{.Server.Version}}' 2>/dev/null || echo '?'), docker $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?')"
