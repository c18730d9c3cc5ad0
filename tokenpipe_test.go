//go:build unix || windows

package tokenpipe_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenpipe/tokenpipe"
)

// Contract 1: both ends open and kept from children.
func TestMakeEndsAreOpenAndNotInherited(t *testing.T) {
	r, w := mustMake(t)
	for name, e := range map[string]*tokenpipe.TokenPipeEnd{"read": r, "write": w} {
		if !e.IsOpen() {
			t.Errorf("%s end: IsOpen() = false right after Make", name)
		}
		if tokenpipe.Inheritable(t, tokenpipe.OSHandle(t, e)) {
			t.Errorf("%s end is inheritable: an unrelated child would hold it", name)
		}
	}

	// An unrelated child started now must not hold the write end: once we
	// close ours, the reader sees end of stream although the child lives on.
	child := helperCommand(t, "live-until-stdin-closes")
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Wait()
	defer stdin.Close()
	w.Close()
	if tok, err := readWithin(t, r, 5*time.Second); err != io.EOF {
		t.Fatalf("read with a live unrelated child: got (%d, %v), want io.EOF: the child holds the write end", tok, err)
	}
}

// Contract 2: ends are handed over once; Close spares taken ends.
func TestTakeAndClose(t *testing.T) {
	p, err := tokenpipe.Make()
	if err != nil {
		t.Fatal(err)
	}
	r := p.TakeReadEnd()
	defer r.Close()
	if again := p.TakeReadEnd(); again == nil || again.IsOpen() {
		t.Errorf("second TakeReadEnd: got %v, want a closed non-nil end", again)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if w := p.TakeWriteEnd(); w == nil || w.IsOpen() {
		t.Errorf("TakeWriteEnd after Close: got %v, want a closed non-nil end", w)
	}
	// The taken read end is open and sees that Close closed the write end.
	if !r.IsOpen() {
		t.Fatal("TokenPipe.Close closed the end taken before")
	}
	if tok, err := r.TokenRead(); err != io.EOF {
		t.Fatalf("read after TokenPipe.Close closed the untaken write end: got (%d, %v), want io.EOF", tok, err)
	}

	var nilPipe *tokenpipe.TokenPipe
	if e := nilPipe.TakeReadEnd(); e == nil || e.IsOpen() {
		t.Errorf("TakeReadEnd on nil *TokenPipe: got %v, want a closed non-nil end", e)
	}
	if err := nilPipe.Close(); err != nil {
		t.Errorf("Close on nil *TokenPipe: %v", err)
	}
	var zero tokenpipe.TokenPipe
	if e := zero.TakeWriteEnd(); e == nil || e.IsOpen() {
		t.Errorf("TakeWriteEnd on zero TokenPipe: got %v, want a closed non-nil end", e)
	}
}

// Contract 3: every byte comes out once, in order.
func TestEveryTokenInOrder(t *testing.T) {
	r, w := mustMake(t)
	for i := range 256 {
		if err := w.TokenWrite(byte(i)); err != nil {
			t.Fatalf("TokenWrite(%d): %v", i, err)
		}
	}
	for i := range 256 {
		tok, err := r.TokenRead()
		if err != nil || tok != byte(i) {
			t.Fatalf("read %d: got (%d, %v), want (%d, nil)", i, tok, err, i)
		}
	}
}

// Contract 3: many writers and readers on one pipe lose and invent nothing.
func TestConcurrentWritersAndReaders(t *testing.T) {
	const writers, readers, rounds = 4, 4, 4
	r, w := mustMake(t)
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range rounds {
				for tok := range 256 {
					if err := w.TokenWrite(byte(tok)); err != nil {
						t.Errorf("TokenWrite: %v", err)
						return
					}
				}
			}
		})
	}
	counts := make(chan [256]int, readers)
	for range readers {
		go func() {
			var c [256]int
			for {
				tok, err := r.TokenRead()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Errorf("TokenRead: %v", err)
					break
				}
				c[tok]++
			}
			counts <- c
		}()
	}
	wg.Wait()
	w.Close() // readers stop at end of stream
	var total [256]int
	for range readers {
		select {
		case c := <-counts:
			for i, n := range c {
				total[i] += n
			}
		case <-time.After(hangGuard):
			t.Fatal("readers did not reach end of stream")
		}
	}
	for tok, n := range total {
		if n != writers*rounds {
			t.Errorf("token %d read %d times, want %d", tok, n, writers*rounds)
		}
	}
}

