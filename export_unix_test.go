//go:build unix

package tokenpipe

import (
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

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

// OpenDescriptors counts the process's open descriptors, as /dev/fd lists
// them (/proc/self/fd, on Linux): all, and those of each kind that the ends,
// the handshake and its socket open. A pidfd is one whose /proc/self/fd
// link says anon_inode:[pidfd] (pidfd_open(2)); elsewhere there are none.
func OpenDescriptors(t testing.TB) Descriptors {
	t.Helper()
	entries, err := os.ReadDir("/dev/fd")
	if err != nil {
		t.Skipf("cannot list descriptors on this system: %v", err)
	}
	var d Descriptors
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		var st unix.Stat_t
		if err != nil || unix.Fstat(fd, &st) != nil {
			continue // the directory ReadDir read, closed by now
		}
		d.All++
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFIFO:
			d.Pipes++
		case unix.S_IFSOCK:
			d.Sockets++
		default:
			if link, _ := os.Readlink("/proc/self/fd/" + e.Name()); link == "anon_inode:[pidfd]" {
				d.Pidfds++
			}
		}
	}
	return d
}

// SetInheritable sets or clears what Inheritable reports.
func SetInheritable(t testing.TB, h uintptr, on bool) {
	t.Helper()
	flags := 0
	if !on {
		flags = unix.FD_CLOEXEC
	}
	if _, err := unix.FcntlInt(h, unix.F_SETFD, flags); err != nil {
		t.Fatal(err)
	}
}

// RawPipe makes a pipe with unix.Pipe: blocking, inheritable descriptors.
func RawPipe(t testing.TB, give int) (given uintptr, kept *os.File) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe(p[:]); err != nil {
		t.Fatal(err)
	}
	kept = os.NewFile(uintptr(p[1-give]), "kept end")
	t.Cleanup(func() { kept.Close() })
	return uintptr(p[give]), kept
}

// OpenSocket opens a socket and returns its handle.
func OpenSocket(t testing.TB) uintptr {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return uintptr(fd)
}

// StdHandles returns the handles of standard input, output and error.
func StdHandles() []uintptr { return []uintptr{0, 1, 2} }

// ProcessCPUTime returns the CPU time, user and system, that the process has
// used so far.
func ProcessCPUTime(t testing.TB) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// JoinedPoller reports whether an open end has become an *os.File in the
// runtime poller.
func JoinedPoller(e *TokenPipeEnd) bool { return e.f.Load().sys.f.Load() != nil }
