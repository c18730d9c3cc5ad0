package main

import (
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// adoptOrphans makes this process the subreaper of its descendants, so that
// a daemon whose parent exited becomes our child and can be waited for.
func adoptOrphans() {
	unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// stopDaemon sends the daemon SIGTERM and waits until it has exited cleanly.
func stopDaemon(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatalf("kill %d: %v", pid, err)
	}
	var status syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &status, 0, nil); err != nil {
		t.Fatalf("waiting for daemon %d: %v", pid, err)
	}
	if !status.Exited() || status.ExitStatus() != 0 {
		t.Fatalf("daemon %d ended with status %v after SIGTERM, want a clean exit", pid, status)
	}
}

// waitExited reaps the adopted daemon pid, whatever its status.
func waitExited(t *testing.T, pid int) {
	t.Helper()
	var status syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &status, 0, nil); err != nil {
		t.Fatalf("waiting for daemon %d: %v", pid, err)
	}
}