// Contract 4: end of stream comes after the last token and is never a token.
func TestEndOfStream(t *testing.T) {
	r, w := mustMake(t)
	for _, tok := range []byte{0, 1, 255} {
		if err := w.TokenWrite(tok); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	for _, want := range []byte{0, 1, 255} {
		if tok, err := r.TokenRead(); tok != want || err != nil {
			t.Fatalf("got (%d, %v), want (%d, nil)", tok, err, want)
		}
	}
	for range 2 {
		if tok, err := r.TokenRead(); tok != 0 || err != io.EOF {
			t.Fatalf("after the last token: got (%d, %v), want (0, io.EOF)", tok, err)
		}
		if tok, err := r.TokenReadContext(context.Background()); tok != 0 || err != io.EOF {
			t.Fatalf("TokenReadContext after the last token: got (%d, %v), want (0, io.EOF)", tok, err)
		}
	}
}

// Contract 5: writing with no reader left is io.ErrClosedPipe, not SIGPIPE.
func TestWriteWithoutReader(t *testing.T) {
	r, w := mustMake(t)
	r.Close()
	for range 2 {
		err := w.TokenWrite(1)
		if !errors.Is(err, io.ErrClosedPipe) {
			t.Fatalf("TokenWrite with the read end closed: got %v, want io.ErrClosedPipe", err)
		}
		if !strings.Contains(err.Error(), "TokenWrite") {
			t.Errorf("error %q does not name the operation", err)
		}
	}
}

// Contract 6: closed, moved-from, zero and nil ends all fail the same way.
func TestClosedEnds(t *testing.T) {
	closed := func(t *testing.T) *tokenpipe.TokenPipeEnd {
		r, _ := mustMake(t)
		r.Close()
		return r
	}
	ends := map[string]func(t *testing.T) *tokenpipe.TokenPipeEnd{
		"closed": closed,
		"closed twice": func(t *testing.T) *tokenpipe.TokenPipeEnd {
			e := closed(t)
			if err := e.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			return e
		},
		"moved from": func(t *testing.T) *tokenpipe.TokenPipeEnd {
			r, _ := mustMake(t)
			var to tokenpipe.TokenPipeEnd
			if err := to.AssignFrom(r); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { to.Close() })
			return r
		},
		"taken twice": func(t *testing.T) *tokenpipe.TokenPipeEnd {
			p, _ := tokenpipe.Make()
			t.Cleanup(func() { p.Close() })
			p.TakeWriteEnd().Close()
			return p.TakeWriteEnd()
		},
		"zero": func(*testing.T) *tokenpipe.TokenPipeEnd { return new(tokenpipe.TokenPipeEnd) },
		"nil":  func(*testing.T) *tokenpipe.TokenPipeEnd { return nil },
	}
	for name, get := range ends {
		t.Run(name, func(t *testing.T) {
			e := get(t)
			if e.IsOpen() {
				t.Error("IsOpen() = true")
			}
			check := func(op string, err error) {
				t.Helper()
				if !errors.Is(err, os.ErrClosed) {
					t.Errorf("%s: got %v, want an error matching os.ErrClosed", op, err)
				} else if !strings.Contains(err.Error(), op) {
					t.Errorf("%s: error %q does not name the operation", op, err)
				}
			}
			check("TokenWrite", e.TokenWrite(1))
			_, err := e.TokenRead()
			check("TokenRead", err)
			_, err = e.TokenReadContext(context.Background())
			check("TokenReadContext", err)
			check("ExportTo", e.ExportTo(exec.Command("true"), "X"))
			for range 2 {
				if err := e.Close(); err != nil {
					t.Errorf("Close: %v, want nil", err)
				}
			}
		})
	}
}

