//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package tokenpipe

import (
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// On the BSDs and macOS the exit watch is a kqueue with EVFILT_PROC/NOTE_EXIT, which does
// not reap. The kqueue is polled in a goroutine every exitPollInterval rather
// than joined to the runtime poller, so that close need not rely on a kqueue
// being pollable: close takes up to one interval.
type exitWatch struct {
	kq     int
	exited chan struct{} // closed once the child has exited
	stop   chan struct{} // closed by close
	done   chan struct{} // closed when the watching goroutine has returned
}

// exitPollInterval is how long one wait for the kqueue lasts: how late close
// returns, at worst.
const exitPollInterval = 50 * time.Millisecond

func watchExit(pid int) (*exitWatch, error) {
	syscall.ForkLock.RLock() // so that no child is started before CloseOnExec
	kq, err := unix.Kqueue()
	if err == nil {
		unix.CloseOnExec(kq)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, os.NewSyscallError("kqueue", err)
	}
	w := &exitWatch{
		kq:     kq,
		exited: make(chan struct{}),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	var ev [1]unix.Kevent_t
	unix.SetKevent(&ev[0], pid, unix.EVFILT_PROC, unix.EV_ADD|unix.EV_ONESHOT)
	ev[0].Fflags = unix.NOTE_EXIT
	switch _, err := unix.Kevent(kq, ev[:], nil, nil); err {
	case nil:
		go w.watch()
	case unix.ESRCH:
		// Some kernels refuse to watch a zombie: the child has exited (it
		// is not reaped, so its pid cannot belong to another process).
		close(w.exited)
		close(w.done)
	default:
		unix.Close(kq)
		return nil, os.NewSyscallError("kevent", err)
	}
	return w, nil
}

// watch waits until the child exits or w is closed.
func (w *exitWatch) watch() {
	defer close(w.done)
	timeout := unix.NsecToTimespec(int64(exitPollInterval))
	var ev [1]unix.Kevent_t
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		n, err := unix.Kevent(w.kq, nil, ev[:], &timeout)
		switch {
		case n > 0:
			close(w.exited)
			return
		case err != nil && err != unix.EINTR:
			// The watch is broken, which says nothing of the child: give
			// up watching rather than call it dead. StartAndWait then
			// waits for a report or ctx.
			return
		}
	}
}

// hasExited says what the last poll of the kqueue has seen.
func (w *exitWatch) hasExited() bool {
	select {
	case <-w.exited:
		return true
	default:
		return false
	}
}

func (w *exitWatch) exitedChan() <-chan struct{} { return w.exited }

func (w *exitWatch) close() {
	close(w.stop)
	<-w.done
	unix.Close(w.kq)
}
