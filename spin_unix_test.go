//go:build unix

package tokenpipe

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// The spin policy that the README states: never with one P; with more,
// while reads have lately waited less than spinWhen on average. One long
// wait stops the spinning; a run of short ones brings it back.
func TestSpinPolicy(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var s sysFile
	if s.shouldSpin(runtime.GOMAXPROCS(0)) {
		t.Error("a reader spins with GOMAXPROCS=1, delaying the goroutine that would write")
	}
	runtime.GOMAXPROCS(2)
	if !s.shouldSpin(runtime.GOMAXPROCS(0)) {
		t.Error("a fresh end does not spin with GOMAXPROCS=2")
	}
	for range 100 {
		s.waited(5 * time.Microsecond) // a peer that answers at once
	}
	if !s.shouldSpin(runtime.GOMAXPROCS(0)) {
		t.Errorf("reads that waited 5 µs each do not spin (average %v)", time.Duration(s.waitAvg.Load()))
	}
	s.waited(time.Millisecond) // the peer has become slow
	if s.shouldSpin(runtime.GOMAXPROCS(0)) {
		t.Errorf("after a wait of 1 ms a read still spins (average %v): spins that cannot pay go on", time.Duration(s.waitAvg.Load()))
	}
	if short := quickWaitsToSpin(&s); short > 10 {
		t.Errorf("after a wait of 1 ms, %d waits of 20 µs before reads spin again, want at most 10", short)
	}
}

// A reader whose writer sends a token a millisecond stops spinning at the
// first long wait, on a real pipe: each spin there would only burn spinFor
// of CPU.
func TestSlowWriterStopsTheSpin(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	r, w := spinPipe(t)
	var rs, ws scratch
	for i := range 3 {
		readPacedBurst(t, r, w, &rs, &ws, 1)
		if r.shouldSpin(runtime.GOMAXPROCS(0)) {
			t.Fatalf("after %d reads that waited about 1 ms each, the next read would spin (average %v)", i+1, time.Duration(r.waitAvg.Load()))
		}
	}
}

// A read whose token is in the pipe already returns it without letting the
// other ready goroutines run first, as a read about to spin does: in a busy
// program each such yield can cost a time slice (up to 10 ms), and reading
// a 600-byte report took 770 ms. Each read here finds a
// goroutine ready to run on its P (the other P is kept busy), and the test
// counts the reads after which it has run.
func TestQueuedTokensDoNotYield(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	r, w := spinPipe(t)
	var rs, ws scratch
	// One wait puts the end in the poller, where every later read goes.
	readPacedBurst(t, r, w, &rs, &ws, 1)
	r.waitAvg.Store(0) // a quick peer: reads that wait spin
	if !r.shouldSpin(runtime.GOMAXPROCS(0)) {
		t.Fatal("a read on an end whose reads waited 0 on average would not spin")
	}
	var stop, busy atomic.Bool
	defer stop.Store(true)
	go func() { // keeps the other P, so that it cannot take the probe
		busy.Store(true)
		for !stop.Load() {
		}
	}()
	for !busy.Load() {
		runtime.Gosched()
	}
	const n = 16
	for range n {
		if err := w.write(tokenBytes[1:2], &ws); err != nil {
			t.Fatal(err)
		}
	}
	yielded := 0
	for range n {
		var ran atomic.Bool
		go ran.Store(true) // ready to run on this P
		if _, err := r.read(&rs); err != nil {
			t.Fatal(err)
		}
		if ran.Load() {
			yielded++
		}
		for !ran.Load() {
			runtime.Gosched()
		}
	}
	if yielded > n/2 {
		t.Errorf("%d of %d reads of a token already in the pipe let a ready goroutine run first", yielded, n)
	}
}

// A reader that polls a quiet pipe, each read ending with its context after
// a millisecond, stops spinning too: each spin there would only burn
// spinFor of CPU, on every read, for ever.
func TestTimedOutReadsStopTheSpin(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	p, err := Make()
	if err != nil {
		t.Fatal(err)
	}
	r, w := p.TakeReadEnd(), p.TakeWriteEnd()
	defer r.Close()
	defer w.Close()
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		_, err := r.TokenReadContext(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("read on a quiet pipe: %v, want context.DeadlineExceeded", err)
		}
	}
	if s := r.f.Load().sys; s.shouldSpin(runtime.GOMAXPROCS(0)) {
		t.Errorf("after 3 reads that waited about 1 ms each and timed out, the next read would spin (average %v)", time.Duration(s.waitAvg.Load()))
	}
}

// A quick peer that has been quiet for an hour gets the spin back as soon
// as after a wait of a millisecond: how long the silence lasted says
// nothing about how quickly the peer answers now.
func TestSpinComesBackAfterSilence(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	var s sysFile
	for range 100 {
		s.waited(5 * time.Microsecond)
	}
	s.waited(time.Hour)
	if s.shouldSpin(runtime.GOMAXPROCS(0)) {
		t.Fatalf("after a wait of an hour a read still spins (average %v)", time.Duration(s.waitAvg.Load()))
	}
	if short := quickWaitsToSpin(&s); short > 10 {
		t.Errorf("after a wait of an hour, %d waits of 20 µs before reads spin again, want at most 10 as after 1 ms", short)
	}
}

// A writer that sends bursts of tokens a millisecond apart stops the spin
// too: the reads that find a token there already never wait, and the first
// read of each burst, the only one that would spin, spins in vain.
func TestBurstsStopTheSpin(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	r, w := spinPipe(t)
	var rs, ws scratch
	const burst = 16
	for i := range 3 {
		readPacedBurst(t, r, w, &rs, &ws, burst)
		if i > 0 && r.shouldSpin(runtime.GOMAXPROCS(0)) {
			t.Fatalf("after %d bursts of %d tokens a millisecond apart, the first read of the next would spin (average %v)", i+1, burst, time.Duration(r.waitAvg.Load()))
		}
	}
}

// A peer that has been slow for a long spell, not only silent once, gets
// the spin back too once it is quick again, within the 25 waits the README
// gives: each wait counts for at most longestWait, so however long the
// spell lasted, the average starts no higher than that.
func TestSpinComesBackAfterASlowSpell(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	var s sysFile
	for range 1000 {
		s.waited(10 * time.Millisecond) // a peer that writes seldom, for long
	}
	if short := quickWaitsToSpin(&s); short > 25 {
		t.Errorf("after a long spell of waits of 10 ms, %d waits of 20 µs before reads spin again, want at most 25", short)
	}
}

// spinPipe makes a pipe whose ends are closed after the test.
func spinPipe(t *testing.T) (r, w *sysFile) {
	t.Helper()
	r, w, err := makePipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.close(); w.close() })
	return r, w
}

// readPacedBurst has w write n tokens in one go a millisecond from now, the
// pace of a writer that sends seldom, and reads them from r.
func readPacedBurst(t *testing.T, r, w *sysFile, rs, ws *scratch, n int) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		time.Sleep(time.Millisecond) // the writer's pace, not synchronisation
		done <- w.write(tokenBytes[1:1+n], ws)
	}()
	for range n {
		if _, err := r.read(rs); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// quickWaitsToSpin records waits of 20 µs, as a peer that is quick again
// gives through parked reads, until s would spin, and returns how many it
// took (at most 1000).
func quickWaitsToSpin(s *sysFile) int {
	short := 0
	for !s.shouldSpin(2) && short < 1000 {
		s.waited(20 * time.Microsecond)
		short++
	}
	return short
}
