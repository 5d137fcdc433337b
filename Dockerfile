# syntax=docker/dockerfile:1
#
# podpath image: a glibc release build on distroless/cc, run as uid 65532.
#
# Build with BuildKit (the default builder since Docker 23, or `docker buildx
# build`); with other builders (buildah, kaniko) check that the capability
# survived: a running pod reports podpath_capture_up 1.
#   docker build -t podpath:0.1.0 .
# The binary carries the file capability cap_net_raw+ep, set in the builder
# stage. File capabilities live in the security.capability extended attribute,
# which COPY --from preserves only under BuildKit; the legacy builder would drop
# it, but it also rejects RUN --mount below, so it fails loudly instead of
# producing an image whose binary cannot open its AF_PACKET socket.
# Keep .dockerignore in step with Cargo.toml (build.rs, benches, workspace members).
# The Kubernetes manifests (deploy/sidecar) also add NET_RAW to the container's
# capability bounding set: the file capability can only raise the binary to
# what the bounding set allows, so both are needed; nothing else is.

ARG RUST_VERSION=1
FROM rust:${RUST_VERSION}-bookworm AS builder
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
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --no-default-features --bin podpath \
    && install -D -m 0755 target/release/podpath /out/podpath \
    && setcap cap_net_raw+ep /out/podpath \
    && getcap /out/podpath | grep -q cap_net_raw

# The admission webhook (`podpath webhook`, deploy/webhook), built with the
# default features: the sidecar's build above leaves out the `webhook`
# feature (rustls and ring: 5.7 MB stripped instead of 4.1 MB, measured
# 2026-11-30). No file capability here: one outside the container's bounding
# set makes execve fail, and the webhook container drops every capability.
# BuildKit builds this stage only for --target webhook:
#   docker build --target webhook -t podpath-webhook:0.1.0 .
FROM builder AS webhook-builder
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin podpath \
    && install -D -m 0755 target/release/podpath /out/webhook/podpath

FROM gcr.io/distroless/cc-debian12:nonroot AS webhook
COPY --from=webhook-builder /out/webhook/podpath /usr/local/bin/podpath
USER 65532:65532
EXPOSE 9443 9808
ENTRYPOINT ["/usr/local/bin/podpath"]
CMD ["webhook"]

# The sidecar, the default target (last stage).
# distroless/cc: glibc, libgcc and CA certificates, no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/podpath /usr/local/bin/podpath
USER 65532:65532
EXPOSE 9809
ENTRYPOINT ["/usr/local/bin/podpath"]
CMD ["run"]
