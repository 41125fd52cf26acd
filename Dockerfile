# Static tokenproxy on distroless: no shell, no package manager, runs as a non-root user.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/tokenproxy .

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tokenproxy /tokenproxy
USER 65532:65532
EXPOSE 3128
ENTRYPOINT ["/tokenproxy"]
CMD ["-config", "/etc/tokenproxy/routes.yaml"]
