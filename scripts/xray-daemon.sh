#!/usr/bin/env bash
# Build (or find) the pinned AWS X-Ray daemon and link it to .cache/bin/xray.
#
# Same conventions as scripts/k8s-bins.sh. Lookup order, first hit built from the pinned module
# version wins:
#   1. .cache/bin/xray                  (this clone)
#   2. $XRAY_DAEMON_BIN                 (a daemon someone built already)
#   3. the per-version user cache       (shared by every clone on this machine)
#   4. build it from its Go module into the user cache, then link it here.
#
# Which version, and why this one: the daemon's go.mod says `module github.com/aws/aws-xray-daemon`
# (no /v3), so its v3.x tags are unusable as module versions and a commit has to be pinned
# through a pseudo-version. The Go module proxy this project can reach serves exactly one version
# of the module: v3.0.1+incompatible (tag v3.0.1, the last commit before the repository gained a
# go.mod; it is what other modules required, which is why the proxy has it). Every pseudo-version
# and later tag is refused here, so that is the pin. It is the same daemon as far as this project
# cares: the same flags (-b -t -c -n -o -r -a -p -l -m), config Version 2 with the same keys, and
# the same validator that exits on an unknown key or a missing Version. Its main package is
# ./daemon; later commits moved it to ./cmd/tracing, so the package is picked from what the
# module contains and a newer pin works without editing this file:
#   XRAY_DAEMON_VERSION=v0.0.0-<yyyymmddhhmmss>-<commit12> bash scripts/xray-daemon.sh
set -euo pipefail

XRAY_DAEMON_MODULE="github.com/aws/aws-xray-daemon"
XRAY_DAEMON_VERSION="${XRAY_DAEMON_VERSION:-v3.0.1+incompatible}"
# The checksum the Go checksum database has for that version: a second, independent pin.
XRAY_DAEMON_SUM_v3_0_1="h1:AxQI+NGYw6XkSdmPy2hZu+Nr0zUGwNOZVzPTRAi/tvE="

# v3.0.1 predates go.mod, so nothing pins its dependencies (its glide.lock names 2018 commits).
# Pin them here so every machine builds the same binary. The 2018 golang.org/x/sys no longer
# compiles with current Go (linkname restrictions since Go 1.23), hence the newer x/ modules;
# aws-sdk-go v1 kept its API stable, so the last v1 release is a drop-in.
DEPS=(
  github.com/aws/aws-sdk-go@v1.55.8
  github.com/cihub/seelog@v0.0.0-20170130134532-f561c5e57575
  github.com/shirou/gopsutil@v2.19.10+incompatible
  github.com/StackExchange/wmi@v1.2.1
  github.com/go-ole/go-ole@v1.2.5
  github.com/jmespath/go-jmespath@v0.4.0
  golang.org/x/net@v0.62.0
  golang.org/x/sys@v0.50.0
  golang.org/x/text@v0.43.0
  gopkg.in/yaml.v2@v2.4.0
)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR="${ROOT}/.cache/bin"
USER_CACHE="${XDG_CACHE_HOME:-${HOME}/.cache}/xray-operator/bins"
WORK="${USER_CACHE}/src"
OUT="${USER_CACHE}/xray-${XRAY_DAEMON_VERSION}"
mkdir -p "${BIN_DIR}" "${USER_CACHE}" "${WORK}"

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local

