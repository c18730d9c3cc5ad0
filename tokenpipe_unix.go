//go:build unix

package tokenpipe

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sysFile is an open pipe end: a non-blocking descriptor that reads and
// writes with plain read(2) and write(2), and joins the runtime poller only
// when a call would block.
//
// Why not an *os.File from the start: a token that is already there, or
// room for one, needs one system call, and the poller adds to it: joining
// costs three more (fcntl in os.NewFile, epoll_ctl to add and again to
// remove on close), and once a descriptor is registered every write to the
// pipe also wakes the poller's thread. So the end becomes an *os.File, in
// the poller, the first time a read finds the pipe empty or a write finds it
// full; an end that only ever writes, like a daemon's report end, never
// joins. In the poller, read deadlines interrupt waiting reads and Close
// wakes them.
//
// The calls are syscall.Read and Write, never syscall.RawSyscall, although
// the runtime's system-call bookkeeping costs a cross-process round trip
// much (see the README's Performance): a raw call keeps its P while in the
// kernel, and O_NONBLOCK does not keep read(2) or write(2) on a pipe from
// sleeping there. Both take the pipe's lock first, which the peer holds
// while its own read or write copies from or to its memory (fs/pipe.c), and
// that copy can wait for a page fault as long as the peer likes (a stalled
// FUSE or NFS mount, userfaultfd): a raw call would stop every goroutine at
// the next stop-the-world meanwhile
// (TestReadWaitingForThePipeLockLetsTheProcessRun).
//
// Every read and write counts itself in state while it uses fd, and close
// and export wait until none is counted, so that fd is never closed, nor
// made blocking, under a call that is using it.
type sysFile struct {
	fd    int
	state atomic.Uint64 // calls under way, and the shut flags

	f atomic.Pointer[os.File] // nil until adopt

	mu          sync.Mutex // guards adopt, interrupted and the deadlines
	idle        sync.Cond  // broadcast when the last call leaves a shut end
	interrupted bool
	cleanup     runtime.Cleanup // closes fd if the end is dropped unclosed

	spin spinner // whether reads that find the pipe empty spin first
}

// The state word of a sysFile: the number of calls under way in the low
// bits, and a flag for each way an end is shut.
const (
	shutClosed   = 1 << 62
	shutExported = 1 << 61
	callsMask    = shutExported - 1
)

func newSysFile(fd int) *sysFile {
	s := &sysFile{fd: fd}
	s.idle.L = &s.mu
	s.cleanup = runtime.AddCleanup(s, func(fd int) {
		unix.Close(fd)
		disown(uintptr(fd))
	}, fd)
	return s
}

func (s *sysFile) handle() uintptr { return uintptr(s.fd) }

// enter counts a call under way, or says why none may start. sole reports
// whether it was the only call under way: while it is counted, no call that
// enters after it is, so a sole read may use the end's own scratch without
// claiming it (claiming and releasing cost two atomic operations a wait).
func (s *sysFile) enter() (sole bool, err error) {
	v := s.state.Add(1)
	if v&^callsMask != 0 {
		s.leave()
		return false, shutError(v)
	}
	return v&callsMask == 1, nil
}

// leave ends what enter counted.
func (s *sysFile) leave() {
	if v := s.state.Add(^uint64(0)); v&^callsMask != 0 && v&callsMask == 0 {
		s.mu.Lock()
		s.idle.Broadcast()
		s.mu.Unlock()
	}
}

func shutError(state uint64) error {
	if state&shutClosed != 0 {
		return os.ErrClosed
	}
	return ErrExported
}

