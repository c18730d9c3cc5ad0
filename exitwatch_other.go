//go:build !linux && !darwin && !dragonfly && !freebsd && !netbsd && !openbsd

package tokenpipe

import "errors"

// exitWatch tells when a child that has not been reaped exits, without
// reaping it, so that whoever waits for the child still gets its status. The
// parent of a child that closed its inherited pipe end, or of one whose
// descendants hold it, needs this to tell "exited" from "still starting".
//
// Here (Solaris, illumos, AIX, Windows and the platforms without pipes) there
// is none: Go's syscall packages offer no wait that does not reap.
type exitWatch struct{}

// watchExit starts watching the child pid, which must not have been reaped.
// It fails with an error matching errors.ErrUnsupported where the system
// cannot watch a process without reaping it (Linux before 5.4). The caller
// must call close.
func watchExit(pid int) (*exitWatch, error) { return nil, errors.ErrUnsupported }

func (w *exitWatch) hasExited() bool { return false }

// exitedChan returns a channel that is closed once the child has exited.
func (w *exitWatch) exitedChan() <-chan struct{} { return nil }

// close stops watching and releases what the watch holds; it waits for the
// watching goroutine to return. Call it once.
func (w *exitWatch) close() {}
