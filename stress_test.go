//go:build unix || windows

package tokenpipe_test

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/tokenpipe/tokenpipe"
)

// An end dropped after ExportTo, as by the one-liner
// p.TakeWriteEnd().ExportTo(cmd, env), is not closed by the collector under
// cmd, which needs it until Start: the child gets its end. (It was closed:
// on Unix the child started with descriptor 3 closed; on Windows the handle
// value in AdditionalInheritedHandles could have been reused by anything.)
func TestExportedEndDroppedBeforeStart(t *testing.T) {
	p, err := tokenpipe.Make()
	if err != nil {
		t.Fatal(err)
	}
	r := p.TakeReadEnd()
	defer r.Close()
	cmd := helperCommand(t, "write-1-to-10")
	if err := p.TakeWriteEnd().ExportTo(cmd, endEnv); err != nil {
		t.Fatal(err)
	}
	p = nil
	for range 3 {
		runtime.GC()
	}
	// Make a few pipes so that, on Windows, the freed handle value is reused.
	for range 4 {
		q, err := tokenpipe.Make()
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("Start after dropping the exported end: %v", err)
	}
	defer cmd.Process.Kill()
	for want := byte(1); want <= 10; want++ {
		if tok, err := readWithin(t, r, hangGuard); tok != want || err != nil {
			cmd.Wait() // the child exits 3 when FromEnv fails
			t.Fatalf("child started after its exported end was dropped and collected: got (%d, %v), want (%d, nil); child exit %d",
				tok, err, want, cmd.ProcessState.ExitCode())
		}
	}
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("child exit %d", code)
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
