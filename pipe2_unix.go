//go:build dragonfly || freebsd || linux || netbsd || openbsd || solaris

package tokenpipe

import (
	"os"

	"golang.org/x/sys/unix"
)

// openPipe makes a pipe whose ends are close-on-exec and non-blocking, in the
// one pipe2 call, sparing the fcntl calls that os.Pipe makes after it.
func openPipe() (r, w int, err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return -1, -1, os.NewSyscallError("pipe2", err)
	}
	return p[0], p[1], nil
}
