# crm-ingest's container image. Not built on our machines (no Docker engine runs there): a test checks this file
# against the Makefile instead (the same runtime packages, the same paths as `make install`).
#   docker build -t crm-ingest .
#   docker run -d --name crm-ingest -v crm-data:/var/lib/crm-ingest -p 8080:8080 \
#     -e AMQP_URL=amqp://user:pass@rabbitmq:5672/ crm-ingest
#   docker kill -s HUP crm-ingest      reload the configuration (a change of a mounted file is seen anyway)

# Build stage: the official Swift image for Debian bookworm, with the C libraries' headers.
FROM swift:6.3-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      make pkg-config librabbitmq-dev libcurl4-openssl-dev libsqlite3-dev libsodium-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The manifest first, so the dependencies' layer is cached while only our sources change.
COPY Package.swift ./
RUN swift package resolve
COPY Sources ./Sources
COPY Tests ./Tests
COPY Config ./Config
COPY Docs ./Docs
COPY README.md Makefile ./
# The Swift runtime linked in statically: the runtime stage needs only Debian's C libraries.
RUN swift build -c release --product crm-ingest --static-swift-stdlib \
 && make install-files BINARY="$(swift build -c release --show-bin-path)/crm-ingest" PREFIX=/usr/local DESTDIR=/out

# Runtime stage: slim Debian with only the libraries the binary links (RUNTIME_PACKAGES in the Makefile); the
# health check is the binary's own `crm-ingest health`.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librabbitmq4 libcurl4 libsqlite3-0 libsodium23 libstdc++6 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system crm-ingest \
 && useradd --system --gid crm-ingest --home-dir /var/lib/crm-ingest --shell /usr/sbin/nologin crm-ingest \
 && install -d -o crm-ingest -g crm-ingest -m 0750 /var/lib/crm-ingest
COPY --from=build /out/usr/local/bin/crm-ingest /usr/local/bin/crm-ingest
COPY --from=build /out/etc/crm-ingest/crm-ingest.yaml /etc/crm-ingest/crm-ingest.yaml
COPY --from=build /out/usr/local/share/doc/crm-ingest /usr/local/share/doc/crm-ingest
USER crm-ingest
WORKDIR /var/lib/crm-ingest
# The data under the volume; the HTTP server on every interface of the container (published with -p).
ENV CRM_INGEST_DATA=/var/lib/crm-ingest \
    CRM_INGEST_HTTP=0.0.0.0:8080
VOLUME ["/var/lib/crm-ingest"]
EXPOSE 8080
# SIGTERM drains in-flight work (every delivery settled) and exits 0; give it time before the engine kills.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/crm-ingest", "health", "--config", "/etc/crm-ingest/crm-ingest.yaml"]
ENTRYPOINT ["/usr/local/bin/crm-ingest"]
CMD ["run", "--config", "/etc/crm-ingest/crm-ingest.yaml", "--log-format", "json"]
