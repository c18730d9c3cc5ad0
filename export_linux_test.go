package tokenpipe

import (
	"testing"

	"golang.org/x/sys/unix"
)

// The sampler of the machine's idle time starts before the first test, so
// that the leak checks count its goroutine, which lives as long as the
// process, before and after every test.
func init() { machineIdle() }

// SetReceiveHook makes the sd_notify listener call f for each datagram it
// receives, before it handles it, until restore is called. Set it before the
// listener starts and restore it after the listener has closed.
func SetReceiveHook(f func()) (restore func()) {
	testHookReceived = f
	return func() { testHookReceived = nil }
}

// Stopping returns a channel that is closed once the listener has begun to
// close or drain.
func (n *NotifyListener) Stopping() <-chan struct{} { return n.l.stop }

// PipeCapacity returns how many bytes the pipe behind e holds unread.
func PipeCapacity(t testing.TB, e *TokenPipeEnd) int {
	t.Helper()
	n, err := unix.FcntlInt(OSHandle(t, e), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		t.Fatalf("fcntl(F_GETPIPE_SZ): %v", err)
	}
	return n
}
