//go:build unix

package tokenpipe

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The spin policy as spinner's doc states it, driven through its inputs:
// what the machine's idle time says, and how spun reads went. Timings on a
// real pipe are left to the benchmarks; the tests below that use one only
// check what the policy decided.

// A fresh end parks and looks at the machine every checkEvery waits; the
// CPUs idle for a tenth of the time watched start a trial, busyAfter without
// that parks it for longer, and where nothing can be known it tries.
func TestSpinWaitsForAnIdleCPU(t *testing.T) {
	var p spinner
	const made = time.Millisecond // when the end was made
	if p.look(sample(90, made-time.Microsecond), int64(made)) || p.mode.Load() != spinParked || p.skip.Load() != checkEvery || p.idle.Load() != 0 {
		t.Fatalf("a fresh end's first look: mode %d, skip %d, idle %d; want parked, skip %d, not watching a sample older than the end", p.mode.Load(), p.skip.Load(), p.idle.Load(), checkEvery)
	}
	if p.look(idleSample{}, int64(made)) || p.idle.Load() != 0 || p.skip.Load() != checkEvery {
		t.Fatalf("a look with no sample to go by: idle %d, skip %d; want not watching, skip %d", p.idle.Load(), p.skip.Load(), checkEvery)
	}
	if p.look(sample(100, made+time.Microsecond), int64(made)) || p.mode.Load() != spinParked || p.idle.Load() != 101 {
		t.Fatalf("a look with a sample taken since the end was made: mode %d, idle %d; want parked, watching", p.mode.Load(), p.idle.Load())
	}
	if p.look(sample(100, made+busyAfter/2), 0) || p.level.Load() != 0 {
		t.Fatalf("no idle CPU for %v: mode %d, level %d; want parked at level 0 (too soon to tell)", busyAfter/2, p.mode.Load(), p.level.Load())
	}
	if p.look(idleSample{}, 0) || p.level.Load() != 0 || p.skip.Load() != checkEvery {
		t.Fatalf("no sample to go by: mode %d, level %d; want parked at level 0 for %d waits", p.mode.Load(), p.level.Load(), checkEvery)
	}
	verdict := made + time.Microsecond + busyAfter
	if p.look(sample(100, verdict), int64(verdict)) || p.level.Load() != 1 || p.skip.Load() != parkedWaits(1) {
		t.Fatalf("no idle CPU for %v: mode %d, level %d, skip %d; want parked for %d waits", busyAfter, p.mode.Load(), p.level.Load(), p.skip.Load(), parkedWaits(1))
	}
	// After the spell, idle time from its start (60 ticks) but none since:
	// the first look watches afresh, from a sample taken after the verdict.
	end := verdict + 2*time.Second
	if p.look(sample(100, verdict), int64(end)) || p.idle.Load() != 0 {
		t.Fatalf("the first look after a spell watched the sample of the verdict: idle %d", p.idle.Load())
	}
	if p.look(sample(160, end), int64(end)) || p.idle.Load() != 161 {
		t.Fatalf("the first look after a spell tried, or did not watch a sample taken since: mode %d, idle %d", p.mode.Load(), p.idle.Load())
	}
	// Slivers: one tick of idle time in a second is no idle CPU.
	if p.look(sample(161, end+time.Second), int64(end+time.Second)) || p.level.Load() != 2 {
		t.Fatalf("one tick of idle CPU time in a second: mode %d, level %d; want parked at level 2", p.mode.Load(), p.level.Load())
	}
	p.look(sample(161, end+2*time.Second), int64(end+2*time.Second))
	if !p.look(sample(163, end+2*time.Second+100*time.Millisecond), 0) || p.mode.Load() != spinTrying {
		t.Fatalf("two ticks of idle CPU time in 100 ms: mode %d, want trying", p.mode.Load())
	}

	var q spinner
	unknown := idleSample{at: int64(made + time.Microsecond), state: idleUnknown}
	q.look(unknown, int64(made))
	q.look(unknown, int64(made))
	if !q.look(unknown, int64(made)) {
		t.Error("a machine that cannot say whether a CPU was idle is not tried")
	}
}

