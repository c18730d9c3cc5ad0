//go:build unix

package tokenpipe

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sysFile is an open pipe end: a non-blocking descriptor that becomes an
// *os.File on its first read or write, which puts it in the runtime poller,
// where read deadlines interrupt reads and Close wakes them.
//
// Why not at once: joining the poller costs three system calls (fcntl in
// os.NewFile, epoll_ctl to add and again to remove on close), which an end
// that is only closed, or exported to a child, never needs. In the handshake
// the child's end is never read or written in the parent.
type sysFile struct {
	f atomic.Pointer[os.File] // nil until adopt

	mu      sync.Mutex // guards the fields below and adopt
	fd      int
	closed  bool
	cleanup runtime.Cleanup // closes fd if the end is dropped before adopt
}

func newSysFile(fd int) *sysFile {
	s := &sysFile{fd: fd}
	s.cleanup = runtime.AddCleanup(s, func(fd int) { unix.Close(fd) }, fd)
	return s
}

// file returns the end as an *os.File, in the poller unless exported.
func (s *sysFile) file() (*os.File, error) {
	if f := s.f.Load(); f != nil {
		return f, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.adopt()
}

// adopt wraps fd in an *os.File, once; os.NewFile puts a non-blocking
// descriptor in the poller. s.mu must be held.
func (s *sysFile) adopt() (*os.File, error) {
	if f := s.f.Load(); f != nil {
		return f, nil
	}
	if s.closed {
		return nil, os.ErrClosed
	}
	s.cleanup.Stop() // the *os.File closes fd if dropped, from now on
	f := os.NewFile(uintptr(s.fd), "tokenpipe-"+strconv.Itoa(s.fd))
	s.f.Store(f)
	return f, nil
}

// scratch is the memory one system call reads or writes a token through.
type scratch struct {
	busy atomic.Bool
	b    [1]byte

	// For read: built on first use, so that later reads allocate nothing.
	rc          syscall.RawConn
	tryReadFunc func(fd uintptr) bool // b.tryRead
	spin        bool                  // whether tryRead may still spin
	n           int                   // what read(2) returned
	err         error
}

// maxEndValue is the largest value FromEnv accepts: a descriptor is an int32.
const maxEndValue = math.MaxInt32

// makePipe creates a pipe whose ends are close-on-exec.
func makePipe() (r, w *sysFile, err error) {
	rfd, wfd, err := openPipe()
	if err != nil {
		return nil, nil, err
	}
	return newSysFile(rfd), newSysFile(wfd), nil
}

// read reads one token, through rs or a scratch of its own. It returns io.EOF
// at end of stream, errInterrupted while setInterrupted(true) is in force, and
// an error matching os.ErrClosed once close has begun.
func (s *sysFile) read(rs *scratch) (byte, error) {
	b := rs.claim()
	if b.rc == nil { // first use of this scratch: build what it reuses
		f, err := s.file()
		var rc syscall.RawConn
		if err == nil {
			rc, err = f.SyscallConn()
		}
		if err != nil {
			rs.release(b)
			return 0, err
		}
		b.rc, b.tryReadFunc = rc, b.tryRead
	}
	b.spin = spinOK
	err := b.rc.Read(b.tryReadFunc)
	tok, n, readErr := b.b[0], b.n, b.err
	rs.release(b)
	switch {
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		return 0, errInterrupted
	case err != nil:
		// RawRead fails otherwise only because the file is closed or
		// closing (internal/poll's ErrFileClosing, which os.File's own
		// methods translate to os.ErrClosed).
		return 0, fmt.Errorf("%w (%v)", os.ErrClosed, err)
	case readErr != nil:
		return 0, os.NewSyscallError("read", readErr)
	case n == 0:
		return 0, io.EOF
	}
	return tok, nil
}

// tryRead is what the runtime poller calls to read a token from fd: true when
// the read is done (b.n and b.err tell how), false to wait until fd is ready.
//
// The first call spins on non-blocking reads for up to spinFor before giving
// up: a thread that parks in the poller sleeps, and waking it costs a peer
// that answers within microseconds (a child echoing a token) a full
// scheduler wake-up per token, 20 µs and more on a virtual machine. As with
// sync.Mutex, spinning is only done with more than one CPU, and only briefly;
// deadlines and Close take effect when it ends.
func (b *scratch) tryRead(fd uintptr) bool {
	var deadline time.Time
	for {
		n, err := syscall.Read(int(fd), b.b[:])
		switch {
		case err == syscall.EINTR:
			continue
		case err != syscall.EAGAIN:
			b.n, b.err = n, err
			return true
		case !b.spin:
			return false
		}
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(spinFor)
		} else if now.After(deadline) {
			b.spin = false
			return false
		}
	}
}

