package testkit

import (
	"strings"
	"testing"
)

// AllocsSuffix ends the name of every test that counts allocations: .ci/run runs those tests once more
// without -race (go test -run 'Allocs$'), since under -race they are skipped.
const AllocsSuffix = "Allocs"

// AllocsPerRun is testing.AllocsPerRun for a test named ...Allocs. Under -race it skips the rest of the
// test; a test named otherwise fails, because CI's run without -race would never select it.
func AllocsPerRun(t testing.TB, runs int, f func()) float64 {
	t.Helper()
	top, _, _ := strings.Cut(t.Name(), "/")
	if !strings.HasSuffix(top, AllocsSuffix) {
		t.Fatalf("%s counts allocations: name it ...%s, so that .ci/run's run without -race selects it", top, AllocsSuffix)
	}
	if raceEnabled {
		t.Skip("allocation counts do not hold under -race (sync.Pool drops items on purpose); .ci/run counts them without it")
	}
	return testing.AllocsPerRun(runs, f)
}
