//go:build !unix

package tokenpipe

import (
	"errors"
	"fmt"
	"syscall"
)

// notifySupported reports whether this platform has sd_notify sockets. On
// Windows, which has AF_UNIX stream sockets but no datagram ones, and on the
// platforms without pipes, NOTIFY_SOCKET is ignored.
const notifySupported = false

// sendNotify sends msg as one datagram to the socket addr names: an absolute
// path or, on Linux, an abstract name written with a leading '@'. It never
// waits for an answer (start-stop-daemon answers no BARRIER=1), and blocks
// only while the receiver's queue is full, for at most notifySendTimeout.
// Errors name addr.
func sendNotify(addr string, msg []byte) error { return errors.ErrUnsupported }

// notifyListener is a datagram socket that a child reports to with
// sd_notify, in a directory of its own, and the goroutine that reads it.
type notifyListener struct {
	addr     string            // the socket's path: the child's NOTIFY_SOCKET
	decision chan notifyResult // receives the first result that decides, once
}

// listenNotify makes a private directory (mode 0700) and a datagram socket in
// it, and starts reading reports from the socket. Every descriptor a datagram
// carries is closed at once, so that a sender waiting for BARRIER=1 goes on;
// datagrams from another user (checked on Linux, where the kernel attaches
// the sender's credentials) and truncated datagrams are dropped. The caller
// must call close, which removes socket and directory.
func listenNotify(attr *syscall.SysProcAttr) (*notifyListener, error) {
	return nil, errors.ErrUnsupported
}

// drain makes the receive goroutine read every datagram queued now, send
// its result if they decide, and stop; it returns once the goroutine has.
// Whatever a child sent before it exited is queued once its exit is seen
// (a datagram is queued by the sender's send), so after drain an undecided
// listener means the child said nothing decisive. Call close afterwards.
func (l *notifyListener) drain() {}

// close stops the receive goroutine and closes the socket, then removes
// the socket and its directory. It is idempotent.
func (l *notifyListener) close() error { return nil }

// errnoOf returns the errno that Fail sends for reason: reason's own, where
// it wraps a syscall.Errno, or else failErrno.
func errnoOf(reason error) int { return failErrno }

// errnoError returns the error an ERRNO= value stands for.
func errnoError(n int) error { return fmt.Errorf("errno %d", n) }
