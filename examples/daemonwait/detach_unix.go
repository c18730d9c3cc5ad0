//go:build unix

package main

import (
	"os/exec"
	"syscall"
)

// detach makes cmd's process a daemon: on Unix, the leader of a new session,
// with no controlling terminal, so that hang-ups and terminal signals meant
// for us do not reach it.
func detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
}
