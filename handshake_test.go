//go:build unix || windows

package tokenpipe_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenpipe/tokenpipe"
)

// readyEnv is the variable the handshake tests export the end under.
const readyEnv = "TOKENPIPE_TEST_READY_FD"

// messages are what the helpers report, by name, and what the parent must
// receive: newlines become spaces, invalid UTF-8 becomes U+FFFD, and text is
// cut at 4 KiB on a UTF-8 boundary.
var messages = map[string]struct{ send, want string }{
	"plain":        {"listening on 127.0.0.1:8080", "listening on 127.0.0.1:8080"},
	"empty":        {"", ""},
	"newlines":     {"line 1\nline 2\n", "line 1 line 2 "},
	"invalid UTF8": {"a\xffb\xc3", "a\uFFFDb\uFFFD"},
	"long ASCII":   {strings.Repeat("x", 5000), strings.Repeat("x", 4096)},
	// 1 + 2×2047 = 4095 bytes; the next 'é' would straddle the limit.
	"long 2-byte": {"x" + strings.Repeat("é", 3000), "x" + strings.Repeat("é", 2047)},
	// 3×1365 = 4095 bytes.
	"long 3-byte": {strings.Repeat("€", 2000), strings.Repeat("€", 1365)},
}

func init() {
	// report-ready reports ready with messages[arg] and stays up.
	register("report-ready", func() int {
		if err := tokenpipe.Ready(readyEnv, messages[os.Args[1]].send); err != nil {
			return helperExit(3, err)
		}
		holdStdin()
		return 0
	})
	// report-failure reports failure with messages[arg] as the reason ("nil":
	// no reason) and exits 1.
	register("report-failure", func() int {
		var reason error
		if os.Args[1] != "nil" {
			reason = errors.New(messages[os.Args[1]].send)
		}
		if err := tokenpipe.Fail(readyEnv, reason); err != nil {
			return helperExit(3, err)
		}
		return 1
	})
	// write-raw-report writes token arg1 and the bytes of arg2 with the
	// low-level API, (no token if arg1 is empty), then does arg3: "exit" exits
	// 4, "hang" waits for standard input to close, "close-hang" closes the end
	// first, "die" kills itself.
	register("write-raw-report", func() int {
		e := childEnd(readyEnv)
		if os.Args[1] != "" {
			tok, _ := strconv.Atoi(os.Args[1])
			if err := e.TokenWrite(byte(tok)); err != nil {
				return helperExit(3, err)
			}
		}
		for _, b := range []byte(os.Args[2]) {
			if err := e.TokenWrite(b); err != nil {
				return helperExit(3, err)
			}
		}
		switch os.Args[3] {
		case "hang":
			fmt.Println("written")
			holdStdin()
		case "die":
			killSelf()
		case "close-hang":
			e.Close()
			fmt.Println("written and closed")
			holdStdin()
		}
		runtime.KeepAlive(e)
		return 4
	})
	// write-report-forever writes token arg1 and then 'a' until the pipe
	// breaks.
	register("write-report-forever", func() int {
		e := childEnd(readyEnv)
		tok, _ := strconv.Atoi(os.Args[1])
		err := e.TokenWrite(byte(tok))
		for err == nil {
			err = e.TokenWrite('a')
		}
		if !errors.Is(err, io.ErrClosedPipe) {
			return helperExit(3, err)
		}
		return 0
	})
	// exit-without-report exits with code arg without a report (the end is
	// inherited and closes with it).
	register("exit-without-report", func() int {
		code, _ := strconv.Atoi(os.Args[1])
		return code
	})
	// exit-without-report-at-stdin-eof says "running" on standard output, then
	// exits with code arg, without a report, once its standard input closes.
	register("exit-without-report-at-stdin-eof", func() int {
		code, _ := strconv.Atoi(os.Args[1])
		fmt.Println("running")
		holdStdin()
		return code
	})
	// kill-self dies by SIGKILL (Unix) or TerminateProcess (Windows).
	register("kill-self", func() int {
		killSelf()
		return 0
	})
	// hand-end-to-grandchild hands its end to a grandchild that does arg (see
	// report-from-grandchild), and exits 0 at once without waiting for it.
	register("hand-end-to-grandchild", func() int {
		e := childEnd(readyEnv)
		gc, err := newHelperCommand("report-from-grandchild", os.Args[1])
		if err != nil {
			return helperExit(3, err)
		}
		gc.Stdin = os.Stdin
		if err := e.ExportTo(gc, readyEnv); err != nil {
			return helperExit(3, err)
		}
		err = gc.Start()
		e.Close()
		if err != nil {
			return helperExit(3, err)
		}
		gc.Process.Release()
		return 0
	})
	register("report-from-grandchild", func() int {
		switch os.Args[1] {
		case "ready":
			if err := tokenpipe.Ready(readyEnv, "from the grandchild"); err != nil {
				return helperExit(3, err)
			}
			holdStdin()
			return 0
		case "fail":
			if err := tokenpipe.Fail(readyEnv, errors.New("the grandchild failed")); err != nil {
				return helperExit(3, err)
			}
		}
		return 5
	})
	// leave-grandchild-holding-stdout leaves behind a grandchild that holds its
	// standard output (but not the end) until standard input closes, and exits
	// 3.
	register("leave-grandchild-holding-stdout", func() int {
		e := childEnd(readyEnv) // not inheritable any more: gone with us
		gc, err := newHelperCommand("live-until-stdin-closes")
		if err != nil {
			return helperExit(3, err)
		}
		gc.Stdin, gc.Stdout = os.Stdin, os.Stdout
		if err := gc.Start(); err != nil {
			return helperExit(3, err)
		}
		gc.Process.Release()
		runtime.KeepAlive(e)
		return 3
	})
	// ready-and-fail-at-once calls Ready and Fail at once: exactly one may
	// report, the other must get ErrAlreadyReported. It exits 0 if so.
	register("ready-and-fail-at-once", func() int {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		wg.Go(func() { errs[0] = tokenpipe.Ready(readyEnv, "ready won") })
		wg.Go(func() { errs[1] = tokenpipe.Fail(readyEnv, errors.New("fail won")) })
		wg.Wait()
		if (errs[0] == nil) == (errs[1] == nil) {
			return helperExit(9, fmt.Errorf("Ready: %v, Fail: %v: want exactly one nil", errs[0], errs[1]))
		}
		for _, err := range errs {
			if err != nil && !errors.Is(err, tokenpipe.ErrAlreadyReported) {
				return helperExit(9, fmt.Errorf("the loser: %v, want ErrAlreadyReported", err))
			}
		}
		return 0
	})
	// check-caller-setup writes "extra" to the file named by arg, and reports
	// ready with whether the caller's process attributes took effect.
	register("check-caller-setup", func() int {
		n, _ := strconv.ParseUint(os.Args[1], 10, 64)
		f := os.NewFile(uintptr(n), "extra")
		if _, err := f.WriteString("extra"); err != nil {
			return helperExit(3, err)
		}
		f.Close()
		if err := tokenpipe.Ready(readyEnv, strconv.FormatBool(callerSetupSeen())); err != nil {
			return helperExit(3, err)
		}
		return 0
	})
	// report-ready-twice reports ready, then checks that later reports are
	// refused.
	register("report-ready-twice", func() int {
		if err := tokenpipe.Ready(readyEnv, "first"); err != nil {
			return helperExit(3, err)
		}
		for _, err := range []error{tokenpipe.Ready(readyEnv, "second"), tokenpipe.Fail(readyEnv, errors.New("late"))} {
			if !errors.Is(err, tokenpipe.ErrAlreadyReported) || !strings.Contains(err.Error(), "already") {
				return helperExit(9, fmt.Errorf("a later report: %v, want ErrAlreadyReported, saying \"already\"", err))
			}
		}
		return 0
	})
}

