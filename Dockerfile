# syntax=docker/dockerfile:1
# The rostersync image: the operator (`rostersync controller`), the sync Jobs (`rostersync sync`) and
# the kubectl plugin binary. Not built in this repository's CI (no container engine there); see README.
#
#   docker build -t ghcr.io/rostersync/rostersync:0.1.0 .
#
# The time zone database is compiled into the binary (jiff's `tzdb-bundle-always`), so the runtime image
# needs no tzdata; TLS roots come with rustls (webpki roots), so it needs no CA bundle either.

FROM rust:1.89-bookworm AS build
WORKDIR /src
# Dependencies first, for a cached layer that survives source edits.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src/bin && echo 'fn main() {}' > src/main.rs && echo 'fn main() {}' > src/bin/kubectl-roster.rs \
    && touch src/lib.rs && cargo fetch --locked
COPY . .
RUN cargo build --release --locked --bin rostersync --bin kubectl-roster \
    && strip target/release/rostersync target/release/kubectl-roster

# glibc (ring, rustls), no shell, no package manager, runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/rostersync /usr/local/bin/rostersync
COPY --from=build /src/target/release/kubectl-roster /usr/local/bin/kubectl-roster
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/rostersync"]
CMD ["controller"]
