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
