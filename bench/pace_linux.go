package main

import (
	"runtime"
	"syscall"
	"time"
)

// pace calls send(i, at) for i in [0, n), each at its time start + i×interval, from a goroutine on a
// thread of its own that sleeps with nanosleep and a 1 µs timer slack: Go's timers wake ~0.5 ms late on
// this kernel, which would add that much to every latency measured from a request's due time.
func pace(n int, interval time.Duration, send func(i int, at time.Time)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		const prSetTimerSlack = 29
		_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, 1000, 0)
		start := time.Now().Add(20 * time.Millisecond)
		for i := range n {
			at := start.Add(time.Duration(i) * interval)
			if wait := time.Until(at); wait > 0 {
				ts := syscall.NsecToTimespec(int64(wait))
				_ = syscall.Nanosleep(&ts, nil)
			}
			send(i, at)
		}
	}()
	<-done
}