// Contract 7: Close unblocks a blocked reader, whichever read it is.
func TestCloseUnblocksReader(t *testing.T) {
	reads := map[string]func(e *tokenpipe.TokenPipeEnd) (byte, error){
		"TokenRead": (*tokenpipe.TokenPipeEnd).TokenRead,
		"TokenReadContext": func(e *tokenpipe.TokenPipeEnd) (byte, error) {
			return e.TokenReadContext(context.Background())
		},
		"TokenReadContext with deadline": func(e *tokenpipe.TokenPipeEnd) (byte, error) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			return e.TokenReadContext(ctx)
		},
	}
	for name, read := range reads {
		t.Run(name, func(t *testing.T) {
			// Many rounds, so that Close lands both before and while the
			// reader waits in the system call; either must end the read.
			for range 50 {
				r, _ := mustMake(t)
				started, done := readAsync(func() (byte, error) { return read(r) })
				<-started
				if err := r.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				if res := await(t, done, name+" after Close"); !errors.Is(res.err, os.ErrClosed) {
					t.Fatalf("got (%d, %v), want an error matching os.ErrClosed", res.tok, res.err)
				}
			}
		})
	}
}

// Contract 8: a context ends a read without losing the next token.
func TestReadContext(t *testing.T) {
	r, w := mustMake(t)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if tok, err := r.TokenReadContext(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline: got (%d, %v), want context.DeadlineExceeded", tok, err)
	}
	if tok, err := r.TokenReadContext(ctx); err != context.DeadlineExceeded {
		t.Fatalf("already past deadline: got (%d, %v), want context.DeadlineExceeded", tok, err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	started, done := readAsync(func() (byte, error) { return r.TokenReadContext(ctx) })
	<-started
	cancel()
	if res := await(t, done, "read after cancel"); res.err != context.Canceled {
		t.Fatalf("cancel: got (%d, %v), want context.Canceled", res.tok, res.err)
	}

	// The end still works, and nothing written after the cancellation is lost.
	if err := w.TokenWrite(7); err != nil {
		t.Fatal(err)
	}
	if tok, err := r.TokenReadContext(context.Background()); tok != 7 || err != nil {
		t.Fatalf("after cancellations: got (%d, %v), want (7, nil)", tok, err)
	}
	w.Close()
	if tok, err := readWithin(t, r, hangGuard); err != io.EOF {
		t.Fatalf("end of stream: got (%d, %v), want io.EOF", tok, err)
	}

	var nilCtx context.Context
	if _, err := r.TokenReadContext(nilCtx); !errors.Is(err, os.ErrInvalid) {
		t.Errorf("nil context: got %v, want an error matching os.ErrInvalid", err)
	}
}

// Contract 8: one reader's cancellation does not disturb another reader.
func TestReadContextBesideOtherReaders(t *testing.T) {
	r, w := mustMake(t)
	for range 20 {
		_, plain := readAsync(r.TokenRead)
		long, cancelLong := context.WithTimeout(context.Background(), time.Hour)
		_, patient := readAsync(func() (byte, error) { return r.TokenReadContext(long) })
		ctx, cancel := context.WithCancel(context.Background())
		started, cancelled := readAsync(func() (byte, error) { return r.TokenReadContext(ctx) })
		<-started
		cancel()
		if res := await(t, cancelled, "cancelled read"); res.err != context.Canceled && res.err != nil {
			t.Fatalf("cancelled read: got (%d, %v), want context.Canceled", res.tok, res.err)
		} else if res.err == nil {
			t.Fatalf("cancelled read got token %d that nobody wrote", res.tok)
		}
		for _, tok := range []byte{1, 2} {
			if err := w.TokenWrite(tok); err != nil {
				t.Fatal(err)
			}
		}
		a, b := await(t, plain, "plain read"), await(t, patient, "read with a live context")
		if a.err != nil || b.err != nil || a.tok+b.tok != 3 {
			t.Fatalf("readers beside a cancelled one got (%d, %v) and (%d, %v), want tokens 1 and 2", a.tok, a.err, b.tok, b.err)
		}
		cancelLong()
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

// Contract 9: AssignFrom moves, closes what it replaces, and tolerates itself.
func TestAssignFrom(t *testing.T) {
	r, w := mustMake(t)
	var ep tokenpipe.TokenPipeEnd // the bitcoind pattern
	defer ep.Close()
	if err := ep.AssignFrom(r); err != nil {
		t.Fatal(err)
	}
	if r.IsOpen() || !ep.IsOpen() {
		t.Fatalf("after the move: source open %v, destination open %v", r.IsOpen(), ep.IsOpen())
	}
	if err := ep.AssignFrom(&ep); err != nil || !ep.IsOpen() {
		t.Fatalf("self-assignment: err %v, open %v; want nil, true", err, ep.IsOpen())
	}
	w.TokenWrite(5)
	if tok, err := ep.TokenRead(); tok != 5 || err != nil {
		t.Fatalf("read through the moved end: got (%d, %v), want (5, nil)", tok, err)
	}

	// Assigning over an open end closes it: its writer sees the pipe broken.
	nextR, nextW := mustMake(t)
	if err := ep.AssignFrom(nextR); err != nil {
		t.Fatal(err)
	}
	if err := w.TokenWrite(1); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("write to the replaced end: got %v, want io.ErrClosedPipe", err)
	}
	nextW.TokenWrite(6)
	if tok, err := ep.TokenRead(); tok != 6 || err != nil {
		t.Fatalf("read through the new end: got (%d, %v), want (6, nil)", tok, err)
	}

	if err := ep.AssignFrom(nil); err != nil || ep.IsOpen() {
		t.Fatalf("assign from nil: err %v, open %v; want nil, false", err, ep.IsOpen())
	}
	if err := nextW.TokenWrite(1); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("assigning from nil left the old end open: write got %v", err)
	}

	r3, _ := mustMake(t)
	var nilEnd *tokenpipe.TokenPipeEnd
	if err := nilEnd.AssignFrom(r3); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("AssignFrom on nil receiver: got %v, want os.ErrClosed", err)
	}
	if !r3.IsOpen() {
		t.Fatal("AssignFrom on nil receiver closed its argument")
	}
}

// Contract 10: no descriptor or handle survives Close.
func TestNoHandleLeak(t *testing.T) {
	cycle := func() {
		p, err := tokenpipe.Make()
		if err != nil {
			t.Fatal(err)
		}
		r, w := p.TakeReadEnd(), p.TakeWriteEnd()
		w.TokenWrite(1)
		r.TokenRead()
		var moved tokenpipe.TokenPipeEnd
		moved.AssignFrom(r)
		moved.Close()
		w.Close()
		p.Close()
		p, err = tokenpipe.Make() // closed untaken
		if err != nil {
			t.Fatal(err)
		}
		p.Close()
	}
	cycle() // the first use of the poller opens its own descriptors
	leaks := watchEveryDescriptor(t)
	before := tokenpipe.OpenDescriptors(t).All
	// The count can see a pipe: a test that cannot fail proves nothing.
	p, err := tokenpipe.Make()
	if err != nil {
		t.Fatal(err)
	}
	if during := tokenpipe.OpenDescriptors(t).All; during != before+2 {
		t.Fatalf("open handles went from %d to %d with a pipe open, want %d", before, during, before+2)
	}
	p.Close()
	for range 2000 {
		cycle()
	}
	leaks.check(t) // over 2000 Make/Close cycles
}

// An end dropped without Close is closed by the garbage collector, whether
// or not it was ever used, as an *os.File is.
func TestDroppedEndIsClosed(t *testing.T) {
	for _, used := range []bool{false, true} {
		t.Run(fmt.Sprintf("used=%v", used), func(t *testing.T) {
			p, err := tokenpipe.Make()
			if err != nil {
				t.Fatal(err)
			}
			r := p.TakeReadEnd()
			defer r.Close()
			func() {
				w := p.TakeWriteEnd()
				if used {
					w.TokenWrite(1)
				}
			}()
			if used {
				if tok, err := r.TokenRead(); tok != 1 || err != nil {
					t.Fatalf("got (%d, %v), want (1, nil)", tok, err)
				}
			}
			p = nil
			// The read ends when the collector closes the write end.
			started, done := readAsync(r.TokenRead)
			<-started
			runtime.GC()
			runtime.GC()
			if res := await(t, done, "read after dropping the write end"); res.err != io.EOF {
				t.Fatalf("got (%d, %v), want io.EOF", res.tok, res.err)
			}
		})
	}
}

// Contract 11: a token costs no allocation, whether the read finds it
// waiting or has to wait for it, and with a context that cannot end.
func TestZeroAllocsPerToken(t *testing.T) {
	r, w := mustMake(t)
	reads := map[string]func() (byte, error){
		"TokenRead": r.TokenRead,
		"TokenReadContext(context.Background())": func() (byte, error) {
			return r.TokenReadContext(context.Background())
		},
	}
	for name, read := range reads {
		allocs := testing.AllocsPerRun(1000, func() {
			if err := w.TokenWrite(1); err != nil {
				t.Fatal(err)
			}
			if _, err := read(); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%v allocations per TokenWrite+%s, want 0", allocs, name)
		}
	}
	// A reader that waits in the poller (Unix) or in ReadFile (Windows).
	pingR, pingW := mustMake(t)
	pongR, pongW := mustMake(t)
	go echoTokens(pingR, pongW)
	roundTrip := func() {
		if err := pingW.TokenWrite(1); err != nil {
			t.Fatal(err)
		}
		if _, err := pongR.TokenRead(); err != nil {
			t.Fatal(err)
		}
	}
	roundTrip() // the first wait builds what later ones reuse
	if allocs := testing.AllocsPerRun(200, roundTrip); allocs != 0 {
		t.Errorf("%v allocations per round trip between goroutines, want 0", allocs)
	}
}

// A large write that has filled the pipe and waits for room ends with
// os.ErrClosed when the end is closed, and with ErrExported when it is
// exported; what is in the pipe afterwards is no more than was written
// before.
func TestLargeWriteShut(t *testing.T) {
	for _, how := range []string{"close", "export"} {
		t.Run(how, func(t *testing.T) {
			r, w := mustMake(t)
			big := make([]byte, 1<<20)
			done := make(chan error, 1)
			go func() { done <- tokenpipe.WriteAll(w, big) }()
			// Wait until the pipe is full: a read returns at once.
			for !tokenpipe.Pending(r) {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(50 * time.Millisecond) // not for the verdict: lets the writer park
			want := os.ErrClosed
			switch how {
			case "close":
				w.Close()
			case "export":
				want = tokenpipe.ErrExported
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
	r, w := mustMake(t)
	if tokenpipe.Pending(r) {
		t.Error("pending on an empty pipe")
	}
	w.TokenWrite(7)
	if !tokenpipe.Pending(r) {
		t.Error("not pending with a token")
	}
	r.TokenRead()
	w.Close()
	if !tokenpipe.Pending(r) {
		t.Error("not pending at end of stream")
	}
	r.Close()
	if tokenpipe.Pending(r) {
		t.Error("pending on a closed end")
	}
	exported, _ := mustMake(t)
	if err := exported.ExportTo(exec.Command("true"), "X"); err != nil {
		t.Fatal(err)
	}
	if tokenpipe.Pending(exported) {
		t.Error("pending on an exported end")
	}
}

// Every operation racing on one end, with contexts ending at
// random moments and the collector running, for many rounds: no hang, no
// panic, no token read after ExportTo returned, no token invented, and no
// descriptor closed twice (a file opened after the round stays usable while
// the round's leftovers are collected).
func TestEverythingRacing(t *testing.T) {
	rounds := 300
	if testing.Short() {
		rounds = 50
	}
	const marker = 200 // written only after ExportTo returned
	for round := range rounds {
		rng := rand.New(rand.NewPCG(uint64(round), 7))
		p, err := tokenpipe.Make()
		if err != nil {
			t.Fatal(err)
		}
		r, w := p.TakeReadEnd(), p.TakeWriteEnd()
		other := new(tokenpipe.TokenPipeEnd)
		var exportedAt sync.WaitGroup
		exported := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		var bad []string
		fail := func(s string) { mu.Lock(); bad = append(bad, s); mu.Unlock() }
		for i := range 6 {
			d := time.Duration(rng.IntN(300)) * time.Microsecond
			wg.Go(func() {
				for {
					var tok byte
					var err error
					switch i % 3 {
					case 0:
						tok, err = r.TokenRead()
					case 1:
						ctx, cancel := context.WithTimeout(context.Background(), d)
						tok, err = r.TokenReadContext(ctx)
						cancel()
						if err == context.DeadlineExceeded {
							continue
						}
					case 2:
						tok, err = other.TokenRead()
					}
					if err == nil {
						if tok == marker {
							fail("a token written after ExportTo returned was read in the parent")
						} else if tok != 1 {
							fail("token invented")
						}
						continue
					}
					if err == io.EOF || errors.Is(err, os.ErrClosed) || errors.Is(err, tokenpipe.ErrExported) {
						return
					}
					fail("read: " + err.Error())
					return
				}
			})
		}
		wg.Go(func() {
			for range 50 {
				if err := w.TokenWrite(1); errors.Is(err, os.ErrClosed) || errors.Is(err, io.ErrClosedPipe) {
					return
				} else if err != nil {
					fail("write: " + err.Error())
					return
				}
				runtime.Gosched()
			}
		})
		move := rng.IntN(4) == 0
		exportDelay := time.Duration(rng.IntN(500)) * time.Microsecond
		exportedAt.Add(1)
		wg.Go(func() {
			defer exportedAt.Done()
			time.Sleep(exportDelay)
			target := r
			if move {
				other.AssignFrom(r) // moves the end: r is closed from now on
				target = other
			}
			err := target.ExportTo(exec.Command("x"), endEnv)
			if err == nil {
				close(exported)
				return
			}
			if !errors.Is(err, os.ErrClosed) {
				fail("ExportTo: " + err.Error())
			}
		})
		if rng.IntN(3) == 0 {
			runtime.GC()
		}
		exportedAt.Wait()
		select {
		case <-exported:
			if err := w.TokenWrite(marker); err != nil {
				fail("marker write: " + err.Error())
			}
		default:
		}
		// Close everything; every reader must now return.
		closed := make(chan struct{})
		go func() {
			r.Close()
			other.Close()
			w.Close()
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(hangGuard):
			t.Fatalf("round %d: Close still blocked after %v", round, hangGuard)
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(hangGuard):
			t.Fatalf("round %d: readers still blocked %v after Close", round, hangGuard)
		}
		if len(bad) > 0 {
			t.Fatalf("round %d: %v", round, bad)
		}
		f := createTemp(t)
		runtime.GC()
		runtime.GC()
		if _, err := f.Write([]byte("x")); err != nil {
			t.Fatalf("round %d: a file opened after Close was closed under us: %v", round, err)
		}
	}
}