// shut sets flag, so that no new call starts, wakes the calls under way and
// waits until they have returned. Closing is refused only once closed;
// exporting also once exported, and if a close came while it waited. s.mu
// must be held; the wait lets go of it meanwhile.
func (s *sysFile) shut(flag uint64) error {
	refuse := uint64(shutClosed)
	if flag == shutExported {
		refuse |= shutExported
	}
	for {
		v := s.state.Load()
		if v&refuse != 0 {
			return shutError(v)
		}
		if s.state.CompareAndSwap(v, v|flag) {
			break
		}
	}
	s.setDeadlines()
	for s.state.Load()&callsMask != 0 {
		s.idle.Wait()
	}
	if v := s.state.Load(); flag == shutExported && v&shutClosed != 0 {
		return shutError(v) // fd may be closed already: hands off
	}
	return nil
}

// setDeadlines makes the poller's waits end at once (a deadline long past)
// while reads are interrupted or the end is shut, and lets them wait
// otherwise. s.mu must be held.
func (s *sysFile) setDeadlines() {
	f := s.f.Load()
	if f == nil {
		return // no call waits in the poller
	}
	var none, past time.Time = time.Time{}, time.Unix(1, 0)
	shut := s.state.Load()&^callsMask != 0
	rd, wd := none, none
	if shut || s.interrupted {
		rd = past
	}
	if shut {
		wd = past
	}
	// These fail only once f is closed, which happens after shut.
	f.SetReadDeadline(rd)
	f.SetWriteDeadline(wd)
}

