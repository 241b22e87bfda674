# syntax=docker/dockerfile:1
#
# Images of the failback stack (docker-compose.yml):
#   target worker (the default, last stage): the project on python:3.11-slim; runs the worker, and
#                 under the lab profile the ASR simulator and lab-init.
#   target vcsim: the lab's vCenter, govmomi's simulator driven by lab/vcsim/main.go.
# Nothing secret is copied or set here; settings and secrets arrive at run time (deploy/README.md).

# --- vcsim: built from Debian bookworm's Go and govmomi source, as lab/vcenter.py builds it -------
FROM debian:bookworm AS vcsim-build
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        golang-go golang-github-vmware-govmomi-dev \
    && rm -rf /var/lib/apt/lists/*
COPY lab/vcsim/main.go /src/vcsim/main.go
# Debian ships govmomi as GOPATH source without a go.mod, hence GOPATH mode; without cgo the
# binary is static and runs on the slim image below.
RUN GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=/tmp/go-build GOFLAGS= CGO_ENABLED=0 \
    go build -o /out/vcsim-harness /src/vcsim/main.go

FROM debian:bookworm-slim AS vcsim
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin vcsim
COPY --from=vcsim-build /out/vcsim-harness /usr/local/bin/vcsim-harness
USER 10001:10001
EXPOSE 8989
ENTRYPOINT ["/usr/local/bin/vcsim-harness"]

# --- worker ------------------------------------------------------------------------------------
FROM python:3.11-slim AS worker
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md /src/
COPY domain /src/domain
COPY workflows /src/workflows
COPY activities /src/activities
COPY worker /src/worker
COPY starter /src/starter
COPY lab /src/lab
RUN pip install /src && rm -rf /src
# A non-root user; /lab is where the lab profile's volume is mounted (owned by that user, so a
# fresh volume takes this ownership).
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/failback \
        --shell /usr/sbin/nologin failback \
    && install -d -o 10001 -g 10001 /lab
WORKDIR /home/failback
USER 10001:10001
CMD ["python", "-m", "worker"]