// spinFor bounds tryRead's spinning; spinOK says whether to spin at all.
const spinFor = 25 * time.Microsecond

var spinOK = runtime.NumCPU() > 1

// write writes token, through ws or a scratch of its own where the system
// call needs one. A broken pipe gives an error for which isBrokenPipe holds.
func (s *sysFile) write(token byte, ws *scratch) error {
	// Go ignores SIGPIPE for descriptors other than 1 and 2, which FromEnv
	// refuses, so a broken pipe is EPIPE here rather than the end of us.
	f, err := s.file()
	if err != nil {
		return err
	}
	_, err = f.Write(tokenBytes[token : int(token)+1])
	return err
}

// tokenBytes holds every token, for write(2) to read from: no buffer to claim.
var tokenBytes = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
	}
	return t
}()

// setInterrupted makes pending and later reads return errInterrupted while
// on is true.
func (s *sysFile) setInterrupted(on bool) {
	var deadline time.Time // none
	if on {
		deadline = time.Unix(1, 0) // long past
	}
	if f, err := s.file(); err == nil {
		f.SetReadDeadline(deadline) // fails only once closed, when reads fail anyway
	}
}

// close closes the end, waking pending reads and writes.
func (s *sysFile) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if f := s.f.Load(); f != nil {
		return f.Close()
	}
	s.cleanup.Stop()
	return os.NewSyscallError("close", unix.Close(s.fd))
}

// export makes cmd's child inherit the end and returns the value that names
// it in the child.
func (s *sysFile) export(cmd *exec.Cmd) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The child shares our open file description, and O_NONBLOCK lives there:
	// a child not written in Go expects the blocking pipe it would get from a
	// shell, and FromEnv makes it non-blocking again for a Go child. Cleared
	// before adopt, it also keeps an end never used here out of the poller.
	if s.closed {
		return "", os.ErrClosed
	}
	err := unix.SetNonblock(s.fd, false)
	if err != nil {
		return "", os.NewSyscallError("fcntl", err)
	}
	f, err := s.adopt()
	if err != nil {
		return "", err
	}
	// os/exec numbers ExtraFiles from 3 in the child.
	value := strconv.Itoa(3 + len(cmd.ExtraFiles))
	cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	return value, nil
}

// importEnd takes over the inherited end that n names, or returns an error
// saying why n names none, leaving it untouched.
func importEnd(n uint64) (*sysFile, error) {
	fd := int(n)
	if fd <= 2 {
		return nil, fmt.Errorf("descriptor %d is standard input, output or error, never an exported end: %w", fd, os.ErrInvalid)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("descriptor %d is not open: %w: %w", fd, err, os.ErrInvalid)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return nil, fmt.Errorf("descriptor %d is a %s, not a pipe: %w", fd, fileType(uint32(st.Mode)), os.ErrInvalid)
	}
	// Hold ForkLock so that no child is forked between our inheriting the
	// descriptor and marking it close-on-exec, as os does for pipe(2).
	syscall.ForkLock.RLock()
	unix.CloseOnExec(fd)
	syscall.ForkLock.RUnlock()
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, fmt.Errorf("descriptor %d: %w: %w", fd, os.NewSyscallError("fcntl", err), os.ErrInvalid)
	}
	return newSysFile(fd), nil
}

// isBrokenPipe reports whether a write failed because every read end is
// closed.
func isBrokenPipe(err error) bool {
	return errors.Is(err, syscall.EPIPE)
}

// envKeyEqual reports whether two environment variable names are the same.
func envKeyEqual(a, b string) bool {
	return a == b
}

func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "regular file"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFLNK:
		return "symbolic link"
	}
	return "file of unknown type"
}
