# syntax=docker/dockerfile:1
#
# One image for every SpendSignoff service: `spend serve <service>` runs one of them,
# `spend dev` runs all of them on embedded defaults. gRPC code generation uses a vendored
# protoc (protoc-bin-vendored), so the builder needs no protobuf-compiler package.

########## build ##########
FROM rust:1-bookworm AS builder
WORKDIR /src

# The whole workspace is needed: `spend` links every service crate.
COPY . .

# Cache mounts keep the registry and target dir between builds; the binary is copied out
# of the cached target dir inside the same RUN step so it lands in the image layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p spend \
    && install -D -m 0755 target/release/spend /out/spend

########## runtime ##########
FROM debian:bookworm-slim AS runtime

# ca-certificates: TLS to AWS KMS, managed PostgreSQL / NATS, Slack, SMTP. Unpinned on
# purpose: it should track Debian's security updates on every rebuild.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# Fixed numeric uid/gid so Kubernetes' runAsNonRoot can verify it without /etc/passwd lookups.
# /data is where `spend dev --data-dir /data` keeps its embedded log, SQLite db and local key;
# it is created here owned by spend so a fresh named volume mounted there is writable.
RUN groupadd --system --gid 10001 spend \
    && useradd --system --uid 10001 --gid spend --home-dir /home/spend --create-home \
       --shell /usr/sbin/nologin spend \
    && mkdir -p /data \
    && chown spend:spend /data

COPY --from=builder /out/spend /usr/local/bin/spend

USER 10001:10001
WORKDIR /home/spend

ENV SPEND__LOG__FORMAT=json \
    RUST_LOG=info

# gateway MCP 7100, gateway gRPC 7101, policy 7102, approval 7103, executor 7104, ledger 7105
EXPOSE 7100 7101 7102 7103 7104 7105

ENTRYPOINT ["spend"]
CMD ["--help"]
