//go:build unix || windows

package tokenpipe_test

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenpipe/tokenpipe"
)

// WatchdogInterval reads WATCHDOG_USEC for this process only, as
// sd_watchdog_enabled(3) does, and names a bad value.
func TestWatchdogInterval(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	for _, c := range []struct {
		usec, pid string // "-" for unset
		want      time.Duration
		bad       string // the variable the error names, if any
	}{
		{"-", "-", 0, ""},
		{"-", self, 0, ""},
		{"30000000", "-", 30 * time.Second, ""},
		{"30000000", self, 30 * time.Second, ""},
		{"1", self, time.Microsecond, ""},
		{"30000000", "1", 0, ""}, // another process's watchdog
		{"0", self, 0, "WATCHDOG_USEC"},
		{"", self, 0, "WATCHDOG_USEC"},
		{"-5", self, 0, "WATCHDOG_USEC"},
		{"+5", self, 0, "WATCHDOG_USEC"},
		{" 5", self, 0, "WATCHDOG_USEC"},
		{"5s", self, 0, "WATCHDOG_USEC"},
		{"9223372036854776", self, 0, "WATCHDOG_USEC"}, // overflows a Duration
		{"30000000", "x", 0, "WATCHDOG_PID"},
		{"30000000", "0", 0, "WATCHDOG_PID"},
		{"30000000", "", 0, "WATCHDOG_PID"},
		// sd_watchdog_enabled reads WATCHDOG_USEC first, and fails on a bad
		// one, whatever WATCHDOG_PID says.
		{"abc", "1", 0, "WATCHDOG_USEC"},
	} {
		t.Run(c.usec+","+c.pid, func(t *testing.T) {
			for key, v := range map[string]string{"WATCHDOG_USEC": c.usec, "WATCHDOG_PID": c.pid} {
				t.Setenv(key, v)
				if v == "-" {
					os.Unsetenv(key)
				}
			}
			got, err := tokenpipe.WatchdogInterval()
			switch {
			case c.bad == "" && (err != nil || got != c.want):
				t.Fatalf("got (%v, %v), want (%v, nil)", got, err, c.want)
			case c.bad != "" && (!errors.Is(err, os.ErrInvalid) || !strings.Contains(err.Error(), c.bad) || got != 0):
				t.Fatalf("got (%v, %v), want an error naming %s, matching os.ErrInvalid", got, err, c.bad)
			}
		})
	}
}

// Notify refuses a state that sd_notify cannot carry, whatever the socket.
func TestNotifyBadState(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "/nonexistent/socket")
	for name, state := range map[string]string{
		"empty":    "",
		"NUL":      "STATUS=a\x00b",
		"too long": "STATUS=" + strings.Repeat("x", 4090),
	} {
		if err := tokenpipe.Notify(state); !errors.Is(err, os.ErrInvalid) {
			t.Errorf("%s: got %v, want os.ErrInvalid", name, err)
		}
	}
}

// With no socket, ever, Notify says so: ErrNotExported.
func TestNotifyNotExported(t *testing.T) {
	freshReports(t)
	t.Setenv("NOTIFY_SOCKET", "")
	if err := tokenpipe.Notify("WATCHDOG=1"); !errors.Is(err, tokenpipe.ErrNotExported) {
		t.Fatalf("got %v, want ErrNotExported", err)
	}
}
