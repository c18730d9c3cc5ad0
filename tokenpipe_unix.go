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
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sysFile is an open pipe end: a non-blocking descriptor in an *os.File, so
// that reads wait in the runtime poller, where read deadlines interrupt them
// and Close wakes them. It is an os.File so that it costs no allocation of its
// own.
type sysFile os.File

func (s *sysFile) file() *os.File { return (*os.File)(s) }

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
	rf, wf, err := openPipe()
	if err != nil {
		return nil, nil, err
	}
	return (*sysFile)(rf), (*sysFile)(wf), nil
}

// read reads one token, through rs or a scratch of its own. It returns io.EOF
// at end of stream, errInterrupted while setInterrupted(true) is in force, and
// an error matching os.ErrClosed once close has begun.
func (s *sysFile) read(rs *scratch) (byte, error) {
	b := rs.claim()
	if b.rc == nil { // first use of this scratch: build what it reuses
		rc, err := s.file().SyscallConn()
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
	_, err := s.file().Write(tokenBytes[token : int(token)+1])
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
	s.file().SetReadDeadline(deadline) // fails only once closed, when reads fail anyway
}

// close closes the end, waking pending reads and writes.
func (s *sysFile) close() error {
	return s.file().Close()
}

// export makes cmd's child inherit the end and returns the value that names
// it in the child.
func (s *sysFile) export(cmd *exec.Cmd) (string, error) {
	// The child shares our open file description, and O_NONBLOCK lives there:
	// a child not written in Go expects the blocking pipe it would get from a
	// shell, and FromEnv makes it non-blocking again for a Go child.
	err := control(s.file(), func(fd int) error { return unix.SetNonblock(fd, false) })
	if err != nil {
		return "", err
	}
	// os/exec numbers ExtraFiles from 3 in the child.
	value := strconv.Itoa(3 + len(cmd.ExtraFiles))
	cmd.ExtraFiles = append(cmd.ExtraFiles, s.file())
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
		return nil, fmt.Errorf("descriptor %d is not open: %w", fd, err)
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
		return nil, fmt.Errorf("descriptor %d: %w", fd, os.NewSyscallError("fcntl", err))
	}
	return (*sysFile)(os.NewFile(uintptr(fd), "tokenpipe-"+strconv.Itoa(fd))), nil
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

func control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var fnErr error
	if err := rc.Control(func(fd uintptr) { fnErr = fn(int(fd)) }); err != nil {
		return err
	}
	return fnErr
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
