package tokenpipe

import (
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// procStat is /proc/stat's path for openat(2), made once: syscall.Open
// allocates its NUL-terminated copy on every call, and a token must cost
// none (TestZeroAllocsPerToken).
var procStat = [...]byte{'/', 'p', 'r', 'o', 'c', '/', 's', 't', 'a', 't', 0}

// The machine's idle time comes from /proc/stat, which a read must never
// wait for: under lxcfs it is a FUSE file, whose read(2) hangs as long as
// the daemon behind it does, O_NONBLOCK or not. So one goroutine reads it,
// started by the first look and asked through sampleAsked, and machineIdle
// hands out its last sample (TestHungProcStatHoldsNoRead). The goroutine
// lives on, parked on the channel: starting one per sample would cost an
// allocation, and a token costs none (TestLooksDoNotAllocate).
var sampler struct {
	mu      sync.Mutex
	last    idleSample
	started bool  // the goroutine is there
	running bool  // a reading is asked for or under way
	began   int64 // when it was asked for (monotonic ns)
}

var sampleAsked = make(chan struct{}, 1)

const (
	sampleEvery = idleTick    // a sample this old asks for a fresh one
	hungAfter   = time.Second // a reading of /proc/stat under way this long has hung
)

// readProcStat reads the machine's idle time: procStatIdle, or a test's
// stand-in (set under sampler.mu).
var readProcStat = procStatIdle

// machineIdle returns the last sample of the machine's idle time, and has a
// fresh one taken when it is older than sampleEvery. It never waits: while
// another reader holds the sample, it answers idleNone, and while a reading
// of /proc/stat has hung, idleUnknown.
func machineIdle() idleSample {
	if !sampler.mu.TryLock() {
		return idleSample{}
	}
	s, now := sampler.last, int64(monotonic())
	hung := sampler.running && time.Duration(now-sampler.began) >= hungAfter
	ask := !sampler.running && (s.state == idleNone || time.Duration(now-s.at) >= sampleEvery)
	if ask {
		sampler.running, sampler.began = true, now
		if !sampler.started {
			sampler.started = true
			go takeSamples()
		}
		sampleAsked <- struct{}{} // room for it: nothing is asked while running
	}
	sampler.mu.Unlock()
	if hung {
		return idleSample{at: now, state: idleUnknown}
	}
	return s
}

// takeSamples reads the machine's idle time whenever asked, and keeps it for
// machineIdle.
func takeSamples() {
	for range sampleAsked {
		lockSampler()
		read := readProcStat
		sampler.mu.Unlock()
		idle, ok := read()
		s := idleSample{idle: idle, at: int64(monotonic()), state: idleKnown}
		if !ok {
			s = idleSample{at: s.at, state: idleUnknown}
		}
		lockSampler()
		sampler.last, sampler.running = s, false
		sampler.mu.Unlock()
	}
}

// lockSampler locks sampler.mu, which is only ever held for a few
// instructions, without blocking: a goroutine that blocks on a mutex may
// allocate the runtime's record of its wait, and a token costs no
// allocation (TestLooksDoNotAllocate).
func lockSampler() {
	for !sampler.mu.TryLock() {
		runtime.Gosched()
	}
}

// procStatIdle returns how long the machine's CPUs have been idle in all, in
// /proc/stat's units (the idle and iowait columns of its "cpu" line, in
// clock ticks), and whether it could tell.
func procStatIdle() (int64, bool) {
	// O_NONBLOCK and O_NOCTTY: whatever sits at /proc/stat (a FIFO or a
	// terminal in a chroot), opening and reading it must not block, nor
	// become the process's terminal.
	const flags = syscall.O_RDONLY | syscall.O_CLOEXEC | syscall.O_NONBLOCK | syscall.O_NOCTTY
	fd, _, errno := syscall.Syscall6(syscall.SYS_OPENAT, uintptr(atFDCWD), uintptr(unsafe.Pointer(&procStat[0])), flags, 0, 0, 0)
	if errno != 0 {
		return 0, false
	}
	// read(2) through syscall.Syscall rather than syscall.Read: under the
	// race detector syscall.Read hands its buffer to the detector, and the
	// buffer escapes to the heap.
	var buf [256]byte
	n, _, errno := syscall.Syscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
	syscall.Close(int(fd))
	if errno != 0 {
		return 0, false
	}
	return parseIdle(buf[:n])
}

// atFDCWD is AT_FDCWD (a variable: as a constant, -100 does not convert to
// uintptr). /proc/stat is absolute, so openat(2) does not use it.
var atFDCWD = -100

// parseIdle parses the first line of /proc/stat, "cpu  user nice system idle
// iowait ...", and returns idle+iowait.
func parseIdle(b []byte) (int64, bool) {
	const prefix = "cpu "
	if len(b) < len(prefix) || string(b[:len(prefix)]) != prefix {
		return 0, false
	}
	var fields [5]int64
	i, f := len(prefix), 0
	for f < len(fields) {
		for i < len(b) && b[i] == ' ' {
			i++
		}
		start := i
		var v int64
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if v > (1<<61)/10 { // two fields summed stay within int64
				return 0, false
			}
			v = v*10 + int64(b[i]-'0')
			i++
		}
		if i == start || i == len(b) || (b[i] != ' ' && b[i] != '\n') {
			return 0, false
		}
		fields[f] = v
		f++
	}
	return fields[3] + fields[4], true
}

// yieldThread lets the threads that are ready to run on this CPU go first
// (sched_yield(2)); it returns at once when there are none.
func yieldThread() { syscall.Syscall(syscall.SYS_SCHED_YIELD, 0, 0, 0) }
