//go:build !linux

package main

import "time"

// pace calls send(i, at) for i in [0, n), each at its time start + i×interval.
func pace(n int, interval time.Duration, send func(i int, at time.Time)) {
	start := time.Now().Add(20 * time.Millisecond)
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(at))
		send(i, at)
	}
}
