package testkit

import (
	"testing"
	"time"
)

// WaitTimeout is how long WaitFor waits: long, because a loaded machine is slow, and a test that passes
// never waits it out.
const WaitTimeout = 20 * time.Second

// WaitFor polls cond until it holds, and fails t after WaitTimeout, saying what it waited for.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	WaitForShowing(t, what, cond, nil)
}

// WaitForShowing is WaitFor whose failure also shows state(): what the test saw instead (a log, a screen).
func WaitForShowing(t testing.TB, what string, cond func() bool, state func() string) {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			if state != nil {
				t.Fatalf("waited %s for %s; instead:\n%s", WaitTimeout, what, state())
			}
			t.Fatalf("waited %s for %s", WaitTimeout, what)
		}
		<-poll.C
	}
}