// file returns the end as an *os.File in the poller, made on first use.
func (s *sysFile) file() *os.File {
	if f := s.f.Load(); f != nil {
		return f
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.adopt()
}

// adopt wraps fd in an *os.File, once; os.NewFile puts a non-blocking
// descriptor in the poller. s.mu must be held.
func (s *sysFile) adopt() *os.File {
	if f := s.f.Load(); f != nil {
		return f
	}
	f := os.NewFile(uintptr(s.fd), "tokenpipe-"+strconv.Itoa(s.fd))
	// From now on the *os.File holds fd. The cleanup keeps f reachable, so
	// that f's own finalizer cannot close fd before this one disowns it.
	s.cleanup.Stop()
	fd := s.fd
	s.cleanup = runtime.AddCleanup(s, func(f *os.File) {
		f.Close()
		disown(uintptr(fd))
	}, f)
	s.f.Store(f)
	s.setDeadlines() // a shut or interrupt may have come first
	return f
}

// scratch is what a read that waits in the poller reads its token through,
// with what tryRead keeps between the poller's calls.
type scratch struct {
	b [1]byte

	// Built on the first wait, so that later ones allocate nothing.
	rc          syscall.RawConn
	tryReadFunc func(fd uintptr) bool // b.tryRead as a func value, made once
	spinner     *spinner              // the end's
	parkLeft    int32                 // waits that park without asking spinner
	oneRead     bool                  // made for one read: parkLeft dies with it

	// This read's wait, as tryRead goes.
	state waitState
	paid  bool          // waitSpun: whether the spin caught the token in time
	begun time.Duration // when read(2) found the pipe empty (monotonic)
	start time.Duration // when the spin, after the yield, or the timed wait began
	n     int           // what read(2) returned
	err   error
}

// waitState is where a read that waits in the poller is.
type waitState uint8

const (
	waitUndecided   waitState = iota // read(2) has not found the pipe empty
	waitParked                       // parked, untimed
	waitParkedTimed                  // parked, timed (see spinner.plan)
	waitSpinning                     // spinning
	waitSpun                         // the spin has ended
)

func makePipe() (r, w *sysFile, err error) {
	rfd, wfd, err := openPipe()
	if err == nil {
		rfd, wfd, err = aboveStdio(rfd, wfd)
	}
	if err != nil {
		return nil, nil, err
	}
	return newSysFile(rfd), newSysFile(wfd), nil
}

// aboveStdio moves descriptors 0, 1 and 2, which a process that closed its
// standard streams is given first, above 2: code everywhere takes those for
// standard input, output and error (os.NewFile on 1 or 2 raises SIGPIPE when
// a write finds the pipe broken), so an end must never be one of them.
func aboveStdio(fds ...int) (int, int, error) {
	var err error
	for i, fd := range fds {
		if fd > 2 || err != nil {
			continue
		}
		// F_DUPFD then FD_CLOEXEC under ForkLock, as os does where there is
		// no F_DUPFD_CLOEXEC (AIX): this path is rare, and portable.
		var moved int
		syscall.ForkLock.RLock()
		moved, err = unix.FcntlInt(uintptr(fd), unix.F_DUPFD, 3)
		if err == nil {
			unix.CloseOnExec(moved)
		}
		syscall.ForkLock.RUnlock()
		unix.Close(fd)
		if err != nil {
			err = os.NewSyscallError("fcntl", err)
			fds[i] = -1
			continue
		}
		fds[i] = moved
	}
	if err != nil {
		for _, fd := range fds {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
		return -1, -1, err
	}
	return fds[0], fds[1], nil
}

// read does without a scratch where it can: a token that is there is read
// onto the stack (readDirect).
func (s *sysFile) read(rs *scratch) (byte, error) {
	sole, err := s.enter()
	if err != nil {
		return 0, err
	}
	defer s.leave()
	// An end that has had to wait goes straight to the poller, whose first
	// read(2) finds a token that is there: a direct read first would cost a
	// third system call per token wherever tokens have to be waited for.
	for s.f.Load() == nil {
		tok, n, err := readDirect(s.fd, rs, sole)
		switch {
		case err == nil && n == 1:
			return tok, nil
		case err == nil:
			return 0, io.EOF
		case err == syscall.EINTR:
			continue
		case err != syscall.EAGAIN:
			return 0, os.NewSyscallError("read", err)
		}
		break
	}
	if !sole {
		rs = &scratch{oneRead: true}
	}
	return s.waitRead(rs)
}

// waitRead reads a token through the poller. The caller has entered.
func (s *sysFile) waitRead(b *scratch) (byte, error) {
	if b.rc == nil { // first wait through this scratch: build what it reuses
		rc, err := s.file().SyscallConn()
		if err != nil {
			return 0, err
		}
		b.rc = rc
		b.tryReadFunc = b.tryRead
		b.spinner = &s.spin
	}
	b.state = waitUndecided
	err := b.rc.Read(b.tryReadFunc)
	// Only a read that found the pipe empty feeds the spinner: one whose
	// token was there already says nothing about the next. A wait that a
	// context or Close ended counts as what it was: a spin that timed out
	// did not pay (TestTimedOutReadsStopTheSpin), a timed wait lasted at
	// least that long.
	switch b.state {
	case waitSpun:
		s.spin.spun(b.paid, monotonic()-b.begun)
	case waitParkedTimed:
		s.spin.parkedFor(monotonic() - b.start)
	}
	switch {
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		if v := s.state.Load(); v&^callsMask != 0 {
			return 0, shutError(v)
		}
		return 0, errInterrupted
	case err != nil:
		return 0, fmt.Errorf("%w (%v)", os.ErrClosed, err)
	case b.err != nil:
		return 0, os.NewSyscallError("read", b.err)
	case b.n == 0:
		return 0, io.EOF
	}
	return b.b[0], nil
}

// tryRead is what the runtime poller calls to read a token from fd: true when
// the read is done (b.n and b.err tell how), false to wait until fd is ready.
// The first time read(2) finds the pipe empty, the end's spinner decides
// whether the read spins (retries for up to spinFor) before it parks; it
// learns, in waitRead, how the wait went.
func (b *scratch) tryRead(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), b.b[:])
		switch {
		case err == syscall.EINTR:
			continue
		case err != syscall.EAGAIN:
			b.n, b.err = n, err
			if b.state == waitSpinning {
				b.state, b.paid = waitSpun, monotonic()-b.start <= spinFor
			}
			return true
		}
		switch b.state {
		case waitUndecided:
			switch b.plan() {
			case waitPark:
				b.state = waitParked
				return false
			case waitTimed:
				b.state, b.start = waitParkedTimed, monotonic()
				return false
			}
			// A reader about to spin lets the goroutines that are ready to
			// run go first, at next to no cost when there are none: the one
			// that will write the token may be among them, and a spin would
			// only keep it waiting. Measured on a 2-CPU VM: two goroutines
			// passing a token back and forth with GOMAXPROCS=2 took 13-15 µs
			// a round trip without this, 8-9 µs with it. Only once read(2)
			// has found the pipe empty: a reader whose token is there already
			// (the rest of a report) would otherwise wait, per token, for
			// every ready goroutine to have its turn, up to a time slice each
			// (TestQueuedTokensDoNotYield).
			b.begun = monotonic()
			runtime.Gosched()
			b.state, b.start = waitSpinning, monotonic()
			continue
		case waitSpinning:
			if d := monotonic() - b.start; d <= spinFor {
				// A spin still empty after yieldAfter lets the threads ready
				// to run on this CPU go first between its reads: the peer,
				// which the pipe wakes on the CPU of the thread that woke it,
				// may be waiting there behind this one. Measured on a 2-CPU
				// VM, a child that had been parking and tried to spin again
				// caught its token in 1 try of 33 without this, 17 of 17
				// with it.
				if d >= yieldAfter {
					yieldThread()
				}
				continue
			}
			b.state, b.paid = waitSpun, false
		}
		return false
	}
}

