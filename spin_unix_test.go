//go:build unix

package tokenpipe

import (
	"runtime"
	"testing"
)

// The spin policy that the README states: never with one P; with more,
// until spinGiveUp spins in a row found nothing, then on every spinProbe-th
// wait only.
func TestSpinPolicy(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var s sysFile
	if s.shouldSpin() {
		t.Error("a reader spins with GOMAXPROCS=1, delaying the goroutine that would write")
	}
	runtime.GOMAXPROCS(2)
	if !s.shouldSpin() {
		t.Error("a reader does not spin with GOMAXPROCS=2 and no failed spin")
	}
	s.spinFails.Store(spinGiveUp)
	spins := 0
	for range 4 * spinProbe {
		if s.shouldSpin() {
			spins++
		}
	}
	if spins != 4 {
		t.Errorf("after %d failed spins, %d of %d waits spin, want 4", spinGiveUp, spins, 4*spinProbe)
	}
}
