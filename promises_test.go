//go:build unix || windows

package tokenpipe_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenpipe/tokenpipe"
)

// The promises that a hostile review broke once (issue 7), each tried the
// way it was broken.

// ExportTo ends the reads under way with ErrExported before it hands the end
// over: no read in the parent takes a token meant for the child, none is
// left in a system call that Close cannot end, and Close does not hang. (It
// did, in about 3% of rounds, when a reader retried on the descriptor that
// ExportTo had made blocking.)
func TestExportToEndsReadsUnderWay(t *testing.T) {
	for round := range 200 {
		r, w := mustMake(t)
		_, plain := readAsync(func() (byte, error) { return r.TokenReadContext(context.Background()) })
		timeout := time.Duration(round%4) * time.Millisecond
		_, timed := readAsync(func() (byte, error) { return readWithin(t, r, timeout) })
		if err := r.ExportTo(exec.Command("x"), endEnv); err != nil {
			t.Fatalf("round %d: ExportTo: %v", round, err)
		}
		// This token is the child's: no reader here may take it.
		if err := w.TokenWrite(1); err != nil {
			t.Fatal(err)
		}
		if res := await(t, plain, "read beside ExportTo"); !errors.Is(res.err, tokenpipe.ErrExported) {
			t.Fatalf("round %d: read beside ExportTo got (%d, %v), want ErrExported", round, res.tok, res.err)
		}
		if res := await(t, timed, "read with a deadline beside ExportTo"); !errors.Is(res.err, tokenpipe.ErrExported) && res.err != context.DeadlineExceeded {
			t.Fatalf("round %d: read with a deadline beside ExportTo got (%d, %v), want ErrExported or DeadlineExceeded", round, res.tok, res.err)
		}
		closeWithin(t, r)
	}
}

// closeWithin closes e, failing the test if Close hangs.
func closeWithin(t *testing.T, e *tokenpipe.TokenPipeEnd) {
	t.Helper()
	closed := make(chan error, 1)
	go func() { closed <- e.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(hangGuard):
		t.Fatalf("Close still blocked after %v", hangGuard)
	}
}

// FromEnv refuses a number that an end of this process holds: two ends
// would close it twice, the second time closing whatever reused it.
func TestFromEnvRefusesOwnedEnd(t *testing.T) {
	r, w := mustMake(t)
	for _, e := range []*tokenpipe.TokenPipeEnd{r, w} {
		v := strconv.FormatUint(uint64(tokenpipe.OSHandle(t, e)), 10)
		err := refused(t, v)
		if !strings.Contains(err.Error(), "another end of this process") {
			t.Errorf("error %q does not say that an end of this process holds %s", err, v)
		}
	}
	if err := w.TokenWrite(3); err != nil {
		t.Fatalf("after the refusals: %v", err)
	}
	if tok, err := r.TokenRead(); tok != 3 || err != nil {
		t.Fatalf("after the refusals: got (%d, %v), want (3, nil)", tok, err)
	}
}

// Readers wait, without spinning, while another reader's context ends: each
// cancellation costs each waiting reader a retry or two, not a loop for as
// long as the cancelled reader takes to return. (They looped: 41.8 million
// retries in 8.7 s.)
func TestReadersWaitWhileAnotherCancels(t *testing.T) {
	const waiting, cancels = 4, 50
	r, w := mustMake(t)
	dones := make([]chan result, waiting)
	for i := range dones {
		var started chan struct{}
		started, dones[i] = readAsync(r.TokenRead)
		<-started
	}
	before := tokenpipe.InterruptedReads()
	for range cancels {
		if tok, err := readWithin(t, r, time.Millisecond); err != context.DeadlineExceeded {
			t.Fatalf("cancelled read: got (%d, %v), want context.DeadlineExceeded", tok, err)
		}
	}
	// One for the cancelled reader itself, and a retry or two for each of
	// the others, per cancellation.
	if retries, limit := tokenpipe.InterruptedReads()-before, int64(cancels*(1+2*waiting)); retries > limit {
		t.Errorf("%d interrupted reads for %d cancellations beside %d waiting readers, want at most %d: waiting readers spin", retries, cancels, waiting, limit)
	}
	sum := 0
	for i := range waiting {
		if err := w.TokenWrite(byte(i + 1)); err != nil {
			t.Fatal(err)
		}
	}
	for _, done := range dones {
		res := await(t, done, "waiting reader")
		if res.err != nil {
			t.Fatalf("waiting reader: %v", res.err)
		}
		sum += int(res.tok)
	}
	if want := waiting * (waiting + 1) / 2; sum != want {
		t.Fatalf("waiting readers' tokens add up to %d, want %d", sum, want)
	}
}

// ExportTo and Close racing on one end: ExportTo either hands the end over
// or says it is closed, and never goes on to change a descriptor that Close
// has closed (and that may have been reused).
func TestExportToRacingClose(t *testing.T) {
	for range 200 {
		r, _ := mustMake(t)
		exported := make(chan error, 1)
		go func() { exported <- r.ExportTo(exec.Command("x"), endEnv) }()
		closeWithin(t, r)
		if err := <-exported; err != nil && !errors.Is(err, os.ErrClosed) {
			t.Fatalf("ExportTo racing Close: got %v, want nil or os.ErrClosed", err)
		}
	}
}
