package tokenpipe

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// On Linux the exit watch polls a pidfd, which becomes readable when the
// process exits, in the runtime poller; waitid(P_PIDFD, WNOWAIT) confirms the
// exit without reaping. A pidfd refers to one process for good, so a reused
// pid cannot fool it (and an unreaped child's pid is not reused anyway).
type exitWatch struct {
	f      *os.File
	exited chan struct{} // closed once the child has exited
	done   chan struct{} // closed when the watching goroutine has returned
}

// watchExit fails with errors.ErrUnsupported before Linux 5.4, and where a
// seccomp filter denies pidfd_open.
func watchExit(pid int) (*exitWatch, error) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err == unix.EINVAL { // Linux before 5.10 lacks PIDFD_NONBLOCK
		if fd, err = unix.PidfdOpen(pid, 0); err == nil {
			if err = unix.SetNonblock(fd, true); err != nil {
				unix.Close(fd)
			}
		}
	}
	// Any failure means no pidfd here, not a broken child: ENOSYS before
	// Linux 5.4, EPERM or EACCES where a seccomp filter (older container
	// runtimes) denies the call, EINVAL from waitid on Linux 5.3. Go's os
	// package takes the same view (os/pidfd_linux.go, checkPidfd).
	if err != nil {
		return nil, fmt.Errorf("pidfd_open: %v: %w", err, errors.ErrUnsupported)
	}
	if _, err := pidfdExited(fd); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("waitid(P_PIDFD): %v: %w", err, errors.ErrUnsupported)
	}
	// pidfds are always close-on-exec; os.NewFile puts a non-blocking one
	// in the runtime poller.
	w := &exitWatch{
		f:      os.NewFile(uintptr(fd), "pidfd"),
		exited: make(chan struct{}),
		done:   make(chan struct{}),
	}
	go w.watch()
	return w, nil
}

// watch waits until the child exits or w is closed.
func (w *exitWatch) watch() {
	defer close(w.done)
	rc, err := w.f.SyscallConn()
	if err != nil {
		return
	}
	var exited bool
	rc.Read(func(fd uintptr) bool {
		var err error
		exited, err = pidfdExited(int(fd))
		// An error here means the child is gone some other way (ECHILD:
		// reaped behind our back); waiting longer would only hang.
		exited = exited || err != nil
		return exited
	}) // fails only when w.f is closed
	if exited {
		close(w.exited)
	}
}

// pidfdExited reports whether the process behind the pidfd fd has exited,
// without reaping it.
func pidfdExited(fd int) (bool, error) {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PIDFD, fd, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN: // a PIDFD_NONBLOCK pidfd of a running process
			return false, nil
		case nil:
			// With WNOHANG and no exit to report, waitid leaves si_signo 0.
			return info.Signo == int32(unix.SIGCHLD), nil
		}
		return false, err
	}
}

func (w *exitWatch) hasExited() bool {
	rc, err := w.f.SyscallConn()
	if err != nil {
		return false
	}
	var exited bool
	rc.Control(func(fd uintptr) { exited, _ = pidfdExited(int(fd)) })
	return exited
}

func (w *exitWatch) exitedChan() <-chan struct{} { return w.exited }

func (w *exitWatch) close() {
	w.f.Close()
	<-w.done
}
