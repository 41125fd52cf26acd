package logging

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gate is an output that records what reaches it and can be held shut, like a stderr nobody reads.
type gate struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	writes  int
	waiting int // bytes of writes held at the shut gate
	open    chan struct{}
}

func newGate(open bool) *gate {
	g := &gate{open: make(chan struct{})}
	if open {
		close(g.open)
	}
	return g
}

func (g *gate) Write(p []byte) (int, error) {
	g.mu.Lock()
	g.waiting += len(p)
	g.mu.Unlock()
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	g.waiting -= len(p)
	g.writes++
	return g.buf.Write(p)
}

// held is the largest number of bytes a single write could be holding at the shut gate: all of them.
func (g *gate) held() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiting
}

func (g *gate) String() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.String()
}

func (g *gate) Writes() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.writes
}

// Lines from many goroutines all arrive, whole, each goroutine's in its order, once Close returns.
func TestWriterLosesNoLineAndKeepsEachWhole(t *testing.T) {
	out := newGate(true)
	w := NewWriter(out, time.Hour) // only Close and a full buffer write
	const writers, lines = 8, 5000
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range lines {
				_, _ = fmt.Fprintf(w, "writer=%d line=%06d %s\n", g, i, strings.Repeat("x", i%200))
			}
		}()
	}
	wg.Wait()
	w.Close()
	next := make([]int, writers)
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	require.Len(t, got, writers*lines)
	for _, l := range got {
		var g, i int
		var rest string
		_, err := fmt.Sscanf(l, "writer=%d line=%d %s", &g, &i, &rest)
		if i%200 == 0 {
			rest, err = "", nil // no x to scan
		}
		require.NoError(t, err, l)
		require.Equal(t, next[g], i, "writer %d out of order", g)
		require.Equal(t, strings.Repeat("x", i%200), rest)
		next[g]++
	}
	assert.Greater(t, out.Writes(), 1, "a full buffer is written before Close")
	assert.Less(t, out.Writes(), writers*lines/100, "lines are written in batches")
}

// A Write returns while the output is stuck: the caller never waits for the log.
func TestWriterDoesNotWaitForTheOutput(t *testing.T) {
	out := newGate(false)
	w := NewWriter(out, time.Millisecond)
	wrote := make(chan struct{})
	go func() {
		for i := range 100 {
			_, _ = fmt.Fprintf(w, "line %d\n", i)
		}
		close(wrote)
	}()
	select {
	case <-wrote:
	case <-time.After(10 * time.Second):
		t.Fatal("Write waited for a blocked output")
	}
	close(out.open)
	w.Close()
	assert.Equal(t, 100, strings.Count(out.String(), "\n"))
}

// Without Close, a line reaches the output within the interval; the test waits on that, with a deadline.
func TestWriterFlushesOnATimer(t *testing.T) {
	out := newGate(true)
	w := NewWriter(out, 20*time.Millisecond)
	defer w.Close()
	_, _ = w.Write([]byte("first\n"))
	require.Eventually(t, func() bool { return out.String() == "first\n" }, 10*time.Second, time.Millisecond)
	_, _ = w.Write([]byte("second\n"))
	require.Eventually(t, func() bool { return out.String() == "first\nsecond\n" }, 10*time.Second, time.Millisecond)
}

// When the output is slower than the lines, writers wait for it rather than lines being dropped or the
// buffer growing without bound.
func TestWriterHoldsBackWritersWhenTheBufferIsFull(t *testing.T) {
	out := newGate(false)
	w := NewWriter(out, time.Millisecond)
	line := []byte(strings.Repeat("y", 1023) + "\n")
	wrote := make(chan int, 1)
	go func() {
		n := 0
		for range 4 * blockAt / len(line) {
			_, _ = w.Write(line)
			n++
		}
		wrote <- n
	}()
	// The buffer fills to blockAt, and the Write that reaches it writes the buffer itself, so it waits on
	// the stuck output too. Either the writer goroutine took a first batch before that (the buffer then
	// holds blockAt), or it had not run yet and the Write took everything to the gate itself.
	buffered := func() int {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.buf)
	}
	require.Eventually(t, func() bool { return buffered() >= blockAt || out.held() >= blockAt }, 10*time.Second, time.Millisecond)
	assert.Less(t, buffered(), blockAt+len(line), "the buffer stops growing at its bound")
	assert.Less(t, buffered()+out.held(), 2*(blockAt+len(line)), "what is taken stops growing at its bound")
	select {
	case n := <-wrote:
		t.Fatalf("all %d lines were taken while the output was stuck", n)
	default: // the only writer is waiting in Write: nothing more can be buffered
	}
	close(out.open)
	n := <-wrote
	w.Close()
	assert.Equal(t, n*len(line), len(out.String()))
}

// After Close, a Write goes straight to the output.
func TestWriterAfterCloseWritesThrough(t *testing.T) {
	out := newGate(true)
	w := NewWriter(out, time.Hour)
	_, _ = w.Write([]byte("before\n"))
	w.Close()
	w.Close()
	_, _ = w.Write([]byte("after\n"))
	assert.Equal(t, "before\nafter\n", out.String())
}

func TestNewRejectsUnknownLevelsAndFormats(t *testing.T) {
	_, _, err := New(&bytes.Buffer{}, "loud", "text", false)
	assert.EqualError(t, err, `-log-level "loud": want debug, info, warn or error`)
	_, _, err = New(&bytes.Buffer{}, "info", "xml", false)
	assert.EqualError(t, err, `-log-format "xml": want text or json`)
	var out bytes.Buffer
	log, closeLog, err := New(&out, "warn", "json", true)
	require.NoError(t, err)
	log.Info("dropped by level")
	log.Warn("kept", "k", "v")
	closeLog()
	assert.Contains(t, out.String(), `"msg":"kept","k":"v"`)
	assert.NotContains(t, out.String(), "dropped")
}
