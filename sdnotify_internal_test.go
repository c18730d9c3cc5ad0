package tokenpipe

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNotifyParse(t *testing.T) {
	for _, tc := range []struct {
		name      string
		datagrams []string
		want      notifyState
	}{
		{"ready with status after it", []string{"READY=1\nSTATUS=up"}, notifyState{ready: true, status: "up"}},
		{"last status counts", []string{"STATUS=a", "STATUS=b\n", "READY=1"}, notifyState{ready: true, status: "b"}},
		{"errno", []string{"STATUS=bad\nERRNO=5"}, notifyState{errno: 5, status: "bad"}},
		{"unknown keys", []string{"MAINPID=1\nEXTEND_TIMEOUT_USEC=5\nWATCHDOG=1\nBARRIER=1\nX_Y=z"}, notifyState{}},
		{"malformed lines", []string{"READY\n=1\nREADY=0\nREADY=yes\nREADY=1 \n\n\nERRNO=\nERRNO=0\nERRNO=-1\nERRNO=x\nERRNO=99999999999"}, notifyState{}},
		// start-stop-daemon fails on these, so they must not pass for
		// nothing before a READY=1.
		{"errno written otherwise", []string{"ERRNO=05"}, notifyState{errno: 5}},
		{"errno with a sign", []string{"ERRNO=+7"}, notifyState{errno: 7}},
		{"NUL ignores the whole datagram", []string{"STATUS=x\x00\nREADY=1"}, notifyState{}},
		{"invalid UTF-8 in status", []string{"STATUS=a\xffb"}, notifyState{status: "a\uFFFDb"}},
		{"CRLF is not a line ending", []string{"READY=1\r\n"}, notifyState{}},
		{"empty", []string{"", "\n"}, notifyState{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s notifyState
			for _, d := range tc.datagrams {
				s.parse([]byte(d))
			}
			if s != tc.want {
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
		if got := string(formatNotify(tc.status, tc.errno, tc.ready)); got != tc.want {
			t.Errorf("formatNotify(%q, %d, %v) = %q, want %q", tc.status, tc.errno, tc.ready, got, tc.want)
		}
		var s notifyState
		s.parse(formatNotify(tc.status, tc.errno, tc.ready))
		if s.ready != (tc.ready && tc.errno == 0) || s.errno != tc.errno {
			t.Errorf("parsing formatNotify(%q, %d, %v) gave %+v", tc.status, tc.errno, tc.ready, s)
		}
	}
}

// A status too long for one message is cut, at a character boundary, so that
// the message keeps its READY=1 or ERRNO= and fits what systemd reads.
func TestNotifyFormatLongStatus(t *testing.T) {
	for _, long := range []string{strings.Repeat("x", 10000), strings.Repeat("é", 5000), strings.Repeat("€", 3000)} {
		for _, errno := range []int{0, 5} {
			msg := formatNotify(long, errno, true)
			if len(msg) > maxNotifyMessage || !utf8.Valid(msg) {
				t.Fatalf("message of %d bytes (valid UTF-8: %v)", len(msg), utf8.Valid(msg))
			}
			var s notifyState
			s.parse(msg)
			if !s.decided() || s.errno != errno || !strings.HasPrefix(long, s.status) || len(s.status) < maxNotifyMessage-30 {
				t.Fatalf("parsed %d-byte status, errno %d, decided %v", len(s.status), s.errno, s.decided())
			}
		}
	}
}
