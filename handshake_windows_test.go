package tokenpipe_test

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"

	"github.com/tokenpipe/tokenpipe"
	"golang.org/x/sys/windows"
)

// callerSetup does to cmd what a caller of StartAndWait might: an inherited
// handle, which the child finds under the returned value, and creation flags
// (a process group of its own).
func callerSetup(t *testing.T, cmd *exec.Cmd, extra *os.File) string {
	tokenpipe.SetInheritable(t, extra.Fd(), true)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		CreationFlags:              windows.CREATE_NEW_PROCESS_GROUP,
		AdditionalInheritedHandles: []syscall.Handle{syscall.Handle(extra.Fd())},
	}
	return strconv.FormatUint(uint64(extra.Fd()), 10)
}

// callerSetupSeen says, in the child, whether its attributes took effect;
// Windows offers no simple way to ask for one's process group.
func callerSetupSeen() bool { return true }

// shareAttributes gives cmds one *SysProcAttr whose handle list has spare
// capacity, as code that builds its commands from one base does, and returns
// a check that nothing was written into it.
func shareAttributes(cmds ...*exec.Cmd) (unchanged func() bool) {
	attr := &syscall.SysProcAttr{AdditionalInheritedHandles: make([]syscall.Handle, 0, 4)}
	for _, cmd := range cmds {
		cmd.SysProcAttr = attr
	}
	return func() bool {
		return len(attr.AdditionalInheritedHandles) == 0 && attr.AdditionalInheritedHandles[:1][0] == 0
	}
}
