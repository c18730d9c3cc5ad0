package tokenpipe_test

import (
	"testing"
	"time"

	"github.com/tokenpipe/tokenpipe"
)

// An interrupt on an end (setInterrupted, what TokenReadContext does when
// its context ends) cancels a WriteFile under way on the handle, which may
// have put part of its bytes into the pipe: write goes on after those, and
// the reader gets every byte once. (It wrote all of them again.)
func TestInterruptedWriteWritesOnce(t *testing.T) {
	r, w := mustMake(t)
	const size = 1 << 15
	big := make([]byte, size)
	for i := range big {
		big[i] = byte(i % 251)
	}
	done := make(chan error, 1)
	go func() { done <- tokenpipe.WriteAll(w, big); w.Close() }()
	got := make([]byte, 0, 2*size)
	setInterrupted := tokenpipe.Interrupter(w)
	for i := 0; ; i++ {
		b, err := r.TokenRead()
		if err != nil {
			break
		}
		got = append(got, b)
		if i == 9999 {
			setInterrupted(true) // cancels the WriteFile under way
			time.Sleep(10 * time.Millisecond)
			setInterrupted(false)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(got) != size {
		t.Errorf("read %d bytes, wrote %d", len(got), size)
	}
	for i := range got {
		if i >= size || got[i] != byte(i%251) {
			t.Errorf("byte %d is %d, want %d: bytes repeated or lost", i, got[i], byte(i%251))
			break
		}
	}
}
