//go:build unix

package tokenpipe_test

import (
	"errors"
	"os"
	"os/exec"
	"testing"

	"github.com/tokenpipe/tokenpipe"
)

func init() {
	// a9-spawn-then-fail starts a helper process during its initialisation,
	// before it reports (as daemons do: a log shipper, a worker), then calls
	// Fail and exits 1. The helper inherits the end, which os/exec children
	// do with any inherited descriptor not marked close-on-exec, and lives
	// until the test closes standard input.
	register("a9-spawn-then-fail", func() int {
		gc, err := newHelperCommand("hold")
		if err != nil {
			return helperExit(3, err)
		}
		gc.Stdin = os.Stdin
		if err := gc.Start(); err != nil {
			return helperExit(3, err)
		}
		gc.Process.Release()
		if err := tokenpipe.Fail(readyEnv, errors.New("no config")); err != nil {
			return helperExit(3, err)
		}
		return 1
	})
}

// A daemon that called Fail and exited must give ErrChildFailed with its
// reason. A failure report has no terminator: StartAndWait reads it up to end
// of stream, which never comes while a process the daemon started before
// reporting holds the end. StartAndWait then waits for ctx (forever with
// context.Background()), kills a child that is already dead, loses the reason
// and returns "no report when the context ended".
func TestFailWithInheritingHelper(t *testing.T) {
	cmd, _ := hsCommand(t, "a9-spawn-then-fail")
	msg, err := startAndWait(cmd)
	reaped(t, cmd)
	if !errors.Is(err, tokenpipe.ErrChildFailed) || msg != "no config" {
		t.Fatalf("got (%q, %v), want (\"no config\", ErrChildFailed) as soon as the child exited", msg, err)
	}
}

// The same with a shell daemon: starting a helper in the background before
// the report is ordinary shell, and the job inherits the descriptor.
func TestShellFailWithBackgroundJob(t *testing.T) {
	hold, release, err := os.Pipe() // the background job lives until release closes
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	defer release.Close()
	sh := exec.Command("sh", "-c", `exec 4<&0; cat <&4 >/dev/null & printf '\000no config' >&"$`+readyEnv+`"; exit 2`)
	sh.Stdin = hold
	msg, err := startAndWait(sh)
	reaped(t, sh)
	if !errors.Is(err, tokenpipe.ErrChildFailed) || msg != "no config" {
		t.Fatalf("got (%q, %v), want (\"no config\", ErrChildFailed)", msg, err)
	}
}
