//go:build unix

package tokenpipe

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strconv"
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

// read reads one token into b. It returns io.EOF at end of stream,
// errInterrupted while setInterrupted(true) is in force, and an error matching
// os.ErrClosed once close has begun.
func (s *sysFile) read(b *scratch) (byte, error) {
	for {
		n, err := s.file().Read(b.b[:])
		switch {
		case n == 1:
			return b.b[0], nil
		case err == io.EOF:
			return 0, io.EOF
		case errors.Is(err, os.ErrDeadlineExceeded):
			return 0, errInterrupted
		case err != nil:
			return 0, err
		}
	}
}

// write writes the token in b. A broken pipe gives an error for which
// isBrokenPipe holds.
func (s *sysFile) write(b *scratch) error {
	// Go ignores SIGPIPE for descriptors other than 1 and 2, which FromEnv
	// refuses, so a broken pipe is EPIPE here rather than the end of us.
	_, err := s.file().Write(b.b[:])
	return err
}

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
