//go:build !linux && !darwin && !dragonfly && !freebsd && !netbsd && !openbsd

package tokenpipe

import "errors"

// Here (Solaris, illumos, AIX, Windows and the platforms without pipes)
// there is no exit watch: Go's syscall packages offer no wait that does not
// reap.

type exitWatch struct{}

func watchExit(pid int) (*exitWatch, error) { return nil, errors.ErrUnsupported }

func (w *exitWatch) exitedChan() <-chan struct{} { return nil }
func (w *exitWatch) hasExited() bool             { return false }
func (w *exitWatch) close()                      {}
