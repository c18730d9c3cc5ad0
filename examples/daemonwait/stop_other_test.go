//go:build !linux && !windows

package main

import "testing"

// adoptOrphans cannot be done portably here.
func adoptOrphans() {}

// stopDaemon would need to wait for a process that is not our child, which
// only Linux (subreapers) and Windows (process handles) allow.
func stopDaemon(t *testing.T, pid int) {
	t.Skipf("cannot wait for daemon %d on this OS; kill it by hand", pid)
}
