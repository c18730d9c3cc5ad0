package tokenpipe_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokenpipe/tokenpipe"
)

// s6Env is the variable the s6 run script sets to the notification-fd.
const s6Env = "MYD_READY_FD"

func init() {
	// hs-s6-ready and hs-s6-fail report as a daemon under s6-supervise
	// would, then stay up until s6 stops them with SIGTERM.
	register("hs-s6-ready", func() int {
		return serveUnderS6(tokenpipe.Ready(s6Env, "listening on 127.0.0.1:8080"))
	})
	register("hs-s6-fail", func() int {
		return serveUnderS6(tokenpipe.Fail(s6Env, errors.New("cannot bind: address in use")))
	})
	// hs-s6-fail-exit reports failure and exits 1, as the README's daemon
	// does.
	register("hs-s6-fail-exit", func() int {
		if err := tokenpipe.Fail(s6Env, errors.New("cannot bind: address in use")); err != nil {
			return helperExit(3, err)
		}
		recordReport()
		return 1
	})
}

// recordReport writes one line to the file "reports" in the service
// directory (s6 runs ./run there) for each report that went out.
func recordReport() {
	f, err := os.OpenFile("reports", os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		os.Exit(helperExit(3, err))
	}
	fmt.Fprintln(f, os.Getpid())
	f.Close()
}

func serveUnderS6(reportErr error) int {
	if reportErr != nil {
		return helperExit(3, reportErr)
	}
	// The test checks that the daemon did report, and once, not that it
	// crashed and was restarted.
	recordReport()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, hangGuard) // if the test dies
	defer cancel()
	<-ctx.Done()
	return 0
}

// A daemon that calls Ready is ready to s6 too; one that calls Fail and stays
// up is up but never ready; one that calls Fail and exits is restarted, as
// any service that dies is, and is never ready either: the README's s6
// promises.
func TestUnderS6(t *testing.T) {
	for _, tool := range []string{"s6-supervise", "s6-svwait", "s6-svc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("s6 is not installed (%v); CI installs it with apt-get install s6", err)
		}
	}
	t.Run("Ready", func(t *testing.T) {
		dir := s6Service(t, "hs-s6-ready")
		if code := s6(t, "s6-svwait", "-U", "-t", "5000", dir); code != 0 {
			t.Fatalf("s6-svwait -U exited %d, want 0: s6 did not see the daemon ready", code)
		}
		reportedOnce(t, dir)
	})
	t.Run("Fail", func(t *testing.T) {
		dir := s6Service(t, "hs-s6-fail")
		if code := s6(t, "s6-svwait", "-u", "-t", "5000", dir); code != 0 {
			t.Fatalf("s6-svwait -u exited %d, want 0: the daemon is not even up", code)
		}
		if code := s6(t, "s6-svwait", "-U", "-t", "1000", dir); code != 99 {
			t.Fatalf("s6-svwait -U exited %d, want 99 (timed out): s6 took a failure report for readiness", code)
		}
		reportedOnce(t, dir)
	})
	t.Run("Fail, then exit", func(t *testing.T) {
		dir := s6Service(t, "hs-s6-fail-exit")
		// s6-supervise waits a second before it restarts a service that
		// died within a second of starting.
		if code := s6(t, "s6-svwait", "-U", "-t", "3000", dir); code != 99 {
			t.Fatalf("s6-svwait -U exited %d, want 99 (timed out): s6 took a failure report for readiness", code)
		}
		b, err := os.ReadFile(filepath.Join(dir, "reports"))
		if n := strings.Count(string(b), "\n"); n < 2 {
			t.Fatalf("the daemon reported %d times (%v) in 3 s, want it restarted after each Fail", n, err)
		}
	})
}

// s6Service makes a service directory whose run script execs the helper with
// s6Env=3 and notification-fd 3, supervises it with s6-supervise until the
// test ends, and returns the directory once s6-svwait can watch it.
func s6Service(t *testing.T, helper string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "svc")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run := fmt.Sprintf("#!/bin/sh\n%s=3 %s=%s GORACE=atexit_sleep_ms=0 exec %s\n",
		s6Env, helperEnv, helper, shellQuote(exe))
	if err := os.WriteFile(filepath.Join(dir, "run"), []byte(run), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notification-fd"), []byte("3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sup := exec.Command("s6-supervise", dir)
	sup.Stdout, sup.Stderr = os.Stderr, os.Stderr
	if err := sup.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- sup.Wait() }()
	t.Cleanup(func() {
		s6(t, "s6-svc", "-xd", dir) // down, then s6-supervise exits
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("s6-supervise: %v", err)
			}
		case <-time.After(hangGuard):
			sup.Process.Kill()
			<-exited
			t.Errorf("s6-supervise still running %v after s6-svc -xd", hangGuard)
		}
	})
	// s6-svwait fails (111) until s6-supervise has written its status file,
	// and s6 offers nothing to wait on for that: poll for it.
	status := filepath.Join(dir, "supervise", "status")
	for deadline := time.Now().Add(hangGuard); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(status); err == nil {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("s6-supervise exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("s6-supervise wrote no %s in %v", status, hangGuard)
		}
	}
	return dir
}

// s6 runs an s6 tool and returns its exit code.
func s6(t *testing.T, name string, args ...string) int {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("%s: %v", name, err)
	}
	if len(out) > 0 {
		t.Logf("%s %s: %s", name, strings.Join(args, " "), out)
	}
	return exitCode(err)
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return 0
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// reportedOnce checks that the service's daemon reported, and only once: a
// daemon that crashed and was restarted by s6 would leave no line or several.
func reportedOnce(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile(dir + "/reports")
	if err != nil {
		t.Fatalf("the daemon did not report: %v", err)
	}
	if lines := strings.Count(string(b), "\n"); lines != 1 {
		t.Fatalf("the daemon reported %d times (restarted by s6?), want once", lines)
	}
}
