//go:build unix

package tokenpipe_test

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/tokenpipe/tokenpipe"
	"golang.org/x/sys/unix"
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
	pgid, err := unix.Getpgid(0)
	return err == nil && pgid == os.Getpid()
}

func init() {
	// start-helper-then-fail starts a helper process during its initialisation,
	// before it reports (as daemons do: a log shipper, a worker), then calls
	// Fail and exits 1. The helper inherits the end, which os/exec children
	// do with any inherited descriptor not marked close-on-exec, and lives
	// until the test closes standard input.
	register("start-helper-then-fail", func() int {
		gc, err := newHelperCommand("live-until-stdin-closes")
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
	cmd, _ := handshakeCommand(t, "start-helper-then-fail")
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

func init() {
	// double-fork-then-report double-forks: it starts report-in-two-writes with
	// its own standard input and output and the end it inherited (not yet
	// close-on-exec, as it has not called FromEnv), and exits 0 at once, as a
	// classic daemon's first fork does. The grandchild reports.
	register("double-fork-then-report", func() int {
		gc, err := newHelperCommand("report-in-two-writes", os.Args[1:]...)
		if err != nil {
			return helperExit(3, err)
		}
		gc.Stdin, gc.Stdout, gc.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := gc.Start(); err != nil {
			return helperExit(3, err)
		}
		gc.Process.Release()
		return 0
	})
	// report-in-two-writes writes token arg1 and arg2, says "written" on
	// standard output, waits for a line (or end) on standard input, as a daemon
	// preempted between two writes of its report would, then writes arg3 (and
	// '\n' for token 1) and closes its end. With arg1 "Fail" it says "written"
	// at once, and after the line calls Fail with arg2+arg3.
	register("report-in-two-writes", func() int {
		if os.Args[1] == "Fail" {
			os.Stdout.WriteString("written\n")
			bufio.NewReader(os.Stdin).ReadString('\n')
			if err := tokenpipe.Fail(readyEnv, errors.New(os.Args[2]+os.Args[3])); err != nil {
				return helperExit(3, err)
			}
			return 0
		}
		e := childEnd(readyEnv)
		tok := byte(0)
		if os.Args[1] == "1" {
			tok = 1
		}
		write := func(s string) {
			for _, b := range []byte(s) {
				if err := e.TokenWrite(b); err != nil {
					os.Exit(helperExit(3, err))
				}
			}
		}
		write(string([]byte{tok}) + os.Args[2])
		os.Stdout.WriteString("written\n")
		bufio.NewReader(os.Stdin).ReadString('\n')
		rest := os.Args[3]
		if tok == 1 {
			rest += "\n"
		}
		write(rest)
		e.Close()
		return 0
	})
}

// doubleForkReport runs StartAndWait on double-fork-then-report with the given
// report, split in two writes, and says whether StartAndWait returned before
// the second part was even allowed to be written (a verdict no timing can fake:
// a correct StartAndWait cannot have all of a report that does not exist yet).
// The timer only lets a correct StartAndWait go on.
func doubleForkReport(t *testing.T, token, first, second string) (msg string, err error, early bool) {
	t.Helper()
	goR, goW, perr := os.Pipe() // the grandchild's "go"; *os.File: cmd.Wait neither copies nor closes it
	if perr != nil {
		t.Fatal(perr)
	}
	outR, outW, perr := os.Pipe()
	if perr != nil {
		t.Fatal(perr)
	}
	defer goR.Close()
	defer goW.Close() // also lets a stuck grandchild finish and exit
	defer outR.Close()
	defer outW.Close() // only once StartAndWait is done with it (no edge through the child for the race detector)
	cmd := helperCommand(t, "double-fork-then-report", token, first, second)
	cmd.Stdin, cmd.Stdout = goR, outW
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	done := goStartAndWait(ctx, cmd)
	line, rerr := bufio.NewReader(outR).ReadString('\n')
	if line != "written\n" {
		t.Fatalf("grandchild: %q, %v", line, rerr)
	}
	r, early := resultBeforeGoOn(done, func() { goW.WriteString("go\n") })
	if cmd.ProcessState == nil {
		cmd.Wait() // the ready path leaves the (exited) child to us
	}
	return r.msg, r.err, early
}

// A double-forked daemon reports ready from the grandchild, in two writes
// with a pause between: the message is read to its newline, whole. (The
// child's exit, long past, ended it at the pause: success with a wrong
// address, "127.0.0.1:80" for "127.0.0.1:8080".)
func TestStartAndWaitDoubleForkReadyMessage(t *testing.T) {
	msg, err, early := doubleForkReport(t, "1", "127.0.0.1:80", "80")
	if early {
		t.Errorf("StartAndWait returned (%q, %v) before the grandchild had written the rest of its ready message", msg, err)
	}
	if err != nil || msg != "127.0.0.1:8080" {
		t.Errorf("got (%q, %v), want (\"127.0.0.1:8080\", nil)", msg, err)
	}
}

// A double-forked daemon's Fail, from the grandchild long after the child
// exited, gives its whole reason: Fail writes the report in one call, so the
// child's exit (which ends a reason, lest a process holding the end hold it
// for ever) finds all of it in the pipe.
func TestStartAndWaitDoubleForkFailReason(t *testing.T) {
	msg, err, early := doubleForkReport(t, "Fail", "config: ", "no such file")
	if early {
		t.Errorf("StartAndWait returned (%q, %v) before the grandchild had written the rest of its reason", msg, err)
	}
	if !errors.Is(err, tokenpipe.ErrChildFailed) || msg != "config: no such file" {
		t.Errorf("got (%q, %v), want (\"config: no such file\", ErrChildFailed)", msg, err)
	}
}
