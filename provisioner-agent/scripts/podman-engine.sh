#!/usr/bin/env bash
# A local Docker-compatible engine for the provisioner-agent's real-engine test, with no image
# registry: Podman's Docker API socket plus an image imported from Debian's busybox-static.
#   apt-get install -y podman runc busybox-static
#   provisioner-agent/scripts/podman-engine.sh            # prints the DOCKER_HOST to export
# Why runc and the ulimits: in this sandbox crun refuses hybrid cgroups and the container may
# not raise RLIMIT_NOFILE/NPROC to the host's values (no CAP_SYS_RESOURCE); lower ones work.
set -euo pipefail
dir=${PODMAN_ENGINE_DIR:-/tmp/podman-engine}
mkdir -p "$dir"
cat > "$dir/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]
[engine]
runtime = "runc"
CONF
export CONTAINERS_CONF="$dir/containers.conf"

if ! podman image exists localhost/molecule-busybox:latest; then
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/tmp" "$root/configs"
  cp /bin/busybox "$root/bin/busybox"
  for applet in sh ls cat echo sleep; do ln -s busybox "$root/bin/$applet"; done
  tar -C "$root" -c . | podman import \
    --change 'CMD ["/bin/sh","-c","ls -lan /configs; cat /configs/.auth_token; echo; exec sleep 3600"]' \
    - localhost/molecule-busybox:latest >/dev/null 2>&1
  rm -rf "$root"
fi

sock="$dir/podman.sock"
if ! curl -sf --unix-socket "$sock" http://d/_ping >/dev/null 2>&1; then
  setsid podman system service --time=0 "unix://$sock" >"$dir/service.log" 2>&1 &
  echo $! >"$dir/service.pid"
  for _ in $(seq 50); do curl -sf --unix-socket "$sock" http://d/_ping >/dev/null 2>&1 && break; sleep 0.2; done
fi
echo "PROVISIONER_TEST_DOCKER_HOST=unix://$sock"
