//go:build unix

package tokenpipe

import (
	"runtime"
	"sync/atomic"
	"time"
)

// spinner decides, for one end, whether a read that has found the pipe
// empty spins (retries its non-blocking read for up to spinFor) before it
// parks in the poller, and learns from how the spins went.
//
// Why spin: a thread that parks sleeps, and waking it costs a peer that
// answers within microseconds a scheduler wake-up per token. On a quiet
// 2-CPU VM two processes passing a token back and forth took 2-3 µs a round
// trip spinning, 12-45 µs parked (bench/README.md).
//
// Why not always: a spinning thread never sleeps, so to the kernel it is a
// CPU hog. On a machine whose CPUs are all busy (bench/run's loaded rounds,
// one busy process per core at nice 0 or 19) it runs on borrowed time, some
// milliseconds of quick round trips, and then pays it back: the scheduler
// runs the other work for tens of milliseconds while the spinner and its
// peer wait (measured: windows of 256 spun reads that took 0.7 ms, then one
// that took 75 ms). A thread that parks is woken ahead of that work
// instead. Spinning there made round trips 1.3-12 times os.Pipe's (issue
// 16), and every spin was CPU taken from the work around it.
//
// So an end spins only while the machine has a CPU to spare and spinning
// holds up. It is in one of three modes:
//
//   - Parked (a fresh end, and one whose spinning stopped): reads park at
//     once, at the cost of a counter: no clock, no GOMAXPROCS. A stopped
//     end parks parkedWaits(level) waits, 4 times more at each stop; then,
//     and on a fresh end every checkEvery waits, it looks at the machine
//     (look): once the CPUs have been idle for a tenth of the time it has
//     watched (two ticks at least), a spinner would take its time from
//     nobody, and it tries; busyAfter with less than a tenth means the
//     machine is busy, and it parks on as after a stop. Where the system
//     cannot say (machineIdle), it tries. The idle time comes from samples
//     that a goroutine of machineIdle's takes, which no read waits for; an
//     end watches only samples taken since it was made, last spun or last
//     found the machine busy.
//   - Trying and steady: a read spins while the reads' waits, spun or
//     parked, have lately averaged less than spinWhen (a peer that answers
//     within microseconds; one that writes seldom is not worth a spin), and
//     while there is more than one P (with one, the goroutine that would
//     write the token could not run meanwhile; GOMAXPROCS is read at every
//     wait of a trial, and, as it costs the scheduler's lock, only at each
//     spin that did not pay and each window's end of a steady end, so a
//     steady end may spin until then after a drop to one P). Spun reads are
//     judged in windows of 256: quick if the token came within quickWait of
//     finding the pipe empty. A trial becomes steady at its first window
//     with 3/4 quick, and stops if it has none within trialFor; a steady end
//     stops after three windows in a row with fewer (the machine got busy,
//     or the peer cannot keep up), and, at the end of the first good window
//     relookAfter after its trial began, parks to look at the machine again
//     (relook): its own spinning keeps the CPUs busy, so the machine's idle
//     time says nothing while it spins, and spun reads can stay quick on a
//     machine that has since become busy, on time taken from the work there.
//
// heldWindows good steady windows in a row (a relook that finds the CPUs
// idle does not break the row) make the next parked spell the shortest
// again. Concurrent readers of one end may lose one another's updates, and
// count a read in the window after its own: the state only steers the spin,
// and every field stays within its bounds.
type spinner struct {
	mode  atomic.Int32  // spinParked (the zero value), spinTrying or spinSteady
	skip  atomic.Int32  // parked: waits left before the next look
	level atomic.Int32  // parked spells since spinning last held up, 0 to maxLevel
	idle  atomic.Int64  // parked: the idle time +1 when watching began; -1 unknown; 0 not watching yet
	at    atomic.Int64  // parked: when watching began (monotonic ns, the sample's time)
	since atomic.Int64  // trying, steady: when the trial began (monotonic ns)
	avg   atomic.Int64  // trying, steady: moving average of the waits, ns
	win   atomic.Uint64 // the current window: spun reads + quick ones<<32 (one atomic, so that a window's counts agree)
	bad   atomic.Int32  // steady: windows in a row that were not good
	held  atomic.Int32  // steady: good windows in a row
}

const (
	spinParked int32 = iota
	spinTrying
	spinSteady
)

// How a read that has found the pipe empty waits.
type waitPlan uint8

const (
	waitPark  waitPlan = iota // park in the poller
	waitTimed                 // park, and time the wait for the average
	waitSpin                  // spin first
)

