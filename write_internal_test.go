//go:build unix || windows

package tokenpipe

import (
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"
)

// internalPipe makes a pipe for the internal tests.
func internalPipe(t *testing.T) (r, w *TokenPipeEnd) {
	p, err := Make()
	if err != nil {
		t.Fatal(err)
	}
	r, w = p.TakeReadEnd(), p.TakeWriteEnd()
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// A large write that has filled the pipe and waits for room ends with
// os.ErrClosed when the end is closed, and with ErrExported when it is
// exported; what is in the pipe afterwards is no more than was written
// before.
func TestLargeWriteShut(t *testing.T) {
	for _, how := range []string{"close", "export"} {
		t.Run(how, func(t *testing.T) {
			r, w := internalPipe(t)
			big := make([]byte, 1<<20)
			done := make(chan error, 1)
			go func() { done <- w.writeAll("TokenWrite", big) }()
			// Wait until the pipe is full: a read returns at once.
			for !r.pending() {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(50 * time.Millisecond) // not for the verdict: lets the writer park
			want := os.ErrClosed
			switch how {
			case "close":
				w.Close()
			case "export":
				want = ErrExported
				cmd := exec.Command("true")
				if err := w.ExportTo(cmd, "X"); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case err := <-done:
				if !errors.Is(err, want) {
					t.Errorf("writeAll: %v, want %v", err, want)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("writeAll still blocked 20 s after the end was shut")
			}
		})
	}
}

// pending on a closed end, an exported end, an empty pipe, one with a
// token, and at end of stream.
func TestPending(t *testing.T) {
	r, w := internalPipe(t)
	if r.pending() {
		t.Error("pending on an empty pipe")
	}
	w.TokenWrite(7)
	if !r.pending() {
		t.Error("not pending with a token")
	}
	r.TokenRead()
	w.Close()
	if !r.pending() {
		t.Error("not pending at end of stream")
	}
	r.Close()
	if r.pending() {
		t.Error("pending on a closed end")
	}
	r2, _ := internalPipe(t)
	if err := r2.ExportTo(exec.Command("true"), "X"); err != nil {
		t.Fatal(err)
	}
	if r2.pending() {
		t.Error("pending on an exported end")
	}
}
