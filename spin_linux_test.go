package tokenpipe

import (
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
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

// takenSample has the sampler take a sample, and returns it.
func takenSample() idleSample {
	waitForSample()
	lockSampler()
	sampler.last = idleSample{}
	sampler.mu.Unlock()
	machineIdle()
	waitForSample()
	lockSampler()
	defer sampler.mu.Unlock()
	return sampler.last
}

// waitForSample waits until no reading of the machine's idle time is asked
// for or under way.
func waitForSample() {
	for {
		lockSampler()
		running := sampler.running
		sampler.mu.Unlock()
		if !running {
			return
		}
		runtime.Gosched()
	}
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
	restore := standInProcStat(func() (int64, bool) {
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
	echoEnds(t, pingR, pongW)
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
	checkSamplerStack(t)
	lockSampler()
	sampler.began -= int64(hungAfter) // as if the reading had hung that long
	sampler.mu.Unlock()
	if s := machineIdle(); s.state != idleUnknown {
		t.Errorf("a reading under way for %v: the sample says %d, want unknown (the spinner then tries)", hungAfter, s.state)
	}
	closed := make(chan struct{})
	go func() {
		closeEnds(pingW, pingR, pongW, pongR)
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
// once no reading is under way, until restore, which waits for the
// stand-in's last reading to end.
func standInProcStat(read func() (int64, bool)) (restore func()) {
	waitForSample()
	lockSampler()
	old, oldLast := readProcStat, sampler.last
	readProcStat, sampler.last = read, idleSample{}
	sampler.mu.Unlock()
	return func() {
		waitForSample()
		lockSampler()
		readProcStat, sampler.last = old, oldLast
		sampler.mu.Unlock()
	}
}

// Looking at the machine costs a token no allocation, however often the
// looks ask for a sample (TestZeroAllocsPerToken's few round trips never
// come to a second look): here every look finds the last sample older than
// sampleEvery, as in round trips paced by a peer that answers every 40 µs
// or more, which keeps the ends parked and looking every checkEvery waits.
// The runtime allocates now and then for itself, behind any goroutine: a
// thread it starts (seven objects), a record of a goroutine's wait on a
// channel, as the sampler's, when its caches are empty (DESIGN.md). So the
// collector, which empties the shared cache, is off, a thousand goroutines
// waiting at once fill the caches first, and the count allows fewer
// allocations than the looks made: one a look shows as 32 or more.
func TestLooksDoNotAllocate(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	fillWaitRecordCaches()
	pingR, pingW := madeEnds(t)
	pongR, pongW := madeEnds(t)
	defer closeEnds(pingW, pingR, pongW, pongR)
	echoEnds(t, pingR, pongW)
	roundTrip := func() {
		lockSampler()
		sampler.last.at -= int64(sampleEvery)
		sampler.mu.Unlock()
		if err := pingW.TokenWrite(1); err != nil {
			t.Fatal(err)
		}
		if _, err := pongR.TokenRead(); err != nil {
			t.Fatal(err)
		}
	}
	// The first wait of each reading end builds what later ones reuse.
	for pingR.f.Load().sys.f.Load() == nil || pongR.f.Load().sys.f.Load() == nil {
		roundTrip()
	}
	for range 4 * checkEvery {
		roundTrip()
	}
	const looks = 32
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range looks * checkEvery {
		roundTrip()
	}
	runtime.ReadMemStats(&after)
	if n := after.Mallocs - before.Mallocs; n >= looks/2 {
		t.Errorf("%d allocations in %d round trips, %d looks at the machine or more", n, looks*checkEvery, looks)
	}
}

// A fresh end does not watch a sample taken before it was made (in a
// long-lived launcher, hours before): the machine's idle time then would
// count against a time the end did not watch. Here the process's last
// sample is from its start, and the machine has had no idle time since
// the end was made: the end keeps parking.
func TestFreshEndIgnoresOldSamples(t *testing.T) {
	restore := standInProcStat(func() (int64, bool) { return 1000, true })
	defer restore()
	lockSampler()
	sampler.last = sample(0, time.Nanosecond) // the process's first sample
	sampler.mu.Unlock()

	var p spinner // a fresh end
	p.look(machineIdle(), int64(monotonic()))
	waitForSample()
	p.look(machineIdle(), int64(monotonic())) // checkEvery waits later
	waitForSample()
	lockSampler()
	sampler.last.at += int64(busyAfter) // busyAfter later, still 1000
	sampler.mu.Unlock()
	p.look(machineIdle(), int64(monotonic()))
	if p.mode.Load() != spinParked {
		t.Errorf("a fresh end on a machine with no idle time since it was made tries spinning (idle %d, watching since %d)", p.idle.Load(), p.at.Load())
	}
}

// The same through the real sampler: a reading of /proc/stat that failed
// an hour ago (descriptors exhausted in a burst, lxcfs restarting) is the
// process's last sample when a fresh end first looks; every reading since
// shows no idle time, and the end keeps parking.
func TestFreshEndAfterAnOldFailedReading(t *testing.T) {
	var failed atomic.Bool
	restore := standInProcStat(func() (int64, bool) {
		if failed.CompareAndSwap(false, true) {
			return 0, false
		}
		return 1000, true
	})
	defer restore()
	if s := takenSample(); s.state != idleUnknown {
		t.Fatalf("the stand-in's first reading: state %d, want unknown", s.state)
	}
	lockSampler()
	sampler.last.at -= int64(time.Hour)
	sampler.mu.Unlock()

	var p spinner // a fresh end
	tried := p.look(machineIdle(), int64(monotonic()))
	for range 3 { // each checkEvery waits later, with a fresh sample
		waitForSample()
		tried = p.look(machineIdle(), int64(monotonic())) || tried
		lockSampler()
		sampler.last.at -= int64(busyAfter) // as if it were that much older
		sampler.mu.Unlock()
	}
	if tried {
		t.Errorf("a fresh end tried spinning on a machine whose every reading since it was made showed no idle time (idle %d)", p.idle.Load())
	}
}

// The sampler is one goroutine for the process, with takeSamples in its
// stack, as the package doc tells users of goleak.IgnoreAnyFunction;
// TestHungProcStatHoldsNoRead checks it while a reading hangs.
func TestSamplerIsOneGoroutine(t *testing.T) {
	machineIdle()
	waitForSample()
	checkSamplerStack(t)
}

// checkSamplerStack checks that one goroutine has takeSamples in its stack.
func checkSamplerStack(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	const frame = "\ngithub.com/tokenpipe/tokenpipe.takeSamples("
	if n := strings.Count(stacks, frame); n != 1 {
		t.Errorf("%d goroutines with takeSamples in their stack, want 1:\n%s", n, stacks)
	}
}

// fillWaitRecordCaches has a thousand goroutines wait on a channel at once,
// so that the runtime's caches of wait records (sudogs: per P, and one
// shared) hold more than the sampler's waits take from them.
func fillWaitRecordCaches() {
	var wg sync.WaitGroup
	release := make(chan struct{})
	for range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
		}()
	}
	close(release)
	wg.Wait()
}

// closeEnds closes ends.
func closeEnds(ends ...*TokenPipeEnd) {
	for _, e := range ends {
		e.Close()
	}
}

// echoEnds writes back each token it reads from in, until either end fails,
// in a goroutine that the test ends, closing both ends, and waits for: one
// still reading into the next test would allocate in its count.
func echoEnds(t *testing.T, in, out *TokenPipeEnd) {
	done := make(chan struct{})
	t.Cleanup(func() {
		closeEnds(in, out)
		<-done
	})
	go func() {
		defer close(done)
		for {
			tok, err := in.TokenRead()
			if err != nil || out.TokenWrite(tok) != nil {
				return
			}
		}
	}()
}
