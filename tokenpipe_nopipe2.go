//go:build unix && !(dragonfly || freebsd || linux || netbsd || openbsd || solaris)

package tokenpipe

import "os"

// openPipe uses os.Pipe where there is no pipe2 (darwin, aix): it makes the
// ends close-on-exec under syscall.ForkLock and puts them in the runtime poller.
func openPipe() (r, w *os.File, err error) {
	return os.Pipe()
}
