# syntax=docker/dockerfile:1
# The one kvault image: `kvault operator`, `kvault server` (the vault StatefulSets) and
# `kvault provider` all run this binary.
#
#   docker build -t ghcr.io/kvault/kvault:0.1.0 .

# --- build -------------------------------------------------------------------------------
ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# The crates and the target directory are cached between builds (BuildKit); the binary is
# copied out of the cache in the same step.
# Paths in the binary (panic locations, the dependencies' log records) name the crate, not
# the build host's directories.
ENV RUSTFLAGS="--remap-path-prefix=/usr/local/cargo/registry/src=crates --remap-path-prefix=/src=kvault"
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin kvault \
    && install -D -m 0755 target/release/kvault /out/kvault

# --- run ---------------------------------------------------------------------------------
# Distroless: glibc and CA certificates, no shell, no package manager; user 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/kvault /usr/local/bin/kvault
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/kvault"]