// killSelf ends the process as Kill would from outside.
func killSelf() {
	p, _ := os.FindProcess(os.Getpid())
	p.Kill()
	holdStdin() // not reached
}

// handshakeCommand returns a helper command for StartAndWait whose standard
// input the test holds, so that helpers that wait for it stay up; at the end of
// the test the standard input closes, and the helper is killed and reaped if it
// still runs. The standard input is a pipe of the test's, not StdinPipe's:
// cmd.Wait closes that one, inside StartAndWait where the child does not report
// ready, and a leak check around StartAndWait (watchLeaks) would see its pipe
// come before and go within.
func handshakeCommand(t *testing.T, helper string, args ...string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	cmd := helperCommand(t, helper, args...)
	stdinR, stdin, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = stdinR
	reapAtEnd(t, cmd, os.Kill)
	t.Cleanup(func() { stdin.Close(); stdinR.Close() }) // before the kill: a helper may end by itself
	return cmd, stdin
}

// started is what StartAndWait returned.
type started struct {
	msg string
	err error
}

// goStartAndWait runs StartAndWait(ctx, cmd, readyEnv) in a goroutine; its
// result comes on the channel.
func goStartAndWait(ctx context.Context, cmd *exec.Cmd) <-chan started {
	done := make(chan started, 1)
	go func() {
		msg, err := tokenpipe.StartAndWait(ctx, cmd, readyEnv)
		done <- started{msg, err}
	}()
	return done
}

