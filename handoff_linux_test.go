package tokenpipe_test

import (
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// FromEnv changes nothing on a descriptor it refuses: a FIFO opened with
// O_PATH got FD_CLOEXEC set before it was refused.
func TestFromEnvLeavesRefusedFIFOAlone(t *testing.T) {
	path := fifoPath(t)
	fd, err := unix.Open(path, unix.O_PATH, 0) // inheritable
	if err != nil {
		t.Skipf("cannot open a FIFO with O_PATH here: %v", err)
	}
	defer unix.Close(fd)
	fdFlags, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	flFlags, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	refused(t, strconv.Itoa(fd))
	if got, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); got != fdFlags {
		t.Errorf("FromEnv changed the descriptor flags of a descriptor it refused from %#x to %#x", fdFlags, got)
	}
	if got, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); got != flFlags {
		t.Errorf("FromEnv changed the status flags of a descriptor it refused from %#x to %#x", flFlags, got)
	}
}

// fifoPath makes a FIFO in a new directory, removed after the test.
func fifoPath(t *testing.T) string {
	t.Helper()
	path := t.TempDir() + "/fifo"
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
