package tokenpipe_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/tokenpipe/tokenpipe"
)

// On Windows NOTIFY_SOCKET is ignored, as the README says: there are no
// datagram AF_UNIX sockets to send to. Ready neither uses nor unsets it, and
// StartAndWait does not set it for the child.
func TestNotifySocketIgnoredOnWindows(t *testing.T) {
	freshReports(t)
	t.Setenv(readyEnv, "")
	os.Unsetenv(readyEnv)
	t.Setenv("NOTIFY_SOCKET", `C:\nonexistent\socket`)
	if err := tokenpipe.Ready(readyEnv, "x"); !errors.Is(err, tokenpipe.ErrNotExported) {
		t.Fatalf("Ready: got %v, want ErrNotExported", err)
	}
	if os.Getenv("NOTIFY_SOCKET") == "" {
		t.Fatal("Ready unset NOTIFY_SOCKET")
	}
	os.Unsetenv("NOTIFY_SOCKET")
	cmd, stdin := handshakeCommand(t, "report-ready", "plain")
	if _, err := startAndWait(cmd); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	cmd.Wait()
	for _, kv := range cmd.Env {
		if strings.HasPrefix(strings.ToUpper(kv), "NOTIFY_SOCKET=") {
			t.Fatalf("StartAndWait set %s", kv)
		}
	}
}

// Notify has no socket to send to on Windows: ErrNotExported, whatever
// NOTIFY_SOCKET holds.
func TestNotifyOnWindows(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", `C:\nonexistent\socket`)
	if err := tokenpipe.Notify("WATCHDOG=1"); !errors.Is(err, tokenpipe.ErrNotExported) {
		t.Fatalf("got %v, want ErrNotExported", err)
	}
}
