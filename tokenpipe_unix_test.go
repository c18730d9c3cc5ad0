//go:build unix

package tokenpipe

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// OSHandle returns the descriptor behind an open end.
func OSHandle(t testing.TB, e *TokenPipeEnd) uintptr {
	t.Helper()
	var h uintptr
	if err := control(e.f.Load().sys.f, func(fd int) error { h = uintptr(fd); return nil }); err != nil {
		t.Fatal(err)
	}
	return h
}

// Inheritable reports whether a child started with exec would get h.
func Inheritable(t testing.TB, h uintptr) bool {
	t.Helper()
	flags, err := unix.FcntlInt(h, unix.F_GETFD, 0)
	if err != nil {
		t.Fatalf("fcntl(%d, F_GETFD): %v", h, err)
	}
	return flags&unix.FD_CLOEXEC == 0
}

// HandleOpen reports whether h is an open descriptor.
func HandleOpen(h uintptr) bool {
	_, err := unix.FcntlInt(h, unix.F_GETFD, 0)
	return err == nil
}

// OpenHandles counts the process's open descriptors.
func OpenHandles(t testing.TB) int {
	t.Helper()
	entries, err := os.ReadDir("/dev/fd")
	if err != nil {
		t.Skipf("cannot count descriptors on this system: %v", err)
	}
	return len(entries)
}
