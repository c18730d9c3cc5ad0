//go:build unix

package tokenpipe_test

import (
	"errors"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/tokenpipe/tokenpipe"
	"golang.org/x/sys/unix"
)

func init() {
	// make-without-stdio closes its standard streams, as a daemon that
	// detaches does, then makes pipes and writes to one whose read end is
	// closed. Its exit code says what went wrong; SIGPIPE kills it.
	register("make-without-stdio", func() int {
		for fd := range 3 {
			unix.Close(fd)
		}
		for range 2 {
			p, err := tokenpipe.Make()
			if err != nil {
				return 10
			}
			r, w := p.TakeReadEnd(), p.TakeWriteEnd()
			if tokenpipe.EndHandle(r) <= 2 || tokenpipe.EndHandle(w) <= 2 {
				return 11
			}
			r.Close()
			if err := w.TokenWrite(1); !errors.Is(err, io.ErrClosedPipe) {
				return 12
			}
			w.Close()
		}
		return 0
	})
}

// An end is never descriptor 0, 1 or 2, even when Make is called with the
// standard streams closed: a broken pipe on 1 or 2 killed the process with
// SIGPIPE, as os.File treats those as standard output and error.
func TestMakeNeverUsesStdio(t *testing.T) {
	cmd := helperCommand(t, "make-without-stdio")
	cmd.Stderr = nil
	err := cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("helper with its standard streams closed: %v (exit %d; 11: an end was 0-2, 12: no io.ErrClosedPipe, -1: killed by a signal)", err, code)
	}
}

// A read or write that need not wait does not touch the runtime poller: an
// end joins it only when a call would block, so a daemon's report end, which
// only writes, never does.
func TestPollerOnlyWhenWaiting(t *testing.T) {
	r, w := mustMake(t)
	for tok := range byte(100) {
		if err := w.TokenWrite(tok); err != nil {
			t.Fatal(err)
		}
		if got, err := r.TokenRead(); got != tok || err != nil {
			t.Fatalf("got (%d, %v), want (%d, nil)", got, err, tok)
		}
	}
	if tokenpipe.JoinedPoller(r) || tokenpipe.JoinedPoller(w) {
		t.Fatalf("reads and writes that did not wait joined the poller: read end %v, write end %v",
			tokenpipe.JoinedPoller(r), tokenpipe.JoinedPoller(w))
	}
	// A read of the empty pipe must wait, so it must join.
	_, done := readAsync(r.TokenRead)
	for deadline := time.Now().Add(hangGuard); !tokenpipe.JoinedPoller(r); runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatal("a read that waits did not join the poller, so nothing could wake it")
		}
	}
	if err := w.TokenWrite(7); err != nil {
		t.Fatal(err)
	}
	if res := await(t, done, "read that waited"); res.tok != 7 || res.err != nil {
		t.Fatalf("read that waited: got (%d, %v), want (7, nil)", res.tok, res.err)
	}
	if tokenpipe.JoinedPoller(w) {
		t.Error("the write end joined the poller without ever waiting")
	}
}
