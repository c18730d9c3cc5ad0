//go:build unix

package tokenpipe

import (
	"os"
	"syscall"
)

// diedOfKill reports whether ps shows the end os.Process.Kill gives, SIGKILL:
// kill(2) succeeds on a child that has exited but is not yet reaped, so
// Kill's success alone does not say that it ended the child.
func diedOfKill(ps *os.ProcessState) bool {
	ws, ok := ps.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}
