package proxy

import (
	"io"
	"net"
	"time"
)

// relay copies bytes both ways between the app and a CONNECT target. When either side ends, or both have
// been idle for the idle timeout, both are closed: a tunnel never outlives its app or its target. The
// tunnel is logged when it closes, with its bytes each way.
func (s *Server) relay(client *trackedConn, buffered []byte, target net.Conn, host string, start time.Time) {
	client.setKind(ConnTunnel)
	client.followIdle(true)
	up := newIdleConn(target, s.opts.ClientIdleTimeout)
	s.log.Debug("tunnel opened", "host", host)

	var sent, received int64
	done := make(chan struct{}, 2)
	go func() {
		sent, _ = io.Copy(up, newPrefixConn(client, buffered))
		done <- struct{}{}
	}()
	go func() {
		received, _ = io.Copy(client, up)
		done <- struct{}{}
	}()
	<-done
	_ = client.Close()
	_ = up.Close()
	<-done
	s.log.Info("tunnel closed", "route", "-", "host", host, "duration_ms", millis(time.Since(start)),
		"bytes_sent", sent, "bytes_received", received)
}

// millis is a duration in milliseconds with microsecond precision, as logs show it.
func millis(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}