// plan decides how this read waits: as the spinner says, unless parked
// waits that the spinner gave this scratch ahead are left.
func (b *scratch) plan() waitPlan {
	if b.parkLeft > 0 {
		b.parkLeft--
		return waitPark
	}
	batch := int32(parkBatch)
	if b.oneRead {
		batch = 1 // waits given ahead would die with the scratch
	}
	plan, more := b.spinner.plan(batch)
	b.parkLeft = more
	return plan
}

func (s *sysFile) write(p []byte, ws *scratch) error {
	if _, err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	// Go ignores SIGPIPE raised by write(2) (only *os.File raises it again,
	// for descriptors 1 and 2, which an end never is), so a broken pipe is
	// EPIPE here rather than the end of us.
	for len(p) > 0 {
		n, err := syscall.Write(s.fd, p)
		switch err {
		case nil:
			p = p[n:]
		case syscall.EINTR:
		case syscall.EAGAIN:
			return s.waitWrite(p)
		default:
			return os.NewSyscallError("write", err)
		}
	}
	return nil
}

// waitWrite writes the rest of p through the poller, once write(2) has
// found the pipe full. The caller has entered.
func (s *sysFile) waitWrite(p []byte) error {
	rc, err := s.file().SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		for len(p) > 0 {
			n, err := syscall.Write(int(fd), p)
			switch err {
			case nil:
				p = p[n:]
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false // wait for room
			default:
				werr = err
				return true
			}
		}
		return true
	})
	switch {
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		return shutError(s.state.Load())
	case err != nil:
		return fmt.Errorf("%w (%v)", os.ErrClosed, err)
	case werr != nil:
		return os.NewSyscallError("write", werr)
	}
	return nil
}

func (s *sysFile) pending() bool {
	if _, err := s.enter(); err != nil {
		return false
	}
	defer s.leave()
	fds := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if err != unix.EINTR {
			return err == nil && n > 0 && fds[0].Revents&(unix.POLLIN|unix.POLLHUP) != 0
		}
	}
}

func (s *sysFile) setInterrupted(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.interrupted = on
	s.setDeadlines()
}

func (s *sysFile) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shut(shutClosed) != nil {
		return nil // closed already
	}
	s.cleanup.Stop()
	var err error
	if f := s.f.Load(); f != nil {
		err = f.Close()
	} else {
		err = os.NewSyscallError("close", unix.Close(s.fd))
	}
	disown(uintptr(s.fd))
	return err
}

func isBrokenPipe(err error) bool {
	return errors.Is(err, syscall.EPIPE)
}
