package main

import (
	"os"
	"testing"
)

// adoptOrphans does nothing on Windows, where any process can wait for any
// other through a handle.
func adoptOrphans() {}

// stopDaemon terminates the daemon and waits until it has exited. Windows has
// no SIGTERM to send to a detached process.
func stopDaemon(t *testing.T, pid int) {
	t.Helper()
	p, err := os.FindProcess(pid)
	if err != nil {
		t.Fatalf("daemon %d: %v", pid, err)
	}
	if err := p.Kill(); err != nil {
		t.Fatalf("terminating daemon %d: %v", pid, err)
	}
	if _, err := p.Wait(); err != nil {
		t.Fatalf("waiting for daemon %d: %v", pid, err)
	}
}
