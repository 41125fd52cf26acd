# Static tokenproxy on distroless: no shell, no package manager, runs as a non-root user.
#   docker build --build-arg VERSION=v0.4.0 --build-arg REVISION=$(git rev-parse HEAD) -t registry.example/tokenproxy:v0.4.0 .
# (.dockerignore keeps .git out of the context, so the revision comes in as an argument.)
FROM golang:1.26 AS build
# Without them the binary says it does not know its version or revision, and how to set them.
ARG VERSION=
ARG REVISION=
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags="-s -w -X github.com/tokenproxy/tokenproxy/internal/buildinfo.version=${VERSION} -X github.com/tokenproxy/tokenproxy/internal/buildinfo.revision=${REVISION}" \
      -o /out/tokenproxy .

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tokenproxy /tokenproxy
USER 65532:65532
# tokenproxy health and the other commands find the configuration here without -config.
ENV TOKENPROXY_CONFIG=/etc/tokenproxy/routes.yaml
EXPOSE 3128 9901
ENTRYPOINT ["/tokenproxy"]
CMD ["-config", "/etc/tokenproxy/routes.yaml"]
