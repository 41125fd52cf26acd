package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// A gRPC supplier behind an intercepted route: the app's HTTP/2 goes through the proxy, the token is added
// as metadata, and unary calls, server streams and errors (carried in trailers) all arrive.
func TestGRPCThroughAnInterceptedRoute(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	var seen []string
	auth := func(ctx context.Context) error {
		md, _ := metadata.FromIncomingContext(ctx)
		seen = append(seen, md.Get("authorization")...)
		if got := md.Get("authorization"); len(got) != 1 || got[0] != "Bearer "+testTokenPrefix+"1" {
			return status.Errorf(codes.Unauthenticated, "token %v", got)
		}
		return nil
	}
	supplier := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{*h.upCert}})),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			if err := auth(ctx); err != nil {
				return nil, err
			}
			return handler(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			if err := auth(ss.Context()); err != nil {
				return err
			}
			return handler(srv, ss)
		}),
	)
	healthy := health.NewServer()
	healthy.SetServingStatus("orders", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(supplier, healthy)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = supplier.Serve(ln) }()
	defer supplier.Stop()
	h.mapHost("supplier.test:443", ln.Addr().String())

	// The app dials through the proxy as grpc-go does with HTTPS_PROXY: CONNECT, then TLS and HTTP/2.
	conn, err := grpc.NewClient("passthrough:///supplier.test:443",
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: h.caPool, ServerName: "supplier.test"})),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return h.dialConnect(ctx, addr) }))
	require.NoError(t, err)
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "orders"})
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.Status)

	_, err = client.Check(ctx, &healthpb.HealthCheckRequest{Service: "no-such-service"})
	assert.Equal(t, codes.NotFound, status.Code(err), "a status in trailers reaches the app: %v", err)

	watch, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "orders"})
	require.NoError(t, err)
	first, err := watch.Recv()
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, first.Status)
	healthy.SetServingStatus("orders", healthpb.HealthCheckResponse_NOT_SERVING)
	second, err := watch.Recv()
	require.NoError(t, err, "a server stream is flushed message by message")
	assert.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, second.Status)

	assert.NotEmpty(t, seen)
	for _, a := range seen {
		assert.Equal(t, "Bearer "+testTokenPrefix+"1", a, "every call carried the route's token")
	}
	assert.EqualValues(t, 1, h.tokens.Count.Load())
	assert.Contains(t, h.logs.String(), "msg=request route=orders method=POST host=supplier.test path=/grpc.health.v1.Health/Check status=200")
}

// dialConnect opens a tunnel to addr through the proxy with CONNECT and returns it after the 200.
func (h *harness) dialConnect(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", h.proxyURL.Host)
	if err != nil {
		return nil, err
	}
	if _, err := fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", addr, addr); err != nil {
		c.Close()
		return nil, err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != http.StatusOK {
		c.Close()
		return nil, fmt.Errorf("CONNECT %s: %v %v", addr, resp, err)
	}
	if br.Buffered() > 0 {
		c.Close()
		return nil, io.ErrUnexpectedEOF
	}
	return c, nil
}

// HTTP/2 from the app to the proxy and from the proxy to the supplier, trailers included.
func TestHTTP2BothWaysWithTrailers(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	up := newUpstream(t, h.upCert, false, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		_, _ = io.WriteString(w, "body")
		w.Header().Set("X-Checksum", "c0ffee")
	})
	h.route("supplier.test:443", up)
	client := h.client(h.caPool)
	client.Transport.(*http.Transport).ForceAttemptHTTP2 = true
	resp, err := client.Get("https://supplier.test/h2")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "HTTP/2.0", resp.Proto, "the app and the proxy agreed on h2")
	assert.Equal(t, "body", string(body))
	assert.Equal(t, "c0ffee", resp.Trailer.Get("X-Checksum"), "the trailer came through")
	got := up.last(t)
	assert.Equal(t, "HTTP/2.0", got.Proto, "the proxy spoke h2 to the supplier")
	assert.Equal(t, "Bearer "+testTokenPrefix+"1", got.Header.Get("Authorization"))
}
