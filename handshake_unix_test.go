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

// shareAttributes gives cmds one ExtraFiles slice with spare capacity, as
// code that builds its commands from one base does, and returns a check that
// nothing was written into it.
func shareAttributes(cmds ...*exec.Cmd) (unchanged func() bool) {
	base := make([]*os.File, 0, 4)
	for _, cmd := range cmds {
		cmd.ExtraFiles = base
	}
	return func() bool { return base[:1][0] == nil }
}