const (
	spinFor     = 100 * time.Microsecond // the longest spin
	yieldAfter  = 20 * time.Microsecond  // a spin still empty by then lets the CPU's other threads run between reads
	spinWhen    = 50 * time.Microsecond  // spin while the waits average less
	longestWait = 8 * spinFor            // the most one wait counts for in the average
	quickWait   = 25 * time.Microsecond  // a spun read answered within this was quick
	window      = 256                    // spun reads judged together
	quickRead   = 1 << 32                // a quick read in spinner.win
	trialFor    = 50 * time.Millisecond  // a trial without a good window by then stops
	heldWindows = 64                     // good steady windows that reset the level
	checkEvery  = 256                    // parked: waits between looks at the machine
	parkBatch   = 64                     // parked: waits a reader takes from skip at once
	busyAfter   = 20 * time.Millisecond  // parked: this long without an idle CPU is busy
	relookAfter = time.Second            // steady: spinning this long looks at the machine again
	idleTick    = 10 * time.Millisecond  // idleSample's unit: /proc/stat counts USER_HZ (100) ticks
	maxLevel    = 4
)

// parkedWaits is how many waits park after the machine was found busy at
// level (1 to maxLevel): 1024, 4096, 16384, 65536.
func parkedWaits(level int32) int32 { return 1024 << (2 * (level - 1)) }

// plan decides how a read that has found the pipe empty waits. When it
// parks, the reader may park up to batch-1 more waits without asking again
// (kept in its scratch; a reader that has no scratch to keep them in asks
// for 1): a parked wait then costs no atomic operation.
func (p *spinner) plan(batch int32) (waitPlan, int32) {
	if p.mode.Load() == spinParked {
		for n := p.skip.Load(); n > 0; n = p.skip.Load() {
			if take := min(n, batch); p.skip.CompareAndSwap(n, n-take) {
				return waitPark, take - 1
			}
		}
		if !p.look(machineIdle(), int64(monotonic())) {
			return waitPark, 0
		}
	}
	// GOMAXPROCS takes the scheduler's lock, so it is read at every wait
	// of a trial, then only where a steady end's spins go wrong (spun); it
	// can change at run time (since Go 1.25 it follows a container's CPU
	// quota).
	if p.mode.Load() == spinTrying && (time.Duration(int64(monotonic())-p.since.Load()) > trialFor || runtime.GOMAXPROCS(0) < 2) {
		p.stop()
		return waitPark, 0
	}
	if time.Duration(p.avg.Load()) >= spinWhen {
		return waitTimed, 0
	}
	return waitSpin, 0
}

// look decides, for a parked end, from a sample of the machine's idle time
// and the time now, whether to try spinning (true), or when to look again.
// The idle times compared are those of samples, each with the time it was
// taken: a sample that is some waits old compares as well as a fresh one.
func (p *spinner) look(s idleSample, now int64) bool {
	base, since := p.idle.Load(), time.Duration(s.at-p.at.Load())
	verdict := judgeIdle(s.idle+1-base, since) // meaningful once watching a known sample
	switch {
	case base == 0: // not watching yet: a fresh end, or one that stopped
		switch from := p.at.Load(); {
		case from == 0: // a fresh end: samples from before it say nothing of it
			p.at.Store(now)
		case s.state != idleNone && s.at > from: // taken since
			p.watch(s)
		}
		p.skip.Store(checkEvery)
		return false
	case s.state == idleUnknown || base < 0: // nobody can say: try
	case s.state == idleNone: // no sample yet
		p.skip.Store(checkEvery)
		return false
	case since > 0 && verdict == idleEnough:
		// The CPUs were idle for a tenth of the time since the end began to
		// watch, and for two ticks at least: more than the slivers that a
		// busy machine gathers now and then (at nice 19, a tick in a few
		// seconds), one of which may complete a tick in any watch
		// (TestOneIdleTickIsNoIdleCPU).
	case since < busyAfter || verdict == idleOneTick:
		p.skip.Store(checkEvery) // too soon to tell
		return false
	default: // less idle time than that for busyAfter: the machine is busy
		p.idle.Store(0) // the next look after the spell watches afresh
		p.at.Store(now)
		p.parkLonger()
		return false
	}
	p.since.Store(now)
	p.avg.Store(0)
	p.win.Store(0)
	p.mode.Store(spinTrying)
	return true
}

// How much idle time a watch has seen (ticks).
type idleVerdict uint8

const (
	idleTooLittle idleVerdict = iota // less than a tenth of the watch
	idleOneTick                      // a tenth, but one tick only: a sliver may make one
	idleEnough                       // a tenth, and two ticks at least
)

