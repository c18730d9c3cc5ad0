//go:build unix && !(dragonfly || freebsd || linux || netbsd || openbsd || solaris)

package tokenpipe

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// openPipe makes a pipe whose ends are close-on-exec and non-blocking where
// there is no pipe2 (darwin, aix), as os.Pipe does there: pipe, then
// FD_CLOEXEC under syscall.ForkLock so that no child is forked in between.
func openPipe() (r, w int, err error) {
	var p [2]int
	syscall.ForkLock.RLock()
	err = unix.Pipe(p[:])
	if err == nil {
		unix.CloseOnExec(p[0])
		unix.CloseOnExec(p[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return -1, -1, os.NewSyscallError("pipe", err)
	}
	for _, fd := range p {
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(p[0])
			unix.Close(p[1])
			return -1, -1, os.NewSyscallError("fcntl", err)
		}
	}
	return p[0], p[1], nil
}
