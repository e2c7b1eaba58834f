# syntax=docker/dockerfile:1
# provisioner: the binary and the default config/, on a minimal non-root runtime.
#   docker build -t provisioner:0.1.0 .

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin provisioner \
 && cp target/release/provisioner /provisioner

# distroless/cc: glibc, libgcc and CA certificates, no shell; "nonroot" is uid/gid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /provisioner /usr/local/bin/provisioner
COPY config/ /etc/provisioner/
ENV PROVISIONER_CONFIG_DIR=/etc/provisioner
USER 65532:65532
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/provisioner"]
CMD ["run"]
