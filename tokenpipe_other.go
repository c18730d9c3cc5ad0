//go:build !unix && !windows

package tokenpipe

import (
	"errors"
)

// sysFile is an open pipe end; there are none on this platform, where Make
// and FromEnv fail with errors.ErrUnsupported.
type sysFile struct{}

// scratch is what a read or write would go through; there are none here.
type scratch struct{}

// makePipe creates a pipe whose ends are close-on-exec.
func makePipe() (r, w *sysFile, err error) {
	return nil, nil, errors.ErrUnsupported
}

// handle returns the descriptor or handle value, as FromEnv would name it.
func (s *sysFile) handle() uintptr { return 0 }

// read reads one token, through rs or a scratch of its own. It returns io.EOF
// at end of stream, errInterrupted while setInterrupted(true) is in force, an
// error matching os.ErrClosed once close has begun and ErrExported once
// export has.
func (s *sysFile) read(rs *scratch) (byte, error) { return 0, errors.ErrUnsupported }

// write writes all of p, through ws or a scratch of its own where the
// system call needs one, in one system call where the pipe has room. A
// broken pipe gives an error for which isBrokenPipe holds.
func (s *sysFile) write(p []byte, ws *scratch) error { return errors.ErrUnsupported }

// pending reports whether a read would return at once, with a token or end
// of stream, without taking anything from the pipe.
func (s *sysFile) pending() bool { return false }

// setInterrupted makes pending and later reads return errInterrupted while
// on is true.
func (s *sysFile) setInterrupted(on bool) {}

// close closes the end, ending pending reads and writes first.
func (s *sysFile) close() error { return errors.ErrUnsupported }

// isBrokenPipe reports whether a write failed because every read end is
// closed.
func isBrokenPipe(err error) bool { return false }
