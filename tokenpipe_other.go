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

func makePipe() (r, w *sysFile, err error) {
	return nil, nil, errors.ErrUnsupported
}

func (s *sysFile) handle() uintptr { return 0 }

func (s *sysFile) read(rs *scratch) (byte, error) { return 0, errors.ErrUnsupported }

func (s *sysFile) write(p []byte, ws *scratch) error { return errors.ErrUnsupported }

func (s *sysFile) pending() bool { return false }

func (s *sysFile) setInterrupted(on bool) {}

func (s *sysFile) close() error { return errors.ErrUnsupported }

func isBrokenPipe(err error) bool { return false }