// judgeIdle judges n ticks of idle time in a watch of d, in ticks (a product
// with idleTick could overflow on a /proc/stat that jumps:
// TestIdleTicksDoNotOverflow).
func judgeIdle(n int64, d time.Duration) idleVerdict {
	tenth := int64((d + 10*idleTick - 1) / (10 * idleTick)) // ticks in a tenth of d, rounded up
	switch {
	case n < max(tenth, 1):
		return idleTooLittle
	case n < 2:
		return idleOneTick
	}
	return idleEnough
}

// watch takes a sample, known or unknown, as what the next looks compare
// with.
func (p *spinner) watch(s idleSample) {
	if s.state == idleKnown {
		p.idle.Store(s.idle + 1)
	} else {
		p.idle.Store(-1)
	}
	p.at.Store(s.at)
}

// stop stops the spinning for a parked spell longer than the last.
func (p *spinner) stop() {
	p.unwatch()
	p.parkLonger()
}

// relook stops a steady end's spinning for a look at the machine, at the
// same level: if a CPU is still idle, the trial that follows is steady
// after its first window.
func (p *spinner) relook() {
	p.unwatch()
	p.skip.Store(0)
	p.mode.Store(spinParked)
}

// unwatch has the next looks watch the machine afresh, from a sample taken
// from now on, and asks for one: the samples taken while the end spun saw
// the CPUs kept busy by the spinning.
func (p *spinner) unwatch() {
	machineIdle()
	p.idle.Store(0)
	p.at.Store(int64(monotonic()))
}

// parkLonger parks the end's reads for parkedWaits of the next level.
func (p *spinner) parkLonger() {
	p.held.Store(0)
	level := min(p.level.Load()+1, maxLevel)
	p.level.Store(level)
	p.skip.Store(parkedWaits(level))
	p.mode.Store(spinParked)
}

// spun records a read that spun: paid if its token came within spinFor of
// the spin's start, wait how long the read waited from finding the pipe
// empty (the yield, the spin, and the parking after a spin that did not
// pay).
func (p *spinner) spun(paid bool, wait time.Duration) {
	mode := p.mode.Load()
	p.waited(wait)
	add := uint64(1)
	if paid && wait <= quickWait {
		add += quickRead
	}
	v := p.win.Add(add)
	n, quick := int32(uint32(v)), int32(v>>32)
	if (!paid || n >= window) && mode == spinSteady && runtime.GOMAXPROCS(0) < 2 {
		p.stop()
		return
	}
	if n < window || !p.win.CompareAndSwap(v, 0) {
		// Not full; or a concurrent reader's read came after this one, and
		// that reader ends the window with its count, which has this read's
		// (TestQuickStaysInItsWindow).
		return
	}
	good := quick*4 >= n*3 // 3/4 of the window's reads were quick
	switch {
	case mode == spinTrying && good:
		p.bad.Store(0)
		p.mode.Store(spinSteady)
	case mode != spinSteady:
	case good:
		p.bad.Store(0)
		if p.held.Add(1) >= heldWindows {
			p.level.Store(0)
		}
		if time.Duration(int64(monotonic())-p.since.Load()) >= relookAfter {
			p.relook()
		}
	default:
		// One window can be unlucky (a GC, a burst of another process's
		// work: on a quiet machine whole windows went empty now and then);
		// three in a row are not.
		p.held.Store(0)
		if p.bad.Add(1) >= 3 {
			p.stop()
		}
	}
}

// parkedFor records how long a timed wait took.
func (p *spinner) parkedFor(d time.Duration) {
	if p.mode.Load() != spinParked {
		p.waited(d)
	}
}

// waited adds a wait to the moving average (the newest counts 1/8).
func (p *spinner) waited(d time.Duration) {
	d = min(d, longestWait)
	old := p.avg.Load()
	p.avg.Store(old + (int64(d)-old)/8)
}

// idleSample is what machineIdle knows of the machine's idle time.
type idleSample struct {
	idle  int64     // how long the CPUs have been idle in all, in idleTicks (only differences count)
	at    int64     // when the sample was taken (monotonic ns)
	state idleState // whether idle says anything
}

type idleState uint8

const (
	idleNone    idleState = iota // no sample yet: one is being taken
	idleKnown                    // idle and at say
	idleUnknown                  // the system cannot say
)

// monotonic returns the time on the monotonic clock, in a single clock
// read (time.Now takes two, the wall clock's too).
func monotonic() time.Duration { return time.Since(clockBase) }

var clockBase = time.Now()