// startAndWait is StartAndWait with hangGuard as the deadline.
func startAndWait(cmd *exec.Cmd) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	return tokenpipe.StartAndWait(ctx, cmd, readyEnv)
}

// cancelWhenWritten runs StartAndWait on an write-raw-report command and
// cancels its context once the helper says, on standard output, that it has
// written (and maybe closed) its end.
func cancelWhenWritten(t *testing.T, cmd *exec.Cmd) (string, error) {
	t.Helper()
	_, cancel, done := startAndWaitUntilLine(t, cmd)
	r := cancelAndAwait(t, cancel, done)
	return r.msg, r.err
}

// startAndWaitUntilLine runs StartAndWait on cmd in a goroutine, with a
// context that cancel ends, and returns once the helper has written a line
// to its standard output: the line, or what came before the helper ended
// without one, which the result then shows.
func startAndWaitUntilLine(t *testing.T, cmd *exec.Cmd) (line string, cancel context.CancelFunc, done <-chan started) {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done = goStartAndWait(ctx, cmd)
	line, _ = bufio.NewReader(stdout).ReadString('\n')
	return line, cancel, done
}

// cancelAndAwait ends StartAndWait's context and returns its result, which
// must come within hangGuard.
func cancelAndAwait(t *testing.T, cancel context.CancelFunc, done <-chan started) started {
	t.Helper()
	cancel()
	select {
	case r := <-done:
		return r
	case <-time.After(hangGuard):
		t.Fatalf("StartAndWait still running %v after its context ended", hangGuard)
		return started{}
	}
}

// resultBeforeGoOn says whether StartAndWait's result came before the
// helper was told, by letGo, to write the rest of its report: a verdict no
// timing can fake, as a correct StartAndWait cannot have all of a report
// that is not written yet. It waits a second for the result first; that
// only lets a correct StartAndWait go on.
func resultBeforeGoOn(done <-chan started, letGo func()) (r started, early bool) {
	select {
	case r = <-done:
		early = true
	case <-time.After(time.Second):
	}
	letGo()
	if !early {
		r = <-done
	}
	return r, early
}

// reaped checks that StartAndWait waited for the child.
func reaped(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if cmd.ProcessState == nil {
		t.Fatal("the child was not waited for: cmd.ProcessState is nil")
	}
}

// Ready: (msg, nil), the child runs on and belongs to the caller.
func TestStartAndWaitReady(t *testing.T) {
	for name, m := range messages {
		t.Run(name, func(t *testing.T) {
			cmd, stdin := handshakeCommand(t, "report-ready", name)
			msg, err := startAndWait(cmd)
			if err != nil || msg != m.want {
				t.Fatalf("got (%q, %v), want (%q, nil)", msg, err, m.want)
			}
			if cmd.ProcessState != nil {
				t.Fatal("StartAndWait waited for a child that reported ready")
			}
			// It is still up: it exits 0 only when its standard input closes.
			stdin.Close()
			if err := cmd.Wait(); err != nil {
				t.Fatalf("the ready child: %v", err)
			}
		})
	}
}

// Failed: the reason as msg and in an error matching ErrChildFailed; reaped.
func TestStartAndWaitFailed(t *testing.T) {
	for name, m := range messages {
		t.Run(name, func(t *testing.T) {
			testFailed(t, name, m.want)
		})
	}
	t.Run("nil", func(t *testing.T) { testFailed(t, "nil", "") })
}

func testFailed(t *testing.T, name, want string) {
	cmd, _ := handshakeCommand(t, "report-failure", name)
	leaks := watchLeaks(t)
	msg, err := startAndWait(cmd)
	leaks.check(t)
	if !errors.Is(err, tokenpipe.ErrChildFailed) || msg != want {
		t.Fatalf("got (%q, %v), want (%q, ErrChildFailed)", msg, err, want)
	}
	wantText := want
	if want == "" {
		wantText = "no reason given"
	}
	if !strings.HasSuffix(err.Error(), ": "+wantText) {
		t.Errorf("error %q does not end with the reason %q", err, wantText)
	}
	reaped(t, cmd)
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("child exited %d, want 1", code)
	}
}