log() { printf '[xray-daemon %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# built_from PATH -> true if the binary's embedded build info names the pinned module version.
# The daemon's own --version prints a constant from its source (3.0.1 for several commits), so
# the module version Go records at build time is the reliable check.
built_from() {
  local path="$1"
  [[ -x "${path}" ]] || return 1
  if command -v go >/dev/null 2>&1; then
    go version -m "${path}" 2>/dev/null \
      | awk -v m="${XRAY_DAEMON_MODULE}" -v v="${XRAY_DAEMON_VERSION}" \
          '($1 == "dep" || $1 == "mod") && $2 == m && $3 == v {found = 1} END {exit !found}'
  else
    # Without Go we cannot read build info; the per-version file name is the best evidence.
    [[ "$(readlink -f "${path}")" == "$(readlink -f "${OUT}" 2>/dev/null || echo "${OUT}")" ]]
  fi
}

have() {
  local candidate
  for candidate in "${BIN_DIR}/xray" ${XRAY_DAEMON_BIN:+"${XRAY_DAEMON_BIN}"} "${OUT}"; do
    if built_from "${candidate}"; then
      if [[ "${candidate}" != "${BIN_DIR}/xray" ]]; then
        ln -sf "${candidate}" "${BIN_DIR}/xray"
      fi
      log "xray ${XRAY_DAEMON_VERSION}: found ${candidate}"
      return 0
    fi
  done
  return 1
}

# A wrapper module: the daemon is built as a dependency, so our pins above decide its deps.
wrapper_module() {
  local dir="${WORK}/xray-daemon-${XRAY_DAEMON_VERSION}"
  if [[ -f "${dir}/.ready" ]]; then echo "${dir}"; return; fi
  rm -rf "${dir}" && mkdir -p "${dir}"
  (
    cd "${dir}"
    printf 'module xray-operator.dev/xray-daemon-bin\n\ngo 1.26.0\n' > go.mod
    log "xray ${XRAY_DAEMON_VERSION}: resolving modules" >&2
    go get "${XRAY_DAEMON_MODULE}@${XRAY_DAEMON_VERSION}" "${DEPS[@]}" >&2
    if [[ "${XRAY_DAEMON_VERSION}" == "v3.0.1+incompatible" ]]; then
      local sum
      sum="$(go mod download -json "${XRAY_DAEMON_MODULE}@${XRAY_DAEMON_VERSION}" \
        | sed -n 's/.*"Sum": "\(.*\)".*/\1/p')"
      if [[ "${sum}" != "${XRAY_DAEMON_SUM_v3_0_1}" ]]; then
        log "checksum mismatch for ${XRAY_DAEMON_MODULE}@${XRAY_DAEMON_VERSION}: ${sum}" >&2
        exit 1
      fi
    fi
  )
  touch "${dir}/.ready"
  echo "${dir}"
}

# main_package DIR -> the import path of the daemon's main package in the pinned version.
main_package() {
  local src
  src="$(cd "$1" && go list -m -f '{{.Dir}}' "${XRAY_DAEMON_MODULE}")"
  if [[ -d "${src}/cmd/tracing" ]]; then
    echo "${XRAY_DAEMON_MODULE}/cmd/tracing"
  else
    echo "${XRAY_DAEMON_MODULE}/daemon"
  fi
}

build() {
  local dir pkg start=${SECONDS}
  dir="$(wrapper_module)"
  pkg="$(main_package "${dir}")"
  log "xray ${XRAY_DAEMON_VERSION}: building ${pkg} (about a minute on a cold cache, longer on a busy machine)"
  (cd "${dir}" && go build -mod=mod -trimpath -ldflags "-s -w" -o "${OUT}.tmp.$$" "${pkg}")
  mv "${OUT}.tmp.$$" "${OUT}"
  log "xray ${XRAY_DAEMON_VERSION}: built in $((SECONDS - start)) s -> ${OUT}"
  ln -sf "${OUT}" "${BIN_DIR}/xray"
}

log "(1/1) xray ${XRAY_DAEMON_MODULE}@${XRAY_DAEMON_VERSION}"
if ! have; then
  # Two test sessions (or clones) may get here at once; one builds, the other then finds it.
  if command -v flock >/dev/null 2>&1; then
    exec 9>"${USER_CACHE}/.xray-daemon.lock"
    flock 9
  fi
  have || build
fi
log "$("${BIN_DIR}/xray" --version 2>&1 | head -1) ready at ${BIN_DIR}/xray"
