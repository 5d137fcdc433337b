# syntax=docker/dockerfile:1
#
# podpath image: a glibc release build on distroless/cc, run as uid 65532.
#
# Build with BuildKit (the default builder since Docker 23, or `docker buildx
# build`); with other builders (buildah, kaniko) check that the capability
# survived: a running pod reports podpath_capture_up 1, or names the cause.
#   docker build -t registry.example/podpath:0.1.0 .
# The debug symbols of the shipped binary, for gdb/perf/addr2line:
#   docker build --target debug-symbols --output type=local,dest=out .
#
# The binary is stripped of debug info and symbols (issue 12 measured a release
# build at ~30 MB with them, ~4 MB without; they ship as the debug-symbols
# target) and carries the file capability cap_net_raw+p, both done by
# scripts/finish-binary.sh, which ci/runtime-matrix.sh runs too. +p, not +ep:
# the kernel refuses to execve a binary with the effective flag whose
# capability the container's bounding set lacks, so a container without
# NET_RAW would never start (and a native sidecar that never starts holds the
# app's containers back); a +p binary starts anyway, `podpath run` raises
# NET_RAW to effective when it has it and otherwise serves and reports
# `not_in_bounding_set`. File
# capabilities live in the security.capability extended attribute, which
# COPY --from preserves only under BuildKit; the legacy builder would drop it,
# but it also rejects RUN --mount below, so it fails loudly instead of
# producing an image whose binary cannot open its AF_PACKET socket. An image
# tool that rewrites layers without extended attributes breaks it the same way
# (docs/deploy.md, "Capabilities and container runtimes": podpath then says
# `no_file_capability`).
# Keep .dockerignore in step with Cargo.toml (build.rs, benches, workspace members).
# The Kubernetes manifests (deploy/sidecar) also add NET_RAW to the container's
# capability bounding set: the file capability can only grant what the
# bounding set allows, so both are needed to capture; nothing else is.
#
# Base images are pinned by digest. The digests were
# NOT pulled or verified on the machine that wrote this file (no registry is
# reachable there): they were read on 2026-11-30 from public Dockerfiles that
# pin the same tags. Before a release, refresh and verify them:
#   docker buildx imagetools inspect rust:1.98.1-bookworm
#   docker buildx imagetools inspect gcr.io/distroless/cc-debian12:nonroot
# (or let Renovate/Dependabot propose the updates).

FROM rust:1.98.1-bookworm@sha256:93ce27a88655056a51dbdd8f5f2d7ddc071c7b0070fb288a37b5a285fc83971e AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The bookworm base fixes the package set; setcap is needed only at build time.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libcap2-bin \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY crates ./crates
# Cargo.toml declares the criterion bench; cargo wants its file to exist.
COPY benches ./benches
COPY tests/captures/seed-any.pcap ./tests/captures/
COPY scripts/finish-binary.sh ./scripts/
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --no-default-features --bin podpath \
    && scripts/finish-binary.sh target/release/podpath /out

# The debug info and symbols split off the shipped binary (its .gnu_debuglink
# names podpath.debug). Not part of the image: build it with --target.
FROM scratch AS debug-symbols
COPY --from=builder /out/podpath.debug /

# The admission webhook (`podpath webhook`, deploy/webhook), built with the
# default features: the sidecar's build above leaves out the `webhook`
# feature (rustls and ring: 5.7 MB stripped instead of 4.1 MB, measured
# 2026-11-30). No file capability here: the webhook needs none, and its
# container drops every capability.
# BuildKit builds this stage only for --target webhook:
#   docker build --target webhook -t podpath-webhook:0.1.0 .
FROM builder AS webhook-builder
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin podpath \
    && install -D -m 0755 target/release/podpath /out/webhook/podpath \
    && strip --strip-all /out/webhook/podpath

FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f AS webhook
COPY --from=webhook-builder /out/webhook/podpath /usr/local/bin/podpath
USER 65532:65532
EXPOSE 9443 9808
ENTRYPOINT ["/usr/local/bin/podpath"]
CMD ["webhook"]

# The sidecar, the default target (last stage).
# distroless/cc: glibc, libgcc and CA certificates, no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f
COPY --from=builder /out/podpath /usr/local/bin/podpath
USER 65532:65532
EXPOSE 9809
ENTRYPOINT ["/usr/local/bin/podpath"]
CMD ["run"]
