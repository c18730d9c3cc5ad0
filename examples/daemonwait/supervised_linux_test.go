package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// hangGuard bounds the wait for start-stop-daemon: reaching it means it
// waited out its notify timeout, the very thing Fail prevents.
const hangGuard = 20 * time.Second

// startStopDaemon runs the program under start-stop-daemon --notify-await
// with args, and returns start-stop-daemon's exit code and output, and the
// daemon's pid. It runs a private copy of the test binary: start-stop-daemon
// takes any process running the same executable for the daemon, running
// already.
func startStopDaemon(t *testing.T, timeout int, args ...string) (int, string, int) {
	t.Helper()
	ssd, err := exec.LookPath("start-stop-daemon")
	if err != nil {
		ssd, err = exec.LookPath("/usr/sbin/start-stop-daemon")
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("start-stop-daemon is not installed, and CI must run this test: %v", err)
		}
		t.Skipf("start-stop-daemon is not installed (it comes with dpkg): %v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	daemonPath, pidfile := filepath.Join(dir, "daemonwait"), filepath.Join(dir, "pid")
	if err := os.WriteFile(daemonPath, data, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	cmd := exec.CommandContext(ctx, ssd, append([]string{"--start", "--background", "--notify-await",
		"--notify-timeout", strconv.Itoa(timeout), "--make-pidfile", "--pidfile", pidfile,
		"--exec", daemonPath, "--"}, args...)...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1", "GORACE=atexit_sleep_ms=0")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("start-stop-daemon still running after %v (its timeout: %ds): %s", hangGuard, timeout, out)
	}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	pidText, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(pidText)))
	if err != nil {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), string(out), pid
}

// Under start-stop-daemon the program is the daemon and reports with the
// same Ready and Fail: ready makes start-stop-daemon exit 0, failure makes
// it fail at once, not after its timeout.
func TestUnderStartStopDaemon(t *testing.T) {
	t.Run("ready", func(t *testing.T) {
		code, out, pid := startStopDaemon(t, 10, "-lifetime", "1m")
		if code != 0 {
			t.Fatalf("start-stop-daemon exited %d: %s", code, out)
		}
		stopDaemon(t, pid) // adopted: this process is the subreaper
	})
	t.Run("fail", func(t *testing.T) {
		code, out, pid := startStopDaemon(t, 60, "-fail")
		if code == 0 || !strings.Contains(out, "failed to initialize") {
			t.Fatalf("start-stop-daemon exited %d, want a failure: %s", code, out)
		}
		waitExited(t, pid)
	})
}