// Tokens other than 1 are failures, text or not; token 1 then close is ready
// (a Bitcoin-style child), even when the child dies before the newline.
func TestStartAndWaitRawTokens(t *testing.T) {
	for _, c := range []struct {
		name, tok, text, then string
		want                  error
		wantMsg, wantErrText  string
	}{
		{"bitcoin ready", "1", "", "exit", nil, "", ""},
		{"bitcoin failed", "0", "", "exit", tokenpipe.ErrChildFailed, "", "child reported failure: no reason given"},
		{"unknown token", "7", "odd", "exit", tokenpipe.ErrChildFailed, "odd", "child reported failure: odd (unknown token 7)"},
		{"ready, then died before the newline", "1", "partial", "die", nil, "partial", ""},
		{"failure reason with newlines", "0", "a\nb\n", "exit", tokenpipe.ErrChildFailed, "a b ", "child reported failure: a b "},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd, _ := handshakeCommand(t, "write-raw-report", c.tok, c.text, c.then)
			msg, err := startAndWait(cmd)
			if !errors.Is(err, c.want) || (c.want == nil && err != nil) || msg != c.wantMsg {
				t.Fatalf("got (%q, %v), want (%q, %v)", msg, err, c.wantMsg, c.want)
			}
			if err != nil {
				if !strings.HasSuffix(err.Error(), c.wantErrText) {
					t.Errorf("error %q does not end with %q", err, c.wantErrText)
				}
				reaped(t, cmd)
				return
			}
			cmd.Wait() // ready: ours to reap
		})
	}
}

// Bitcoin Core's own child is a shell away: token, close, no newline.
func TestStartAndWaitShellChild(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no POSIX shell on Windows; TestStartAndWaitRawTokens covers the same bytes from a Go child")
	}
	for _, c := range []struct {
		script string
		want   error
	}{
		{`printf '\001' >&"$` + readyEnv + `"`, nil},
		{`printf '\001ready at /run/x.sock\n' >&"$` + readyEnv + `"; sleep 0`, nil},
		{`printf '\000no config' >&"$` + readyEnv + `"; exit 2`, tokenpipe.ErrChildFailed},
		{`exit 3`, tokenpipe.ErrChildExited},
	} {
		t.Run(c.script, func(t *testing.T) {
			cmd := exec.Command("sh", "-c", c.script)
			msg, err := startAndWait(cmd)
			if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
				t.Fatalf("got (%q, %v), want %v", msg, err, c.want)
			}
			if c.want == nil {
				cmd.Wait()
			}
			t.Logf("(%q, %v)", msg, err)
		})
	}
}

// End of stream first: ErrChildExited with the exit status; reaped.
func TestStartAndWaitExited(t *testing.T) {
	killed := "signal: killed"
	if runtime.GOOS == "windows" {
		killed = "exit status 1" // TerminateProcess's exit code, as os.Process.Kill uses it
	}
	for _, c := range []struct {
		helper, arg, status string
	}{
		{"exit-without-report", "3", "exit status 3"},
		{"exit-without-report", "0", "exit status 0"},
		{"kill-self", "", killed},
	} {
		t.Run(strings.TrimSpace(c.helper+" "+c.arg), func(t *testing.T) {
			cmd, _ := handshakeCommand(t, c.helper, c.arg)
			leaks := watchLeaks(t)
			_, err := startAndWait(cmd)
			leaks.check(t)
			if !errors.Is(err, tokenpipe.ErrChildExited) || !strings.HasSuffix(err.Error(), "child exited without a report: "+c.status) {
				t.Fatalf("got %v, want ErrChildExited ending in %q", err, c.status)
			}
			reaped(t, cmd)
		})
	}
}

