//go:build race

package testkit

// raceEnabled is set when built with -race, where sync.Pool drops items at random on purpose, so
// allocation counts that rely on a pool do not hold.
const raceEnabled = true
