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
		{"errno", []string{"STATUS=bad\nERRNO=5"}, notifyState{failed: true, errno: 5, value: "5", status: "bad"}},
		{"unknown keys", []string{"MAINPID=1\nEXTEND_TIMEOUT_USEC=5\nWATCHDOG=1\nBARRIER=1\nX_Y=z"}, notifyState{}},
		{"malformed lines", []string{"READY\n=1\nREADY=0\nREADY=yes\nREADY=1 \n\n\nerrno=5\nERRNO\n ERRNO=5"}, notifyState{}},
		// The first decisive line counts, as start-stop-daemon reads them.
		{"ready, then errno", []string{"READY=1\nERRNO=5\nSTATUS=s"}, notifyState{ready: true, status: "s"}},
		{"errno, then ready", []string{"ERRNO=5\nREADY=1"}, notifyState{failed: true, errno: 5, value: "5"}},
		{"errno in a later datagram", []string{"READY=1", "ERRNO=5"}, notifyState{ready: true}},
		// Every ERRNO= line is a failure, as start-stop-daemon exits on
		// each; the errno is what its parse_unsigned makes of the value.
		{"errno with leading zero", []string{"ERRNO=05"}, notifyState{failed: true, errno: 5, value: "05"}},
		{"errno with a sign", []string{"ERRNO=+7"}, notifyState{failed: true, errno: 7, value: "+7"}},
		{"errno after a space", []string{"ERRNO= 5"}, notifyState{failed: true, errno: 5, value: " 5"}},
		{"errno after a tab", []string{"ERRNO=\t5"}, notifyState{failed: true, errno: 5, value: "\t5"}},
		{"errno INT_MAX", []string{"ERRNO=2147483647"}, notifyState{failed: true, errno: 2147483647, value: "2147483647"}},
		{"errno past INT_MAX", []string{"ERRNO=2147483648"}, notifyState{failed: true, errno: -1, value: "2147483648"}},
		{"errno far past", []string{"ERRNO=99999999999999999999"}, notifyState{failed: true, errno: -1, value: "99999999999999999999"}},
		{"errno 0", []string{"ERRNO=0"}, notifyState{failed: true, errno: 0, value: "0"}},
		{"errno -0", []string{"ERRNO=-0"}, notifyState{failed: true, errno: 0, value: "-0"}},
		{"errno negative", []string{"ERRNO=-5"}, notifyState{failed: true, errno: -1, value: "-5"}},
		{"errno empty", []string{"ERRNO="}, notifyState{failed: true, errno: -1, value: ""}},
		{"errno with a space after", []string{"ERRNO=5 "}, notifyState{failed: true, errno: -1, value: "5 "}},
		{"errno in hex", []string{"ERRNO=0x5"}, notifyState{failed: true, errno: -1, value: "0x5"}},
		{"errno not a number", []string{"ERRNO=abc"}, notifyState{failed: true, errno: -1, value: "abc"}},
		{"NUL ignores the whole datagram", []string{"STATUS=x\x00\nREADY=1", "READY=1\x00\x00"}, notifyState{}},
		{"one trailing NUL is allowed", []string{"STATUS=up\nREADY=1\x00"}, notifyState{ready: true, status: "up"}},
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
		if s.ready != (tc.ready && tc.errno == 0) || s.failed != (tc.errno != 0) || s.errno != tc.errno {
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
