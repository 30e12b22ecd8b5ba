# The xray-operator image. Build from the repository root:
#   docker build -f docker/operator.Dockerfile -t xray-operator:0.1.0 .
#
# Dependencies come from requirements.lock (every package pinned), installed by uv with
# --no-deps so the image holds exactly the locked set; the dev extras are left out.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN pip install "uv==0.13.9"
WORKDIR /src
COPY pyproject.toml requirements.lock README.md ./
COPY operator ./operator
# Runtime packages only: the lock is compiled with the dev extra, so export the runtime set
# from it (same pins) before installing.
RUN uv venv /opt/venv \
    && uv pip compile --quiet --python /opt/venv/bin/python -c requirements.lock \
         -o /tmp/runtime.lock pyproject.toml \
    && uv pip sync --python /opt/venv/bin/python /tmp/runtime.lock \
    && uv pip install --python /opt/venv/bin/python --no-deps .

FROM python:${PYTHON_VERSION}-slim
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# Numeric non-root user: runAsNonRoot can be checked without a passwd entry.
USER 65532:65532
EXPOSE 8080 9443
ENTRYPOINT ["xray-operator"]
CMD ["run"]