// A steady end looks at the machine again after relookAfter of spinning,
// as its own spins keep the CPUs busy: it parks at its level, watches from a
// sample taken after it stopped (not one its spinning made), and tries
// again where a CPU is idle, or parks for longer on a machine that has
// become busy.
func TestSteadyEndLooksAgain(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	for _, busy := range []bool{false, true} {
		var p spinner
		steady(&p)
		spinWindow(&p, true, time.Microsecond)
		if p.mode.Load() != spinSteady {
			t.Fatal("a steady end looked at the machine again before relookAfter")
		}
		p.since.Add(-int64(relookAfter))
		spinWindow(&p, true, time.Microsecond)
		if p.mode.Load() != spinParked || p.level.Load() != 0 || p.skip.Load() != 0 {
			t.Fatalf("after %v of quick spins: mode %d, level %d, skip %d; want parked at level 0, looking at the next wait", relookAfter, p.mode.Load(), p.level.Load(), p.skip.Load())
		}
		stopped := time.Duration(p.at.Load())
		p.look(sample(5, stopped-time.Millisecond), int64(stopped)) // taken while it spun
		if p.idle.Load() != 0 {
			t.Fatal("the end watches from a sample taken while it spun")
		}
		p.look(sample(5, stopped+time.Microsecond), int64(stopped))
		idle := int64(5)
		if !busy {
			idle += 2
		}
		judged := stopped + time.Microsecond + busyAfter
		tried := p.look(sample(idle, judged), int64(judged))
		if tried == busy || (busy && p.level.Load() != 1) {
			t.Errorf("machine busy %v: tried %v, level %d", busy, tried, p.level.Load())
		}
	}
}

// A look that gets no sample (another reader holds the sampler) keeps the
// time the end stopped spinning: the next look still ignores a sample taken
// while it spun.
func TestContendedSamplerKeepsTheStopTime(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	var p spinner
	steady(&p)
	p.since.Add(-int64(relookAfter))
	spinWindow(&p, true, time.Microsecond)
	if p.mode.Load() != spinParked {
		t.Fatal("no relook")
	}
	stopped := time.Duration(p.at.Load())
	p.look(idleSample{}, int64(stopped))
	p.look(sample(5, stopped-time.Millisecond), int64(stopped))
	if p.idle.Load() != 0 {
		t.Errorf("after a look that got no sample, the end watches from a sample taken before it stopped spinning (at %d, stopped at %d)", p.at.Load(), stopped)
	}
}

// An end whose spinning holds up gets its shortest parked spell back after
// heldWindows good windows, relooks or not: here windows of 20 ms (a
// reader that works between tokens), so that a relook comes every 50
// windows, with the CPUs idle at each.
func TestLongSpinningResetsTheLevel(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	var p spinner
	p.level.Store(maxLevel)
	steady(&p)
	const windowTakes = 20 * time.Millisecond
	idle := int64(1000)
	for range 500 { // 10 s of windows, every one good
		p.since.Add(-int64(windowTakes))
		spinWindow(&p, true, time.Microsecond)
		if p.mode.Load() == spinParked { // a relook: the CPUs are idle, it tries again
			stopped := time.Duration(p.at.Load())
			p.look(sample(idle, stopped+time.Microsecond), int64(stopped))
			idle += 100
			if !p.look(sample(idle, stopped+busyAfter), int64(stopped+busyAfter)) {
				t.Fatal("a relook on an idle machine did not try again")
			}
			spinWindow(&p, true, time.Microsecond) // the trial's first window
			if p.mode.Load() != spinSteady {
				t.Fatal("the trial after a relook is not steady after a good window")
			}
		}
	}
	if p.level.Load() != 0 {
		t.Errorf("level %d after 10 s of good windows (%v each) with a CPU idle at every relook, want 0", p.level.Load(), windowTakes)
	}
}