// ctx ends first: killed, reaped, ctx.Err(); also while the message is
// still coming.
func TestStartAndWaitContextEnds(t *testing.T) {
	t.Run("no report", func(t *testing.T) {
		cmd, _ := handshakeCommand(t, "live-until-stdin-closes")
		leaks := watchLeaks(t)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := tokenpipe.StartAndWait(ctx, cmd, readyEnv)
		leaks.check(t)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want context.DeadlineExceeded", err)
		}
		reaped(t, cmd)
		if cmd.ProcessState.Success() {
			t.Fatalf("child %s, want killed", cmd.ProcessState)
		}
	})
	t.Run("failure reason, end still open", func(t *testing.T) {
		cmd, _ := handshakeCommand(t, "write-raw-report", "0", "partial", "hang")
		leaks := watchLeaks(t)
		msg, err := cancelWhenWritten(t, cmd)
		leaks.check(t)
		if !errors.Is(err, context.Canceled) || !errors.Is(err, tokenpipe.ErrChildFailed) || msg != "partial" {
			t.Fatalf("got (%q, %v), want (\"partial\", ErrChildFailed and context.Canceled)", msg, err)
		}
		reaped(t, cmd)
		if cmd.ProcessState.Success() {
			t.Fatalf("child %s, want killed", cmd.ProcessState)
		}
	})
	// Token 1 is the child's word that it is ready: a child that keeps its
	// end open without the newline (a shell's `printf '\001' >&$FD; exec
	// server`) is ready when ctx ends, with the part of the message that
	// came, and is not killed.
	t.Run("message without its newline", func(t *testing.T) {
		cmd, _ := handshakeCommand(t, "write-raw-report", "1", "partial", "hang")
		msg, err := cancelWhenWritten(t, cmd)
		if err != nil || msg != "partial" {
			t.Fatalf("got (%q, %v), want (\"partial\", nil)", msg, err)
		}
		if cmd.ProcessState != nil {
			t.Fatalf("a ready child was waited for: %s", cmd.ProcessState)
		}
	})
	t.Run("ended before the call", func(t *testing.T) {
		// Not handshakeCommand: the pipe StdinPipe makes stays open in a Cmd
		// that is never started, as documented.
		cmd := helperCommand(t, "report-ready", "plain")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := tokenpipe.StartAndWait(ctx, cmd, readyEnv); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
		if cmd.Process != nil {
			t.Fatal("started a command although ctx had ended")
		}
	})
}

// A child that reports failure, or closes its end without a report, and
// then does not exit is killed when ctx ends: the error matches both. What
// the child wrote before ctx ended counts however far StartAndWait had read
// it, as it reads what the pipe holds before it decides.
func TestStartAndWaitLingers(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want error
	}{
		{"failed", []string{"0", "gave up", "close-hang"}, tokenpipe.ErrChildFailed},
		{"no report", []string{"", "", "close-hang"}, tokenpipe.ErrChildKilled},
	} {
		t.Run(c.name, func(t *testing.T) {
			for range 5 {
				cmd, _ := handshakeCommand(t, "write-raw-report", c.args...)
				leaks := watchLeaks(t)
				_, err := cancelWhenWritten(t, cmd)
				leaks.check(t)
				if !errors.Is(err, context.Canceled) || !errors.Is(err, c.want) {
					t.Fatalf("got %v, want %v and context.Canceled", err, c.want)
				}
				reaped(t, cmd)
				if cmd.ProcessState.Success() {
					t.Fatalf("child %s, want killed", cmd.ProcessState)
				}
			}
		})
	}
}

// Whatever the interleaving of a child's own exit and the end of ctx, the
// outcome says what happened, as the child's status shows it: a child that
// exited by itself, with status 3, "exited"; one that StartAndWait killed
// was "killed".
func TestStartAndWaitExitAsContextEnds(t *testing.T) {
	killed := "signal: killed"
	if runtime.GOOS == "windows" {
		killed = "exit status 1" // TerminateProcess's exit code, as os.Process.Kill uses it
	}
	for range 60 {
		cmd, stdin := handshakeCommand(t, "exit-without-report-at-stdin-eof", "3")
		_, cancel, done := startAndWaitUntilLine(t, cmd) // running (or failed to start: the result says)
		stdin.Close()                                    // the child exits
		r := cancelAndAwait(t, cancel, done)
		exited := errors.Is(r.err, tokenpipe.ErrChildExited) && !errors.Is(r.err, tokenpipe.ErrChildKilled) &&
			!errors.Is(r.err, context.Canceled) && !strings.Contains(r.err.Error(), "context")
		switch status := cmd.ProcessState.String(); status {
		case "exit status 3":
			if !exited || !strings.HasSuffix(r.err.Error(), "child exited without a report: exit status 3") {
				t.Fatalf("the child exited by itself (%s), but StartAndWait said %v", status, r.err)
			}
		case killed:
			if !errors.Is(r.err, tokenpipe.ErrChildKilled) || !errors.Is(r.err, context.Canceled) {
				t.Fatalf("StartAndWait killed the child (%s), but said %v", status, r.err)
			}
		default: // "<nil>" too: not waited for, and the result says why
			t.Fatalf("child ended with %s; StartAndWait said (%q, %v)", status, r.msg, r.err)
		}
		reaped(t, cmd)
	}
}

