package proxy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rawH2 is an HTTP/2 client that sends header fields exactly as written, for tests that try what a
// well-behaved client never sends (an :authority naming another host than :path, any bytes at all).
type rawH2 struct {
	conn net.Conn
	fr   *http2.Framer
	enc  *hpack.Encoder
	dec  *hpack.Decoder
	buf  bytes.Buffer
	next uint32
}

// h2Answer is what came back on one stream.
type h2Answer struct {
	status int // 0 when the stream was reset
	header map[string]string
	body   []byte
}

// startRawH2 speaks TLS (ALPN h2) over conn as serverName, trusting pool, and sends the client preface.
func startRawH2(conn net.Conn, serverName string, pool *x509.CertPool) (*rawH2, error) {
	tc := tls.Client(conn, &tls.Config{ServerName: serverName, RootCAs: pool, NextProtos: []string{"h2"}})
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
		return nil, fmt.Errorf("ALPN agreed on %q, not h2", p)
	}
	r := &rawH2{conn: tc, next: 1}
	r.fr = http2.NewFramer(tc, tc)
	r.enc = hpack.NewEncoder(&r.buf)
	r.dec = hpack.NewDecoder(4096, nil)
	if _, err := tc.Write([]byte(http2.ClientPreface)); err != nil {
		return nil, err
	}
	return r, r.fr.WriteSettings()
}

// do sends one request of the given pseudo and regular header fields, in order, and reads its answer.
func (r *rawH2) do(fields ...[2]string) (h2Answer, error) {
	_ = r.conn.SetDeadline(time.Now().Add(10 * time.Second))
	r.buf.Reset()
	for _, f := range fields {
		if err := r.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			return h2Answer{}, err
		}
	}
	id := r.next
	r.next += 2
	if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.buf.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		return h2Answer{}, err
	}
	ans := h2Answer{header: map[string]string{}}
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			return ans, err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = r.fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = r.fr.WritePing(true, f.Data)
			}
		case *http2.GoAwayFrame:
			if f.LastStreamID < id {
				return ans, errors.New("the server went away before this stream")
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				return ans, nil
			}
		case *http2.HeadersFrame:
			if f.StreamID != id {
				continue
			}
			hf, err := r.dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				return ans, err
			}
			for _, h := range hf {
				ans.header[h.Name] = h.Value
			}
			ans.status, _ = strconv.Atoi(ans.header[":status"])
			if f.StreamEnded() {
				return ans, nil
			}
		case *http2.DataFrame:
			if f.StreamID != id {
				continue
			}
			ans.body = append(ans.body, f.Data()...)
			if n := len(f.Data()); n > 0 {
				_ = r.fr.WriteWindowUpdate(0, uint32(n))
				_ = r.fr.WriteWindowUpdate(id, uint32(n))
			}
			if f.StreamEnded() {
				return ans, nil
			}
		}
	}
}

func (r *rawH2) Close() error { return r.conn.Close() }
