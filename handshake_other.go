//go:build !unix

package tokenpipe

import "os"

// diedOfKill reports whether ps shows the end os.Process.Kill gives. On
// Windows Kill's TerminateProcess fails on a process that has exited, so its
// success is proof, and the exit code it leaves, 1, could be the child's own:
// https://learn.microsoft.com/windows/win32/api/processthreadsapi/nf-processthreadsapi-terminateprocess
func diedOfKill(ps *os.ProcessState) bool { return true }
