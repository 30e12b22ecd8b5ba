#!/usr/bin/env bash
# Build (or find) the pinned control-plane binaries and put them in .cache/bin/.
#
# Order of lookup for each binary, first hit with the pinned version wins:
#   1. .cache/bin/                      (this clone)
#   2. $KUBEBUILDER_ASSETS              (the envtest convention)
#   3. the per-version user cache       (shared by every clone on this machine)
#   4. build it from its Go module into the user cache, then link it here.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR="${ROOT}/.cache/bin"
USER_CACHE="${XDG_CACHE_HOME:-${HOME}/.cache}/xray-operator/bins"
WORK="${USER_CACHE}/src"
mkdir -p "${BIN_DIR}" "${USER_CACHE}" "${WORK}"

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local

log() { printf '[k8s-bins %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# version_of NAME PATH -> prints the version string the binary reports.
version_of() {
  local name="$1" path="$2"
  case "${name}" in
    etcd) "${path}" --version 2>/dev/null | awk '/etcd Version:/ {print "v"$3}' ;;
    kwok) "${path}" --version 2>/dev/null | grep -o 'v[0-9][0-9.]*' | head -1 ;;
    kubectl) "${path}" version --client 2>/dev/null | awk '/Client Version:/ {print $3}' ;;
    *) "${path}" --version 2>/dev/null | awk '{print $2}' ;;
  esac
}

pinned_of() {
  case "$1" in
    etcd) echo "${ETCD_VERSION}" ;;
    kwok) echo "${KWOK_VERSION}" ;;
    *) echo "${K8S_VERSION}" ;;
  esac
}

# have NAME -> true (and links it into .cache/bin) if a pinned copy exists somewhere.
have() {
  local name="$1" want candidate
  want="$(pinned_of "${name}")"
  for candidate in "${BIN_DIR}/${name}" ${KUBEBUILDER_ASSETS:+"${KUBEBUILDER_ASSETS}/${name}"} \
                   "${USER_CACHE}/${name}-${want}"; do
    if [[ -x "${candidate}" ]] && [[ "$(version_of "${name}" "${candidate}")" == "${want}" ]]; then
      if [[ "${candidate}" != "${BIN_DIR}/${name}" ]]; then
        ln -sf "${candidate}" "${BIN_DIR}/${name}"
      fi
      log "${name} ${want}: found ${candidate}"
      return 0
    fi
  done
  return 1
}

# The wrapper module for k8s.io/kubernetes: a dependency's replace lines are ignored, so map
# every staging module (./staging/src/k8s.io/X) to the published k8s.io/X v0.Y.Z.
k8s_module() {
  local dir="${WORK}/kubernetes-${K8S_VERSION}" staging="v0.${K8S_VERSION#v1.}"
  if [[ -f "${dir}/.ready" ]]; then echo "${dir}"; return; fi
  mkdir -p "${dir}"
  log "kubernetes ${K8S_VERSION}: preparing wrapper module (staging modules -> ${staging})" >&2
  (
    cd "${dir}"
    local upstream
    upstream="$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
    {
      echo "module xray-operator.dev/k8s-bins"
      echo
      grep -E '^go [0-9]' "${upstream}"
      grep -E '^godebug ' "${upstream}" || true
      echo
      echo "require k8s.io/kubernetes ${K8S_VERSION}"
      echo
      echo "replace ("
      sed -n '/^replace (/,/^)/p' "${upstream}" | grep -E '=> \./staging/' \
        | awk -v v="${staging}" '{print "\t" $1 " => " $1 " " v}'
      echo ")"
    } > go.mod
    cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	_ "k8s.io/kubernetes/cmd/kube-scheduler/app"
	_ "k8s.io/kubectl/pkg/cmd"
)
GO
    log "kubernetes ${K8S_VERSION}: resolving modules (go mod tidy; first time downloads a lot)" >&2
    go mod tidy >&2
  )
  touch "${dir}/.ready"
  echo "${dir}"
}

simple_module() { # NAME PACKAGE VERSION (go get of the package records its dependencies too)
  local dir="${WORK}/$1-$3"
  if [[ -f "${dir}/.ready" ]]; then echo "${dir}"; return; fi
  mkdir -p "${dir}"
  (
    cd "${dir}"
    printf 'module xray-operator.dev/%s-bin\n\ngo 1.26.0\n' "$1" > go.mod
    log "$1 $3: resolving modules" >&2
    go get "$2@$3" >&2
  )
  touch "${dir}/.ready"
  echo "${dir}"
}

build() {
  local name="$1" want out dir pkg ldflags=""
  want="$(pinned_of "${name}")"
  out="${USER_CACHE}/${name}-${want}"
  case "${name}" in
    etcd)
      dir="$(simple_module etcd go.etcd.io/etcd/server/v3 "${ETCD_VERSION}")"
      pkg=go.etcd.io/etcd/server/v3 ;;
    kwok)
      dir="$(simple_module kwok sigs.k8s.io/kwok/cmd/kwok "${KWOK_VERSION}")"
      pkg=sigs.k8s.io/kwok/cmd/kwok
      ldflags="-X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION}" ;;
    *)
      dir="$(k8s_module)"
      pkg="k8s.io/kubernetes/cmd/${name}"
      local minor="${K8S_VERSION#v1.}" v; minor="${minor%%.*}"
      for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X ${v}.gitVersion=${K8S_VERSION} -X ${v}.gitMajor=1 -X ${v}.gitMinor=${minor}"
        ldflags+=" -X ${v}.gitTreeState=clean -X ${v}.buildDate=1970-01-01T00:00:00Z"
      done ;;
  esac
  log "${name} ${want}: building ${pkg} (a few minutes on a cold cache)"
  local start=${SECONDS}
  (cd "${dir}" && go build -trimpath -ldflags "-s -w ${ldflags}" -o "${out}.tmp" "${pkg}")
  mv "${out}.tmp" "${out}"
  log "${name} ${want}: built in $((SECONDS - start)) s"
  ln -sf "${out}" "${BIN_DIR}/${name}"
}

# kwok ships no built-in behaviour: node and pod lifecycles are Stage objects from its module's
# kustomize/stage folder. Collect the usual ones (nodes Ready with lease heartbeats; pods
# created -> Running -> deleted) into one file beside the binary.
kwok_stages() {
  local out="${USER_CACHE}/kwok-stages-${KWOK_VERSION}.yaml" src f
  if [[ ! -s "${out}" ]]; then
    src="$(go mod download -json "sigs.k8s.io/kwok@${KWOK_VERSION}" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
    : > "${out}.tmp"
    for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
             pod/general/pod-create.yaml pod/general/pod-init-container-running.yaml \
             pod/general/pod-init-container-completed.yaml pod/general/pod-ready.yaml \
             pod/general/pod-complete.yaml pod/general/pod-delete.yaml; do
      { echo "---"; cat "${src}/kustomize/stage/${f}"; } >> "${out}.tmp"
    done
    mv "${out}.tmp" "${out}"
  fi
  ln -sf "${out}" "${BIN_DIR}/kwok-stages.yaml"
  log "kwok stages: ${BIN_DIR}/kwok-stages.yaml"
}

NAMES=("$@")
if [[ ${#NAMES[@]} -eq 0 ]]; then
  NAMES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)
fi
i=0
for name in "${NAMES[@]}"; do
  i=$((i + 1))
  log "(${i}/${#NAMES[@]}) ${name}"
  have "${name}" || build "${name}"
  if [[ "${name}" == kwok ]]; then kwok_stages; fi
done
log "all binaries ready in ${BIN_DIR}"