func init() {
	// trickle-report writes token arg1, says "written" on standard output, then
	// writes 'x' every 15 ms until the pipe breaks: a child that never
	// finishes its report.
	register("trickle-report", func() int {
		e := childEnd(readyEnv)
		tok := byte(0)
		if os.Args[1] == "1" {
			tok = 1
		}
		if err := e.TokenWrite(tok); err != nil {
			return helperExit(3, err)
		}
		os.Stdout.WriteString("written\n")
		for e.TokenWrite('x') == nil {
			time.Sleep(15 * time.Millisecond)
		}
		holdStdin()
		return 0
	})
}

// trickleAfterCancel cancels ctx once the helper has written its token and
// reports how long StartAndWait took from then on; after hangGuard it kills
// the child to get StartAndWait back, and says so.
func trickleAfterCancel(t *testing.T, token string) (msg string, err error, hung bool) {
	cmd, _ := handshakeCommand(t, "trickle-report", token)
	line, cancel, done := startAndWaitUntilLine(t, cmd)
	if line != "written\n" {
		t.Fatalf("helper said %q", line)
	}
	cancel()
	var r started
	select {
	case r = <-done:
	case <-time.After(hangGuard):
		hung = true
		cmd.Process.Kill() // ends the trickle: end of stream
		r = <-done
	}
	return r.msg, r.err, hung
}

// ctx is the caller's bound on StartAndWait: after it ends, only what the
// pipe holds is read, without waiting, so a child that goes on writing a byte
// every 15 ms cannot hold StartAndWait. (It could, for minutes: the drain
// waited up to 100 ms for each byte, bounded per byte, never in total.)
func TestStartAndWaitTrickleAfterCtx(t *testing.T) {
	for _, token := range []string{"1", "0"} {
		t.Run("token "+token, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			msg, err, hung := trickleAfterCancel(t, token)
			if hung {
				t.Errorf("StartAndWait had not returned %v after ctx ended (a child writing a byte every 15 ms); it returned %d bytes (err %v) once the child was killed", time.Since(start).Round(time.Second), len(msg), err != nil)
			}
		})
	}
}

// Start fails: the error, wrapped; nothing left open.
func TestStartAndWaitStartFails(t *testing.T) {
	// Not t.TempDir: Wine fails to remove a directory a process was looked
	// up in ("Invalid function").
	cmd := exec.Command(filepath.Join(os.TempDir(), "tokenpipe-test-no-such-program", "daemon"))
	leaks := watchLeaks(t)
	_, err := startAndWait(cmd)
	leaks.check(t)
	// Windows looks the name up first, to add ".exe", and finds nothing.
	if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, exec.ErrNotFound) {
		t.Fatalf("got %v, want an error matching fs.ErrNotExist or exec.ErrNotFound", err)
	}
	if cmd.Process != nil {
		t.Fatal("cmd.Process is set although Start failed")
	}
}

// Bad arguments: os.ErrInvalid, nothing started.
func TestStartAndWaitBadArguments(t *testing.T) {
	started := helperCommand(t, "exit-without-report", "0")
	started.Process = new(os.Process) // as Start leaves it; never used
	for name, call := range map[string]func() (*exec.Cmd, error){
		"nil ctx": func() (*exec.Cmd, error) {
			cmd := helperCommand(t, "exit-without-report", "0")
			//lint:ignore SA1012 a nil context is the bad input under test
			_, err := tokenpipe.StartAndWait(nil, cmd, readyEnv)
			return cmd, err
		},
		"nil cmd": func() (*exec.Cmd, error) {
			_, err := tokenpipe.StartAndWait(context.Background(), nil, readyEnv)
			return nil, err
		},
		"started cmd": func() (*exec.Cmd, error) {
			_, err := tokenpipe.StartAndWait(context.Background(), started, readyEnv)
			return nil, err
		},
		"empty env":     badEnv(t, ""),
		"env with =":    badEnv(t, "A=B"),
		"env with NUL":  badEnv(t, "A\x00B"),
		"NOTIFY_SOCKET": badEnv(t, "NOTIFY_SOCKET"),
	} {
		t.Run(name, func(t *testing.T) {
			leaks := watchLeaks(t)
			cmd, err := call()
			leaks.check(t)
			if !errors.Is(err, os.ErrInvalid) {
				t.Fatalf("got %v, want os.ErrInvalid", err)
			}
			if cmd != nil && cmd.Process != nil {
				t.Fatal("started the command anyway")
			}
		})
	}
}

