# The AWS X-Ray daemon, built from its Go module at the version the trace test runs.
#
# For people who build their own daemon image instead of using public.ecr.aws/xray/aws-xray-daemon.
# Build from the repository root (the builder runs scripts/xray-daemon.sh, the same script that
# builds the daemon for the tests, so the image and the tests run the same pinned code):
#   docker build -f docker/xray-daemon.Dockerfile -t xray-operator/xray-daemon:3.0.1 .
# and set spec.daemon.image of a TracingConfig to that tag.
#
# It is a drop-in for the upstream image: binary at /xray, the same ENTRYPOINT with the
# 0.0.0.0 binds (the daemon's own default is 127.0.0.1, unreachable from other pods), the same
# non-root UID 10001, CA certificates for the X-Ray HTTPS endpoint, nothing else.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY scripts/xray-daemon.sh scripts/xray-daemon.sh
# Pins (module version, checksum, dependency versions) live in the script; a different daemon
# version can be built with --build-arg XRAY_DAEMON_VERSION=v0.0.0-<time>-<commit>.
ARG XRAY_DAEMON_VERSION=v3.0.1+incompatible
RUN XDG_CACHE_HOME=/build XRAY_DAEMON_VERSION="${XRAY_DAEMON_VERSION}" \
        bash scripts/xray-daemon.sh \
    && cp -L .cache/bin/xray /xray \
    && /xray --version

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /xray /xray
# Numeric, so the kubelet can check runAsNonRoot without a passwd file in the image.
USER 10001:10001
EXPOSE 2000/udp 2000/tcp
ENTRYPOINT ["/xray", "-t", "0.0.0.0:2000", "-b", "0.0.0.0:2000"]
