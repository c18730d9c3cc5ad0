//go:build !unix

package tokenpipe

import (
	"errors"
	"fmt"
	"syscall"
)

// Windows has AF_UNIX stream sockets but no datagram ones, and the platforms
// without pipes have neither: NOTIFY_SOCKET is not used here.

const notifySupported = false

func sendNotify(addr string, msg []byte) error { return errors.ErrUnsupported }

type notifyListener struct {
	addr     string
	decision chan notifyResult
}

func listenNotify(attr *syscall.SysProcAttr) (*notifyListener, error) {
	return nil, errors.ErrUnsupported
}

func (l *notifyListener) drain()       {}
func (l *notifyListener) close() error { return nil }

func errnoOf(reason error) int { return failErrno }

func errnoError(n int) error { return fmt.Errorf("errno %d", n) }