// A sample that says nothing (a reading of /proc/stat that failed) is a
// sample like any other: taken before the end was made, or before it
// stopped spinning, it is not watched, and the samples after it decide.
func TestOldUnknownSamplesAreNotWatched(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	var fresh, stopped spinner
	const made = 2 * time.Hour
	fresh.look(idleSample{}, int64(made))
	steady(&stopped)
	for range 3 {
		spinWindow(&stopped, true, quickWait+15*time.Microsecond)
	}
	if stopped.mode.Load() != spinParked {
		t.Fatal("three bad windows did not stop the end")
	}
	for name, p := range map[string]*spinner{"a fresh end": &fresh, "a stopped end": &stopped} {
		from := time.Duration(p.at.Load())
		tried := p.look(idleSample{at: int64(from - time.Millisecond), state: idleUnknown}, int64(from))
		tried = p.look(sample(100, from+time.Millisecond), int64(from+time.Millisecond)) || tried
		tried = p.look(sample(100, from+time.Millisecond+busyAfter), int64(from+time.Millisecond+busyAfter)) || tried
		if tried || p.mode.Load() != spinParked {
			t.Errorf("%s tried spinning on a machine with no idle time since, after a look got an unknown sample from before (idle %d)", name, p.idle.Load())
		}
	}
}

// One tick of idle time, which a sliver of a busy machine's idle time may
// complete in any watch, is no idle CPU, however short the watch: /proc/stat
// counts in 10 ms ticks, and one is a tenth of any watch under 100 ms.
func TestOneIdleTickIsNoIdleCPU(t *testing.T) {
	var p spinner
	busy(&p)
	watched := time.Duration(p.at.Load()) + time.Millisecond
	p.look(sample(7, watched), int64(watched))
	later := watched + 25*time.Millisecond
	if p.look(sample(8, later), int64(later)) || p.level.Load() != 1 {
		t.Errorf("one tick of idle time in a 25 ms watch: tried or judged busy (level %d); want too soon to tell", p.level.Load())
	}
	if !p.look(sample(9, later), int64(later)) {
		t.Error("two ticks of idle time in a 25 ms watch did not start a trial")
	}
	var q spinner
	busy(&q)
	watched = time.Duration(q.at.Load()) + time.Millisecond
	q.look(sample(7, watched), int64(watched))
	if later := watched + 150*time.Millisecond; q.look(sample(8, later), int64(later)) || q.level.Load() != 2 {
		t.Errorf("one tick of idle time in 150 ms: level %d, want 2 (busy)", q.level.Load())
	}
}

// A /proc/stat whose idle count jumps (parseIdle takes up to 2^61 a field)
// is judged in ticks, with no product that could overflow.
func TestIdleTicksDoNotOverflow(t *testing.T) {
	for _, n := range []int64{1 << 40, 1<<62 - 1} {
		if got := judgeIdle(n, busyAfter); got != idleEnough {
			t.Errorf("%d ticks in %v: %d, want enough", n, busyAfter, got)
		}
	}
	if got := judgeIdle(1, time.Duration(1<<62)); got != idleTooLittle {
		t.Errorf("1 tick in %v: %d, want too little", time.Duration(1<<62), got)
	}
}