func badEnv(t *testing.T, env string) func() (*exec.Cmd, error) {
	return func() (*exec.Cmd, error) {
		cmd := helperCommand(t, "exit-without-report", "0")
		_, err := tokenpipe.StartAndWait(context.Background(), cmd, env)
		return cmd, err
	}
}

// A double-forking child: the grandchild holds the end, and its report, or
// its exit, is what counts.
func TestStartAndWaitDoubleFork(t *testing.T) {
	t.Run("grandchild ready", func(t *testing.T) {
		cmd, stdin := handshakeCommand(t, "hand-end-to-grandchild", "ready")
		defer stdin.Close() // ends the grandchild
		msg, err := startAndWait(cmd)
		if err != nil || msg != "from the grandchild" {
			t.Fatalf("got (%q, %v), want (\"from the grandchild\", nil)", msg, err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("the child: %v", err)
		}
	})
	t.Run("grandchild fails", func(t *testing.T) {
		cmd, _ := handshakeCommand(t, "hand-end-to-grandchild", "fail")
		msg, err := startAndWait(cmd)
		if !errors.Is(err, tokenpipe.ErrChildFailed) || msg != "the grandchild failed" {
			t.Fatalf("got (%q, %v), want the grandchild's failure", msg, err)
		}
		reaped(t, cmd)
	})
	t.Run("grandchild exits", func(t *testing.T) {
		cmd, _ := handshakeCommand(t, "hand-end-to-grandchild", "exit")
		_, err := startAndWait(cmd)
		// The status is the child's: it exited 0 after the fork.
		if !errors.Is(err, tokenpipe.ErrChildExited) || !strings.HasSuffix(err.Error(), "exit status 0") {
			t.Fatalf("got %v, want ErrChildExited with the child's exit status 0", err)
		}
		reaped(t, cmd)
	})
}

// A child that writes forever cannot hang the parent: 4 KiB are read, the
// pipe is closed and the child's writes fail.
func TestStartAndWaitEndlessMessage(t *testing.T) {
	want := strings.Repeat("a", 4096)
	t.Run("ready", func(t *testing.T) {
		cmd, _ := handshakeCommand(t, "write-report-forever", "1")
		msg, err := startAndWait(cmd)
		if err != nil || msg != want {
			t.Fatalf("got (%d bytes, %v), want (4096 bytes, nil)", len(msg), err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("the child did not see a broken pipe: %v", err)
		}
	})
	t.Run("failed", func(t *testing.T) {
		cmd, _ := handshakeCommand(t, "write-report-forever", "0")
		msg, err := startAndWait(cmd)
		if !errors.Is(err, tokenpipe.ErrChildFailed) || msg != want {
			t.Fatalf("got (%d bytes, %v), want (4096 bytes, ErrChildFailed)", len(msg), err)
		}
		reaped(t, cmd)
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("the child exited %d: it did not see a broken pipe", code)
		}
	})
}

func init() {
	// ready-with-4096-byte-message writes exactly the bytes Ready writes for a
	// message of 4096 bytes (token 1, 4096 'x', '\n'), but pauses before the
	// '\n' until the test says "go" on standard input, as a preempted daemon
	// would. It exits 0 if the '\n' went out, 7 if the pipe was broken.
	register("ready-with-4096-byte-message", func() int {
		e := childEnd(readyEnv)
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
	cmd, stdin := handshakeCommand(t, "ready-with-4096-byte-message")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	done := goStartAndWait(ctx, cmd)
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "written\n" {
		t.Fatalf("helper: %q, %v", line, err)
	}
	r, returnedEarly := resultBeforeGoOn(done, func() { io.WriteString(stdin, "go\n") })
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

// A grandchild holding the child's output pipe cannot hang StartAndWait:
// cmd.WaitDelay bounds cmd.Wait.
func TestStartAndWaitOutputHeldByGrandchild(t *testing.T) {
	cmd, _ := handshakeCommand(t, "leave-grandchild-holding-stdout")
	var out bytes.Buffer
	cmd.Stdout = &out
	_, err := startAndWait(cmd)
	if !errors.Is(err, tokenpipe.ErrChildExited) || !strings.HasSuffix(err.Error(), "exit status 3") {
		t.Fatalf("got %v, want ErrChildExited with exit status 3", err)
	}
	reaped(t, cmd)
	if cmd.WaitDelay != time.Second {
		t.Errorf("cmd.WaitDelay = %v, want the documented 1s", cmd.WaitDelay)
	}

	// A WaitDelay the caller chose is kept.
	cmd, _ = handshakeCommand(t, "exit-without-report", "3")
	cmd.WaitDelay = time.Minute
	startAndWait(cmd)
	if cmd.WaitDelay != time.Minute {
		t.Errorf("cmd.WaitDelay = %v, want the caller's 1m", cmd.WaitDelay)
	}
}

// Only one report goes out, however Ready and Fail are called.
func TestOneReport(t *testing.T) {
	t.Run("concurrent", func(t *testing.T) {
		cmd, _ := handshakeCommand(t, "ready-and-fail-at-once")
		msg, err := startAndWait(cmd)
		switch {
		case err == nil && msg == "ready won":
			cmd.Wait()
		case errors.Is(err, tokenpipe.ErrChildFailed) && msg == "fail won":
		default:
			t.Fatalf("got (%q, %v), want one whole report", msg, err)
		}
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("helper exited %d: both reports or neither went out", code)
		}
	})
	t.Run("sequential", func(t *testing.T) {
		cmd, _ := handshakeCommand(t, "report-ready-twice")
		msg, err := startAndWait(cmd)
		if err != nil || msg != "first" {
			t.Fatalf("got (%q, %v), want (\"first\", nil)", msg, err)
		}
		cmd.Wait()
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("helper exited %d: a second report was not refused", code)
		}
	})
}

// Run by hand, with nothing exported: ErrNotExported, which a daemon ignores,
// naming the variable and, where it is looked for, NOTIFY_SOCKET.
func TestReportNotExported(t *testing.T) {
	freshReports(t)
	t.Setenv(readyEnv, "")
	os.Unsetenv(readyEnv)
	t.Setenv("NOTIFY_SOCKET", "")
	names := []string{readyEnv}
	if runtime.GOOS != "windows" {
		names = append(names, "NOTIFY_SOCKET")
	}
	for op, report := range map[string]func() error{
		"Ready": func() error { return tokenpipe.Ready(readyEnv, "x") },
		"Fail":  func() error { return tokenpipe.Fail(readyEnv, nil) },
	} {
		err := report()
		if !errors.Is(err, tokenpipe.ErrNotExported) || !strings.HasPrefix(err.Error(), "tokenpipe: "+op+": ") {
			t.Errorf("%s: got %v, want ErrNotExported, named %s", op, err, op)
			continue
		}
		for _, name := range names {
			if !strings.Contains(err.Error(), name) {
				t.Errorf("%s: %q does not name %s", op, err, name)
			}
		}
	}
	t.Setenv(readyEnv, "not-a-number")
	if err := tokenpipe.Ready(readyEnv, "x"); !errors.Is(err, os.ErrInvalid) || !strings.Contains(err.Error(), readyEnv) {
		t.Errorf("Ready with a bad value: got %v, want os.ErrInvalid naming %s", err, readyEnv)
	}
	if err := tokenpipe.Fail("", nil); !errors.Is(err, os.ErrInvalid) {
		t.Errorf("Fail with an empty name: got %v, want os.ErrInvalid", err)
	}
	if err := tokenpipe.Ready("NOTIFY_SOCKET", "x"); !errors.Is(err, os.ErrInvalid) {
		t.Errorf("Ready with NOTIFY_SOCKET for the end: got %v, want os.ErrInvalid", err)
	}
}

// typedNilErr is the classic typed nil: a nil *typedNilErr in an error
// interface is not a nil error, and its Error method dereferences.
type typedNilErr struct{ s string }

func (e *typedNilErr) Error() string { return e.s }

// A reason whose Error method panics (a typed nil is the usual one) does not
// take the daemon down in Fail, which describes it as fmt would ("<nil>",
// "%!v(PANIC=...)"), also in a daemon run by hand with nothing exported,
// where Fail returns ErrNotExported.
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

// What the caller put in cmd (extra files or handles, process attributes,
// environment) is kept beside the exported end.
func TestStartAndWaitKeepsCallerSetup(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := helperCommand(t, "check-caller-setup")
	value := callerSetup(t, cmd, w)
	cmd.Args = append(cmd.Args, value)
	attr := cmd.SysProcAttr
	before := *attr
	msg, err := startAndWait(cmd)
	w.Close()
	if err != nil || msg != "true" {
		t.Fatalf("got (%q, %v), want (\"true\", nil): the caller's attributes were lost", msg, err)
	}
	cmd.Wait()
	if !reflect.DeepEqual(*attr, before) {
		t.Error("StartAndWait changed the caller's *SysProcAttr")
	}
	if got, err := io.ReadAll(r); string(got) != "extra" {
		t.Fatalf("the caller's extra file got %q (%v), want \"extra\"", got, err)
	}
}
