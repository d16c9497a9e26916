# Two stages: build a static binary, then run it as a non-root user with its
# config, registration and database in /data.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -tags goolm -trimpath -ldflags "-s -w -X main.Version=${VERSION}" -o /out/mxpp ./cmd/mxpp

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 1337 --home-dir /data mxpp \
    && mkdir /data && chown mxpp:mxpp /data
COPY --from=build /out/mxpp /usr/local/bin/mxpp
COPY example-config.yaml /opt/mxpp/example-config.yaml
COPY docker-run.sh /usr/local/bin/docker-run.sh
USER mxpp
WORKDIR /data
VOLUME /data
EXPOSE 29333
HEALTHCHECK --interval=30s --timeout=5s CMD ["/usr/local/bin/mxpp", "-healthcheck", "http://127.0.0.1:29333/health"]
ENTRYPOINT ["/usr/local/bin/docker-run.sh"]
