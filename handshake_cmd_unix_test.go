//go:build unix

package tokenpipe_test

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// callerSetup does to cmd what a caller of StartAndWait might: an extra file,
// which the child finds under the returned value, and process attributes
// (a process group of its own).
func callerSetup(t *testing.T, cmd *exec.Cmd, extra *os.File) string {
	cmd.ExtraFiles = []*os.File{extra}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return "3" // os/exec numbers ExtraFiles from 3
}

// callerSetupSeen says, in the child, whether its attributes took effect.
func callerSetupSeen() bool {
	return syscall.Getpgrp() == os.Getpid()
}
