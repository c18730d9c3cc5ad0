package tokenpipe_test

import (
	"errors"
	"os"
	"testing"

	"github.com/tokenpipe/tokenpipe"
)

// Close also wakes a writer blocked on a full pipe. Linux tells the pipe's
// capacity, so the test can fill it and know the next write blocks.
func TestCloseUnblocksWriter(t *testing.T) {
	r, w := mustMake(t)
	for n := tokenpipe.PipeCapacity(t, w); n > 0; n-- {
		if err := w.TokenWrite(1); err != nil {
			t.Fatal(err)
		}
	}
	started, done := readAsync(func() (byte, error) { return 0, w.TokenWrite(2) })
	<-started
	w.Close()
	if res := await(t, done, "write to a full pipe after Close"); !errors.Is(res.err, os.ErrClosed) {
		t.Fatalf("got %v, want an error matching os.ErrClosed", res.err)
	}
	if !r.IsOpen() {
		t.Fatal("the read end was closed")
	}
}
