//go:build unix || windows

package tokenpipe_test

import (
	"bufio"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tokenpipe/tokenpipe"
)

func init() {
	// a9-ready-4096 writes exactly the bytes Ready writes for a message of
	// 4096 bytes (token 1, 4096 'x', '\n'), but pauses before the '\n' until
	// the test says "go" on standard input, as a preempted daemon would.
	// It exits 0 if the '\n' went out, 7 if the pipe was broken.
	register("a9-ready-4096", func() int {
		e := childEndNamed(readyEnv)
		if err := e.TokenWrite(1); err != nil {
			return helperExit(3, err)
		}
		for i := 0; i < 4096; i++ {
			if err := e.TokenWrite('x'); err != nil {
				return helperExit(3, err)
			}
		}
		os.Stdout.WriteString("written\n")
		bufio.NewReader(os.Stdin).ReadString('\n')
		err := e.TokenWrite('\n')
		e.Close()
		if errors.Is(err, io.ErrClosedPipe) {
			return helperExit(7, err)
		}
		if err != nil {
			return helperExit(3, err)
		}
		return 0
	})
}

// Ready writes token 1, up to 4096 bytes and '\n' (4098 bytes), but
// StartAndWait stops reading after 4097 and closes the pipe: a daemon whose
// Ready is preempted before its newline gets a broken pipe (Ready returns an
// error; a C daemon writing the newline separately dies of SIGPIPE) although
// the parent has just told the user it is ready.
//
// The timer below never decides the verdict: it only lets a correct
// StartAndWait (which waits for the newline) go on; a StartAndWait that
// returns before the newline was even written is wrong whenever it does.
func TestStartAndWaitReadsNewlineAtLimit(t *testing.T) {
	cmd, stdin := hsCommand(t, "a9-ready-4096")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	type res struct {
		msg string
		err error
	}
	done := make(chan res, 1)
	go func() {
		msg, err := startAndWait(cmd)
		done <- res{msg, err}
	}()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "written\n" {
		t.Fatalf("helper: %q, %v", line, err)
	}
	var r res
	returnedEarly := false
	select {
	case r = <-done:
		returnedEarly = true
	case <-time.After(time.Second):
	}
	io.WriteString(stdin, "go\n")
	if !returnedEarly {
		r = <-done
	}
	if r.err != nil || r.msg != strings.Repeat("x", 4096) {
		t.Fatalf("StartAndWait: (%d bytes, %v), want the 4096-byte message", len(r.msg), r.err)
	}
	stdin.Close()
	err = cmd.Wait()
	if returnedEarly {
		t.Errorf("StartAndWait returned ready and closed the pipe before the report's newline was written")
	}
	if err != nil {
		t.Errorf("the daemon's newline after a %d-byte message failed (exit: %v): StartAndWait reads 1+4096 bytes, Ready writes 1+4096+1", 4096, err)
	}
}

// typedNilErr is the classic typed nil: a nil *typedNilErr in an error
// interface is not a nil error, and its Error method dereferences.
type typedNilErr struct{ s string }

func (e *typedNilErr) Error() string { return e.s }

// Fail calls reason.Error() before anything else, so a reason whose Error
// panics (a typed nil is the usual one) panics in Fail, even in a daemon run by
// hand with nothing exported, where Fail should just return ErrNotExported.
// fmt recovers such panics ("<nil>" / "%!v(PANIC=...)"); Fail does not.
func TestFailReasonPanics(t *testing.T) {
	freshReports(t)
	t.Setenv(readyEnv, "")
	os.Unsetenv(readyEnv)
	var reason *typedNilErr
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("Fail panicked on a reason whose Error panics: %v", p)
		}
	}()
	if err := tokenpipe.Fail(readyEnv, reason); !errors.Is(err, tokenpipe.ErrNotExported) {
		t.Fatalf("got %v, want ErrNotExported", err)
	}
}
