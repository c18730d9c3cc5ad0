package tokenpipe_test

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tokenpipe/tokenpipe"
)

// freshReports lets the test call Ready and Fail in-process as a new process
// would, and again for the tests after it.
func freshReports(t *testing.T) {
	tokenpipe.ResetReports()
	t.Cleanup(tokenpipe.ResetReports)
}

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

func TestNotifyParse(t *testing.T) {
	for _, tc := range []struct {
		name      string
		datagrams []string
		want      tokenpipe.NotifyState
	}{
		{"ready with status after it", []string{"READY=1\nSTATUS=up"}, tokenpipe.NotifyState{Ready: true, Status: "up"}},
		{"last status counts", []string{"STATUS=a", "STATUS=b\n", "READY=1"}, tokenpipe.NotifyState{Ready: true, Status: "b"}},
		{"errno", []string{"STATUS=bad\nERRNO=5"}, tokenpipe.NotifyState{Failed: true, Errno: 5, Value: "5", Status: "bad"}},
		{"unknown keys", []string{"MAINPID=1\nEXTEND_TIMEOUT_USEC=5\nWATCHDOG=1\nBARRIER=1\nX_Y=z"}, tokenpipe.NotifyState{}},
		{"malformed lines", []string{"READY\n=1\nREADY=0\nREADY=yes\nREADY=1 \n\n\nerrno=5\nERRNO\n ERRNO=5"}, tokenpipe.NotifyState{}},
		// The first decisive line counts, as start-stop-daemon reads them.
		{"ready, then errno", []string{"READY=1\nERRNO=5\nSTATUS=s"}, tokenpipe.NotifyState{Ready: true, Status: "s"}},
		{"errno, then ready", []string{"ERRNO=5\nREADY=1"}, tokenpipe.NotifyState{Failed: true, Errno: 5, Value: "5"}},
		{"errno in a later datagram", []string{"READY=1", "ERRNO=5"}, tokenpipe.NotifyState{Ready: true}},
		// Every ERRNO= line is a failure, as start-stop-daemon exits on
		// each; the errno is what its parse_unsigned makes of the value.
		{"errno with leading zero", []string{"ERRNO=05"}, tokenpipe.NotifyState{Failed: true, Errno: 5, Value: "05"}},
		{"errno with a sign", []string{"ERRNO=+7"}, tokenpipe.NotifyState{Failed: true, Errno: 7, Value: "+7"}},
		{"errno after a space", []string{"ERRNO= 5"}, tokenpipe.NotifyState{Failed: true, Errno: 5, Value: " 5"}},
		{"errno after a tab", []string{"ERRNO=\t5"}, tokenpipe.NotifyState{Failed: true, Errno: 5, Value: "\t5"}},
		{"errno INT_MAX", []string{"ERRNO=2147483647"}, tokenpipe.NotifyState{Failed: true, Errno: 2147483647, Value: "2147483647"}},
		{"errno past INT_MAX", []string{"ERRNO=2147483648"}, tokenpipe.NotifyState{Failed: true, Errno: -1, Value: "2147483648"}},
		{"errno far past", []string{"ERRNO=99999999999999999999"}, tokenpipe.NotifyState{Failed: true, Errno: -1, Value: "99999999999999999999"}},
		{"errno 0", []string{"ERRNO=0"}, tokenpipe.NotifyState{Failed: true, Errno: 0, Value: "0"}},
		{"errno -0", []string{"ERRNO=-0"}, tokenpipe.NotifyState{Failed: true, Errno: 0, Value: "-0"}},
		{"errno negative", []string{"ERRNO=-5"}, tokenpipe.NotifyState{Failed: true, Errno: -1, Value: "-5"}},
		{"errno empty", []string{"ERRNO="}, tokenpipe.NotifyState{Failed: true, Errno: -1, Value: ""}},
		{"errno with a space after", []string{"ERRNO=5 "}, tokenpipe.NotifyState{Failed: true, Errno: -1, Value: "5 "}},
		{"errno in hex", []string{"ERRNO=0x5"}, tokenpipe.NotifyState{Failed: true, Errno: -1, Value: "0x5"}},
		{"errno not a number", []string{"ERRNO=abc"}, tokenpipe.NotifyState{Failed: true, Errno: -1, Value: "abc"}},
		{"NUL ignores the whole datagram", []string{"STATUS=x\x00\nREADY=1", "READY=1\x00\x00"}, tokenpipe.NotifyState{}},
		{"one trailing NUL is allowed", []string{"STATUS=up\nREADY=1\x00"}, tokenpipe.NotifyState{Ready: true, Status: "up"}},
		{"invalid UTF-8 in status", []string{"STATUS=a\xffb"}, tokenpipe.NotifyState{Status: "a\uFFFDb"}},
		{"CRLF is not a line ending", []string{"READY=1\r\n"}, tokenpipe.NotifyState{}},
		{"empty", []string{"", "\n"}, tokenpipe.NotifyState{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s := tokenpipe.ParseNotify(tc.datagrams...); s != tc.want {
				t.Fatalf("got %+v, want %+v", s, tc.want)
			}
		})
	}
}

func TestNotifyFormat(t *testing.T) {
	for _, tc := range []struct {
		status string
		errno  int
		ready  bool
		want   string
	}{
		{"up", 0, true, "STATUS=up\nREADY=1\n"},
		{"", 0, true, "READY=1\n"},
		{"no such file", 2, false, "STATUS=no such file\nERRNO=2\n"},
		{"two\nlines\r\x00READY=1", 5, false, "STATUS=two lines  READY=1\nERRNO=5\n"},
	} {
		if got := string(tokenpipe.FormatNotify(tc.status, tc.errno, tc.ready)); got != tc.want {
			t.Errorf("formatNotify(%q, %d, %v) = %q, want %q", tc.status, tc.errno, tc.ready, got, tc.want)
		}
		s := tokenpipe.ParseNotify(string(tokenpipe.FormatNotify(tc.status, tc.errno, tc.ready)))
		if s.Ready != (tc.ready && tc.errno == 0) || s.Failed != (tc.errno != 0) || s.Errno != tc.errno {
			t.Errorf("parsing formatNotify(%q, %d, %v) gave %+v", tc.status, tc.errno, tc.ready, s)
		}
	}
}

// A status too long for one message is cut, at a character boundary, so that
// the message keeps its READY=1 or ERRNO= and fits what systemd reads.
func TestNotifyFormatLongStatus(t *testing.T) {
	for _, long := range []string{strings.Repeat("x", 10000), strings.Repeat("é", 5000), strings.Repeat("€", 3000)} {
		for _, errno := range []int{0, 5} {
			msg := tokenpipe.FormatNotify(long, errno, true)
			if len(msg) > tokenpipe.MaxNotifyMessage || !utf8.Valid(msg) {
				t.Fatalf("message of %d bytes (valid UTF-8: %v)", len(msg), utf8.Valid(msg))
			}
			s := tokenpipe.ParseNotify(string(msg))
			if !s.Decided() || s.Errno != errno || !strings.HasPrefix(long, s.Status) || len(s.Status) < tokenpipe.MaxNotifyMessage-30 {
				t.Fatalf("parsed %d-byte status, errno %d, decided %v", len(s.Status), s.Errno, s.Decided())
			}
		}
	}
}