// Two readers of one steady end, every spun read quick: the window's count
// of quick reads stays within a window and the few reads that race its
// end, and no good window turns bad through lost counts.
func TestQuickStaysInItsWindow(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	var p spinner
	steady(&p)
	p.since.Store(int64(monotonic() + time.Hour)) // no relook
	var worst atomic.Int32
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 500_000 {
				p.spun(true, time.Microsecond)
				if q := int32(uint32(p.win.Load())); q > worst.Load() {
					worst.Store(q)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("largest window: %d reads", worst.Load())
	if worst.Load() >= 2*window {
		t.Errorf("a window ran to %d reads, twice its %d", worst.Load(), window)
	}
	if p.mode.Load() != spinSteady {
		t.Errorf("two readers whose every spun read was quick stopped the end (mode %d, level %d)", p.mode.Load(), p.level.Load())
	}
}

// A read that has no scratch of its own to keep parked waits in (one of
// several at once) takes one wait of a parked spell, not a batch it would
// lose: concurrent readers keep the spell as long as a sole one.
func TestConcurrentReadersKeepTheParkedSpell(t *testing.T) {
	var p spinner
	busy(&p)
	spell := p.skip.Load()
	for i := int32(1); i <= 10; i++ {
		if w, more := p.plan(1); w != waitPark || more != 0 {
			t.Fatalf("plan(1) of a parked end: %d, %d more; want parked, 0 more", w, more)
		}
		if got := p.skip.Load(); got != spell-i {
			t.Fatalf("after %d waits of one read each, %d of a spell of %d left; want %d", i, got, spell, spell-i)
		}
	}
}

// A busy machine keeps a parked end from reading the clock or GOMAXPROCS on
// every wait: plan counts, and asks the machine once per spell.
func TestParkedSpellsGrow(t *testing.T) {
	var p spinner
	for level := int32(1); level <= maxLevel+1; level++ {
		busy(&p)
		want := min(level, maxLevel)
		if p.level.Load() != want || p.skip.Load() != parkedWaits(want) {
			t.Fatalf("busy look %d: level %d, skip %d; want %d, %d", level, p.level.Load(), p.skip.Load(), want, parkedWaits(want))
		}
	}
	for waits := int32(0); waits < parkedWaits(maxLevel); {
		w, more := p.plan(parkBatch)
		if w != waitPark {
			t.Fatalf("a parked end spun after %d waits of a spell of %d", waits, parkedWaits(maxLevel))
		}
		waits += 1 + more
	}
}

// A trial becomes steady at its first good window, and a steady end whose
// spun reads wait, as they do when the peer is runnable but not running (a
// busy machine), stops after three bad windows in a row, not after one.
func TestSpinStopsWhenThePeerIsLate(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	var p spinner
	steady(&p)
	if planOf(&p) != waitSpin {
		t.Fatal("a steady end with quick spun reads does not spin")
	}
	late := quickWait + 15*time.Microsecond // within spinFor: the spins paid
	spinWindow(&p, true, late)
	if p.mode.Load() != spinSteady {
		t.Fatal("one window of late tokens stopped the spinning")
	}
	spinWindow(&p, true, time.Microsecond)
	for i := range 3 {
		if p.mode.Load() != spinSteady {
			t.Fatalf("stopped after %d late windows, want 3", i)
		}
		spinWindow(&p, true, late)
	}
	if p.mode.Load() != spinParked || planOf(&p) != waitPark {
		t.Fatal("three windows in a row of tokens that came late did not stop the spinning")
	}
	if p.level.Load() != 1 || p.skip.Load() != parkedWaits(1)-parkBatch {
		t.Errorf("after a stop and a wait: level %d, skip %d; want 1, %d", p.level.Load(), p.skip.Load(), parkedWaits(1)-parkBatch)
	}
}

// What a steady end may cost a token, as bench/README.md says: a read
// spins only while the waits average less than spinWhen, and a spin lasts no
// longer than its wait, so however a peer paces its tokens, the spinning
// averages at most about spinWhen of CPU a token. Two peers try: one that
// keeps every read spinning, with tokens that come just under spinWhen
// (two bad windows) and a good window now and then; and one that makes every
// spin run its whole spinFor in vain, bringing the average back down with
// tokens that are there at once, and keeping the end steady with a good
// window every third.
func TestSpinCostBound(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	slow := func(i int) (bool, time.Duration) { return true, spinWhen - 2*time.Microsecond }
	vain := func(i int) (bool, time.Duration) { return false, spinFor + time.Microsecond }
	good := func(i int) (bool, time.Duration) {
		if i%4 == 3 {
			return false, spinFor + time.Microsecond
		}
		return true, quickWait
	}
	for name, windows := range map[string][]func(int) (bool, time.Duration){
		"slow":    {slow, slow, good},
		"in vain": {vain, vain, good},
	} {
		var p spinner
		steady(&p)
		var cost time.Duration
		tokens := 0
		for range 20 {
			for _, read := range windows {
				for i := 0; i < window; tokens++ {
					p.since.Store(int64(monotonic())) // no relook: the pace, not the clock
					switch w, _ := p.plan(parkBatch); w {
					case waitSpin:
						paid, wait := read(i)
						p.spun(paid, wait)
						cost += min(wait, spinFor)
						i++
					case waitTimed:
						p.parkedFor(0) // a token there at once
					default:
						t.Fatalf("%s: after %d tokens the end stopped spinning", name, tokens)
					}
				}
			}
		}
		if per := cost / time.Duration(tokens); per > spinWhen {
			t.Errorf("%s: the spinning cost %v of CPU a token over %d tokens; bench/README.md says about %v at most", name, per, tokens, spinWhen)
		} else {
			t.Logf("%s: %v of CPU a token over %d tokens", name, per, tokens)
		}
	}
}

// A trial that has no good window within trialFor stops.
func TestTrialsEnd(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	var p spinner
	trying(&p)
	p.since.Store(int64(monotonic() - trialFor - time.Millisecond))
	if planOf(&p) != waitPark || p.mode.Load() != spinParked {
		t.Error("a trial older than trialFor without a good window still spins")
	}
}

// heldWindows good windows make the next parked spell the shortest again.
func TestHeldWindowsResetTheLevel(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	var p spinner
	p.level.Store(maxLevel)
	steady(&p)
	for range heldWindows {
		spinWindow(&p, true, time.Microsecond)
	}
	if p.level.Load() != 0 {
		t.Errorf("level %d after %d good windows, want 0", p.level.Load(), heldWindows)
	}
}

// With one P a read does not spin: the goroutine that would write the
// token could not run meanwhile. A trial reads GOMAXPROCS at every wait, a
// steady end at every spin that does not pay and every window.
func TestNoSpinWithOneP(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var p spinner
	trying(&p)
	if got := planOf(&p); got != waitPark || p.mode.Load() != spinParked {
		t.Errorf("a trial with GOMAXPROCS=1: plan %d, mode %d; want parked", got, p.mode.Load())
	}
	var q spinner
	steady(&q)
	q.spun(false, spinFor) // what a spin with one P comes to
	if q.mode.Load() != spinParked {
		t.Errorf("a steady end with GOMAXPROCS=1 still spins after a spin that did not pay")
	}
	var u spinner
	steady(&u)
	for i := 0; i < window && u.mode.Load() == spinSteady; i++ {
		u.spun(true, time.Microsecond)
	}
	if u.mode.Load() != spinParked {
		t.Errorf("a steady end with GOMAXPROCS=1 still spins after a window")
	}
	// On a real pipe: a writer that answers at once, and the reader never
	// spins (it would show as a spun read in the window).
	r, w := spinPipe(t)
	trying(&r.spin)
	var rs, ws scratch
	for range 50 {
		done := make(chan error, 1)
		go func() { done <- w.write(tokenBytes[1:2], &ws) }()
		if _, err := r.read(&rs); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if n := uint32(r.spin.win.Load()); n != 0 {
			t.Fatalf("%d reads spun with GOMAXPROCS=1", n)
		}
	}
}

// A reader whose writer sends a token a millisecond does not spin after its
// first wait: the waits' average is then far above spinWhen, and each spin
// would only burn spinFor of CPU.
func TestSlowWriterStopsTheSpin(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	r, w := spinPipe(t)
	trying(&r.spin)
	var rs, ws scratch
	for i := range 3 {
		readPacedBurst(t, r, w, &rs, &ws, 1)
		if planOf(&r.spin) == waitSpin {
			t.Fatalf("after %d reads that waited about 1 ms each, the next read would spin (average %v)", i+1, time.Duration(r.spin.avg.Load()))
		}
	}
}

// A writer that sends bursts of tokens a millisecond apart stops the spin
// too: the reads that find a token there already never wait, and the first
// read of each burst, the only one that would spin, spins in vain.
func TestBurstsStopTheSpin(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	r, w := spinPipe(t)
	trying(&r.spin)
	var rs, ws scratch
	const burst = 16
	for i := range 3 {
		readPacedBurst(t, r, w, &rs, &ws, burst)
		if planOf(&r.spin) == waitSpin {
			t.Fatalf("after %d bursts of %d tokens a millisecond apart, the first read of the next would spin (average %v)", i+1, burst, time.Duration(r.spin.avg.Load()))
		}
	}
}

// A reader that polls a quiet pipe, each read ending with its context after
// a millisecond, stops spinning too: a wait that a context ends counts as
// what it was.
func TestTimedOutReadsStopTheSpin(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	p, err := Make()
	if err != nil {
		t.Fatal(err)
	}
	r, w := p.TakeReadEnd(), p.TakeWriteEnd()
	defer r.Close()
	defer w.Close()
	s := r.f.Load().sys
	trying(&s.spin)
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		_, err := r.TokenReadContext(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("read on a quiet pipe: %v, want context.DeadlineExceeded", err)
		}
	}
	if planOf(&s.spin) == waitSpin {
		t.Errorf("after 3 reads that waited about 1 ms each and timed out, the next read would spin (average %v)", time.Duration(s.spin.avg.Load()))
	}
}

// A read whose token is in the pipe already returns it without letting the
// other ready goroutines run first, as a read about to spin does: in a busy
// program each such yield can cost a time slice (up to 10 ms), and reading
// a 600-byte report took 770 ms. Each read here finds a goroutine ready to
// run on its P (the other P is kept busy), and the test counts the reads
// after which it has run.
func TestQueuedTokensDoNotYield(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	r, w := spinPipe(t)
	var rs, ws scratch
	// One wait puts the end in the poller, where every later read goes.
	readPacedBurst(t, r, w, &rs, &ws, 1)
	steady(&r.spin) // reads that wait spin
	if planOf(&r.spin) != waitSpin {
		t.Fatal("a steady end would not spin")
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

// busy has p look at a machine whose CPUs were not idle for busyAfter.
func busy(p *spinner) {
	now := max(monotonic(), time.Millisecond)
	p.idle.Store(0)
	p.at.Store(int64(now))
	p.look(sample(7, now+time.Microsecond), int64(now))
	p.look(sample(7, now+time.Microsecond+busyAfter), int64(now+time.Microsecond+busyAfter))
}

// sample is a sample of idle ticks taken at at.
func sample(idle int64, at time.Duration) idleSample {
	return idleSample{idle: idle, at: int64(at), state: idleKnown}
}

// planOf returns how plan would have a read wait.
func planOf(p *spinner) waitPlan {
	w, _ := p.plan(parkBatch)
	return w
}

// trying puts p in a trial that begins now, as a look does where nothing
// can say how idle the CPUs are.
func trying(p *spinner) {
	now := max(monotonic(), time.Millisecond)
	unknown := idleSample{at: int64(now + time.Microsecond), state: idleUnknown}
	for range 3 {
		p.look(unknown, int64(now))
	}
}

// steady puts a fresh p in the steady mode, as a trial's first good window
// does.
func steady(p *spinner) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(2, runtime.GOMAXPROCS(0))))
	trying(p)
	spinWindow(p, true, time.Microsecond)
	if p.mode.Load() != spinSteady {
		panic("steady: the spinner was not fresh")
	}
}

// spinWindow records a window of spun reads that all went alike.
func spinWindow(p *spinner, paid bool, wait time.Duration) {
	for range window {
		p.spun(paid, wait)
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
