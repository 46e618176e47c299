#!/usr/bin/env bash
# `make image`: build the Dockerfile with whichever engine works here: docker (its daemon must answer), podman or
# buildah. IMAGE (default leadpipe) and the version from pyproject.toml name the image; the version also goes into
# the OCI labels. Exit 1 with a clear message when no engine works.
set -euo pipefail
cd "$(dirname "$0")/.."

image="${IMAGE:-leadpipe}"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n1)"
revision="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
args=(--build-arg "VERSION=${version}" --build-arg "REVISION=${revision}" --build-arg "CREATED=${created}"
      -t "${image}:${version}" -f Dockerfile .)

tried=()
if command -v docker >/dev/null 2>&1; then
  if docker info >/dev/null 2>&1; then
    echo "make image: docker build -t ${image}:${version}" >&2
    DOCKER_BUILDKIT=1 exec docker build "${args[@]}"
  fi
  why="$(docker info 2>&1 | grep -m1 -i -E 'cannot connect|error' || true)"
  tried+=("docker is installed, but no daemon answers (${why:-docker info failed})")
fi
if command -v podman >/dev/null 2>&1; then
  echo "make image: podman build -t ${image}:${version}" >&2
  exec podman build "${args[@]}"
fi
if command -v buildah >/dev/null 2>&1; then
  echo "make image: buildah bud -t ${image}:${version}" >&2
  exec buildah bud "${args[@]}"
fi
[ ${#tried[@]} -gt 0 ] || tried+=("no docker, podman or buildah on PATH")
{
  echo "make image: no container engine works here, so ${image}:${version} was not built:"
  printf '  - %s\n' "${tried[@]}"
  echo "Install podman or buildah (Debian: apt-get install podman), or start a Docker daemon, and run make image again."
  echo "What can be checked without an engine runs in make test: tests/integration/infra/test_image_entrypoints.py"
  echo "builds the same wheel into a clean virtualenv and runs the chart's commands from it."
} >&2
exit 1
