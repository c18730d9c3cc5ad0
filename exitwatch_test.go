//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package tokenpipe_test

import (
	"io"
	"os/exec"
	"testing"
	"time"

	"github.com/tokenpipe/tokenpipe"
)

// The watch sees a child exit, and leaves it for cmd.Wait to reap.
func TestExitWatch(t *testing.T) {
	leaks := watchEveryDescriptor(t)
	cmd := helperCommand(t, "live-until-stdin-closes")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w, err := tokenpipe.WatchExit(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.Exited():
		t.Fatal("the child was seen to exit while it waits for its standard input")
	default:
	}
	stdin.Close()
	select {
	case <-w.Exited():
	case <-time.After(hangGuard):
		t.Fatalf("the child's exit was not seen after %v", hangGuard)
	}
	w.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("cmd.Wait after the watch: %v (the watch must not reap)", err)
	}

	// A child that has exited, unreaped, before the watch began is seen
	// too. (Its standard output at end of stream shows it is exiting.)
	cmd = exec.Command("true")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, stdout)
	w, err = tokenpipe.WatchExit(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.Exited():
	case <-time.After(hangGuard):
		t.Fatalf("the exit of a child that had exited was not seen after %v", hangGuard)
	}
	w.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("cmd.Wait after the watch: %v (the watch must not reap)", err)
	}

	// A watch closed before the child exits stops.
	cmd = helperCommand(t, "live-until-stdin-closes")
	stdin, _ = cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w, err = tokenpipe.WatchExit(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	stdin.Close()
	cmd.Wait()
	leaks.check(t)
}
