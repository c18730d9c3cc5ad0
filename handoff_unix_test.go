//go:build unix

package tokenpipe_test

import (
	"errors"
	"os"
	"os/exec"
	"testing"

	"github.com/tokenpipe/tokenpipe"
	"golang.org/x/sys/unix"
)

// A blocked write on a full pipe ends with ErrExported when ExportTo hands
// its end over, rather than continuing on a descriptor ExportTo made
// blocking, and Close does not hang.
func TestExportToEndsBlockedWriter(t *testing.T) {
	for round := range 100 {
		r, w := mustMake(t)
		fillPipe(t, w)
		started, done := readAsync(func() (byte, error) { return 0, w.TokenWrite(2) })
		<-started
		if err := w.ExportTo(helperCommand(t, "live-until-stdin-closes"), endEnv); err != nil {
			t.Fatal(err)
		}
		if res := await(t, done, "write to a full pipe beside ExportTo"); !errors.Is(res.err, tokenpipe.ErrExported) {
			t.Fatalf("round %d: got %v, want ErrExported", round, res.err)
		}
		closeWithin(t, w)
		r.Close()
	}
}

// fillPipe writes tokens until the pipe behind w is full.
func fillPipe(t *testing.T, w *tokenpipe.TokenPipeEnd) {
	t.Helper()
	fd := int(tokenpipe.OSHandle(t, w))
	var b [4096]byte
	for {
		_, err := unix.Write(fd, b[:])
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for { // what is left may be less than 4096 bytes
		if _, err := unix.Write(fd, b[:1]); err == unix.EAGAIN {
			return
		} else if err != nil {
			t.Fatal(err)
		}
	}
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
