package proxy

import (
	"errors"
	"io"
	"net"
	"sync"
)

// answerBody is the body of an exchange's answer; the exchange ends when it is closed. The upstream body
// under it is closed exactly once, however often its callers close it: goproxy closes every answer twice,
// and each close of an HTTP/2 answer refunds its unread bytes to the connection's window, which drifts up
// until net/http panics with the connection's lock held (golang/go#58456).
type answerBody struct {
	io.ReadCloser
	s         *Server
	x         *exchange
	once      sync.Once
	closeErr  error
	alsoClose net.Conn // closed with the body: the app's side of an upgraded connection
}

func (b *answerBody) Read(p []byte) (n int, err error) {
	defer b.recoverUpstream(&err)
	n, err = b.ReadCloser.Read(p)
	b.x.received.Add(int64(n))
	return n, err
}

// WriteTo copies the answer to the app through a pooled buffer, held only while this answer is copied
// (io.Copy would allocate one for every answer).
func (b *answerBody) WriteTo(w io.Writer) (n int64, err error) {
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	for {
		nr, rerr := b.Read(*buf)
		if nr > 0 {
			nw, werr := w.Write((*buf)[:nr])
			n += int64(nw)
			if werr != nil {
				return n, werr
			}
			if nw != nr {
				return n, io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// copyBuffers are the buffers answers are copied to apps through.
var copyBuffers = sync.Pool{New: func() any {
	b := make([]byte, 32<<10)
	return &b
}}

func (b *answerBody) Close() error {
	b.once.Do(func() {
		b.closeErr = b.closeUpstream()
		if b.alsoClose != nil {
			_ = b.alsoClose.Close()
		}
		b.s.done(b.x)
	})
	return b.closeErr
}

func (b *answerBody) closeUpstream() (err error) {
	defer b.recoverUpstream(&err)
	return b.ReadCloser.Close()
}

// recoverUpstream turns a panic out of the upstream body into this request's error, and replaces the
// transport it came from.
func (b *answerBody) recoverUpstream(err *error) {
	if p := recover(); p != nil {
		*err = b.s.upstreamBroke(b.x.rtTransport, p)
	}
}

// Write lets a websocket (101) body stay writable through the wrapper.
func (b *answerBody) Write(p []byte) (int, error) {
	if w, ok := b.ReadCloser.(io.Writer); ok {
		return w.Write(p)
	}
	return 0, errors.New("proxy: response body is not writable")
}
