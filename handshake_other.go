//go:build !unix

package tokenpipe

import "os"

// diedOfKill reports whether ps shows the end os.Process.Kill gives. On
// Windows that is TerminateProcess with exit code 1 (os/exec_windows.go).
// Microsoft documents that TerminateProcess fails on a process that has
// exited, so a Kill that succeeded is what ended the child:
// https://learn.microsoft.com/windows/win32/api/processthreadsapi/nf-processthreadsapi-terminateprocess
// Wine's succeeds there too, so the exit code must be 1 as well
// (TestStartAndWaitExitAsContextEnds, under Wine); a child that exits by
// itself with code 1 just as ctx ends is then taken for killed.
func diedOfKill(ps *os.ProcessState) bool { return ps.ExitCode() == 1 }
