package tokenpipe

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

// parseIdle takes idle+iowait from /proc/stat's "cpu" line, and refuses
// anything else, a line cut short included.
func TestParseIdle(t *testing.T) {
	for in, want := range map[string]int64{
		"cpu  254225 50786 227835 450183 38169 0 746 17620 0 0\ncpu0 1 2 3 4 5\n": 450183 + 38169,
		"cpu  1 2 3 4 5\n":                    4 + 5,
		"cpu0 1 2 3 4 5\n":                    -1,
		"cpu  1 2 3 4\n":                      -1,
		"cpu  1 2 3 x 5\n":                    -1,
		"cpu  1 2 3 4 5":                      -1, // cut short: the last field may be too
		"":                                    -1,
		"intr 1 2 3 4 5 6 ":                   -1,
		"cpu  1 2 3 99999999999999999999 5\n": -1,
	} {
		got, ok := parseIdle([]byte(in))
		if !ok {
			got = -1
		}
		if got != want {
			t.Errorf("parseIdle(%q) = %d, want %d", in, got, want)
		}
	}
}

// The sampler reads a number that only grows, and machineIdle costs no
// allocation: a token must cost none, and plan calls it on a wait.
func TestMachineIdle(t *testing.T) {
	a := takenSample()
	if a.state == idleUnknown {
		t.Skip("no /proc/stat here: the spinner tries without asking the machine")
	}
	if allocs := testing.AllocsPerRun(100, func() { machineIdle() }); allocs != 0 {
		t.Errorf("machineIdle allocates %v times", allocs)
	}
	if b := takenSample(); b.idle < a.idle || b.at <= a.at {
		t.Errorf("idle time went from %d at %d to %d at %d", a.idle, a.at, b.idle, b.at)
	}
}

// takenSample has a sample taken and returns it.
func takenSample() idleSample {
	sampler.mu.Lock()
	read := readProcStat
	sampler.mu.Unlock()
	takeSample(read)
	sampler.mu.Lock()
	defer sampler.mu.Unlock()
	return sampler.last
}

// A read never waits for /proc/stat, whose read(2) hangs under lxcfs (a FUSE
// file) for as long as the daemon behind it does: here a stand-in for its
// reading that never returns until the test ends. Tokens passed back and
// forth, each read finding the pipe empty and asking the spinner, and Close,
// all return; the spinner, told nothing, tries spinning once the reading
// has hung for hungAfter, as where the system cannot say.
func TestHungProcStatHoldsNoRead(t *testing.T) {
	asked, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	restore := standInProcStat(t, func() (int64, bool) {
		once.Do(func() { close(asked) })
		<-release
		return 0, false
	})
	defer restore()
	defer close(release)

	pingR, pingW := madeEnds(t)
	pongR, pongW := madeEnds(t)
	done := make(chan error, 1)
	go func() {
		for range 2000 {
			if err := pingW.TokenWrite(1); err != nil {
				done <- err
				return
			}
			if _, err := pongR.TokenRead(); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	go func() { // echoes each token back until ping ends
		for {
			tok, err := pingR.TokenRead()
			if err != nil || pongW.TokenWrite(tok) != nil {
				return
			}
		}
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("2000 round trips did not end in 20 s while /proc/stat's reading hung")
	}
	select {
	case <-asked:
	default:
		t.Fatal("no read asked for the machine's idle time: the test proves nothing")
	}
	closed := make(chan struct{})
	go func() {
		for _, e := range []*TokenPipeEnd{pingW, pingR, pongW, pongR} {
			e.Close()
		}
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return while /proc/stat's reading hung")
	}
}

// madeEnds makes a pipe and returns its ends.
func madeEnds(t *testing.T) (r, w *TokenPipeEnd) {
	t.Helper()
	p, err := Make()
	if err != nil {
		t.Fatal(err)
	}
	return p.TakeReadEnd(), p.TakeWriteEnd()
}

// standInProcStat has the sampler read the machine's idle time with read,
// once no reading is under way, until restore.
func standInProcStat(t *testing.T, read func() (int64, bool)) (restore func()) {
	t.Helper()
	for {
		sampler.mu.Lock()
		if !sampler.running {
			break
		}
		sampler.mu.Unlock()
		runtime.Gosched()
	}
	old, oldLast := readProcStat, sampler.last
	readProcStat, sampler.last = read, idleSample{}
	sampler.mu.Unlock()
	return func() {
		sampler.mu.Lock()
		readProcStat, sampler.last = old, oldLast
		sampler.mu.Unlock()
	}
}
