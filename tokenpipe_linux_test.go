package tokenpipe

import (
	"testing"

	"golang.org/x/sys/unix"
)

// PipeCapacity returns how many bytes the pipe behind e holds unread.
func PipeCapacity(t testing.TB, e *TokenPipeEnd) int {
	t.Helper()
	n, err := unix.FcntlInt(OSHandle(t, e), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		t.Fatalf("fcntl(F_GETPIPE_SZ): %v", err)
	}
	return n
}
