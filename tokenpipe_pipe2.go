//go:build dragonfly || freebsd || linux || netbsd || openbsd || solaris

package tokenpipe

import (
	"os"

	"golang.org/x/sys/unix"
)

// openPipe makes both ends close-on-exec and non-blocking in the one pipe2
// call, sparing the fcntl calls that os.Pipe makes after pipe2; os.NewFile
// puts a non-blocking descriptor in the runtime poller.
func openPipe() (r, w *os.File, err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, nil, os.NewSyscallError("pipe2", err)
	}
	return os.NewFile(uintptr(p[0]), "tokenpipe-read"), os.NewFile(uintptr(p[1]), "tokenpipe-write"), nil
}
