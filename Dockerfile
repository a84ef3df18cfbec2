# syntax=docker/dockerfile:1
# stream-gateway: a static binary in an empty image, running as nobody.
#
#   docker build -t stream-gateway .
#   docker run --rm -p 127.0.0.1:8080:8080 -e STREAM_API_KEY=... \
#     -e STREAM_API_SECRET_FILE=/run/secrets/stream_api_secret \
#     -v "$PWD/secret.txt:/run/secrets/stream_api_secret:ro" stream-gateway
#
# There is no published image: build it and push it to your own registry.
#
# Without a registry (podman here), the builder stage can be replaced by a folder holding a
# binary built on the host: podman build --build-context builder=DIR . (scripts/container-smoke).

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# Statically linked (crt-static), TLS roots compiled in (rustls + webpki-roots), and a DNS
# resolver that needs no glibc NSS (hickory): nothing to find in the empty final image.
RUN RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release --locked --target x86_64-unknown-linux-gnu \
 && cp target/x86_64-unknown-linux-gnu/release/stream-gateway /stream-gateway

FROM scratch
COPY --from=builder /stream-gateway /stream-gateway
# Inside a container the gateway listens on every interface. Give the secret as a file
# (STREAM_API_SECRET_FILE=/run/secrets/stream_api_secret with a Docker or Kubernetes secret)
# or as STREAM_API_SECRET; the image sets neither, since setting both is refused.
ENV GATEWAY_SERVER__LISTEN=0.0.0.0:8080 \
    GATEWAY_LOG__FORMAT=json
USER 65534:65534
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=2s --retries=3 \
  CMD ["/stream-gateway", "--healthcheck"]
ENTRYPOINT ["/stream-gateway"]
