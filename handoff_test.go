//go:build unix || windows

package tokenpipe_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenpipe/tokenpipe"
)

// endEnv is the variable the tests export ends under.
const endEnv = "TOKENPIPE_TEST_END"

func init() {
	register("write-1-to-10", func() int {
		w := childEnd(endEnv)
		for tok := range byte(10) {
			if err := w.TokenWrite(tok + 1); err != nil {
				fmt.Fprintln(os.Stderr, "helper:", err)
				return 1
			}
		}
		return 0
	})
	// exit-silently takes its end and exits without a word, like a daemon
	// that crashes during start-up.
	register("exit-silently", func() int {
		childEnd(endEnv)
		return 0
	})
	// take-end-and-hang takes its end and waits for its standard input to
	// close.
	register("take-end-and-hang", func() int {
		w := childEnd(endEnv)
		io.Copy(io.Discard, os.Stdin)
		runtime.KeepAlive(w)
		return 0
	})
	// read-with-context checks that an inherited end honours a context, says
	// so on standard output, then exits with the token the parent sends.
	register("read-with-context", func() int {
		r := childEnd(endEnv)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		if tok, err := r.TokenReadContext(ctx); err != context.DeadlineExceeded {
			fmt.Fprintf(os.Stderr, "helper: read with deadline: got (%d, %v)\n", tok, err)
			return 1
		}
		fmt.Println("deadline honoured")
		tok, err := r.TokenRead()
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 1
		}
		return int(tok)
	})
	// report-and-linger starts a grandchild that shares its standard input,
	// reports ready, closes its end, and stays alive, as does the grandchild,
	// until standard input closes.
	register("report-and-linger", func() int {
		w := childEnd(endEnv)
		exe, _ := os.Executable()
		grandchild := exec.Command(exe)
		grandchild.Env = append(os.Environ(), helperEnv+"=live-until-stdin-closes")
		grandchild.Stdin, grandchild.Stderr = os.Stdin, os.Stderr
		if err := grandchild.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 1
		}
		if err := w.TokenWrite(1); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 1
		}
		w.Close()
		io.Copy(io.Discard, os.Stdin)
		grandchild.Wait()
		return 0
	})
}

// child is a started helper holding an exported end.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// startChild exports e to the helper, starts it and closes e, as a parent
// should. The helper is killed at the end of the test if still running.
func startChild(t testing.TB, helper string, e *tokenpipe.TokenPipeEnd) *child {
	t.Helper()
	c := &child{cmd: helperCommand(t, helper)}
	if err := e.ExportTo(c.cmd, endEnv); err != nil {
		t.Fatalf("ExportTo: %v", err)
	}
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	reapAtEnd(t, c.cmd, os.Kill)
	t.Cleanup(func() { c.stdin.Close() }) // before the kill: a helper may end by itself
	err = c.cmd.Start()
	e.Close() // whether or not Start worked
	if err != nil {
		t.Fatalf("starting %s: %v", helper, err)
	}
	return c
}

// wait closes the child's standard input and checks its exit code.
func (c *child) wait(t testing.TB, wantCode int) {
	t.Helper()
	c.stdin.Close()
	err := c.cmd.Wait()
	if code := c.cmd.ProcessState.ExitCode(); code != wantCode {
		t.Fatalf("child exit code %d (%v), want %d", code, err, wantCode)
	}
}

// Reliability 1: a child's tokens all arrive, then end of stream.
func TestChildWritesTokens(t *testing.T) {
	r, w := mustMake(t)
	c := startChild(t, "write-1-to-10", w)
	for want := byte(1); want <= 10; want++ {
		if tok, err := readWithin(t, r, hangGuard); tok != want || err != nil {
			t.Fatalf("got (%d, %v), want (%d, nil)", tok, err, want)
		}
	}
	if tok, err := readWithin(t, r, hangGuard); err != io.EOF {
		t.Fatalf("after the child's last token: got (%d, %v), want io.EOF", tok, err)
	}
	c.wait(t, 0)
}

// Reliability 2: a child that dies without a word is end of stream, never a
// token and never a hang.
func TestChildDiesSilently(t *testing.T) {
	t.Run("exits", func(t *testing.T) {
		r, w := mustMake(t)
		c := startChild(t, "exit-silently", w)
		if tok, err := readWithin(t, r, 5*time.Second); err != io.EOF {
			t.Fatalf("child exited silently: got (%d, %v), want io.EOF", tok, err)
		}
		c.wait(t, 0)
	})
	t.Run("killed", func(t *testing.T) {
		r, w := mustMake(t)
		c := startChild(t, "take-end-and-hang", w)
		started, done := readAsync(func() (byte, error) { return readWithin(t, r, 5*time.Second) })
		<-started
		if err := c.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		if res := await(t, done, "read while the child is killed"); res.err != io.EOF {
			t.Fatalf("child killed: got (%d, %v), want io.EOF", res.tok, res.err)
		}
	})
}

// Reliability 3: a hanging child is a timeout, then end of stream once killed.
func TestChildHangs(t *testing.T) {
	r, w := mustMake(t)
	c := startChild(t, "take-end-and-hang", w)
	if tok, err := readWithin(t, r, 50*time.Millisecond); err != context.DeadlineExceeded {
		t.Fatalf("hanging child: got (%d, %v), want context.DeadlineExceeded", tok, err)
	}
	c.cmd.Process.Kill()
	if tok, err := readWithin(t, r, 5*time.Second); err != io.EOF {
		t.Fatalf("after killing the child: got (%d, %v), want io.EOF", tok, err)
	}
}

// Reliability 4: parent to child, with a context read in the child.
func TestParentWritesToChild(t *testing.T) {
	r, w := mustMake(t)
	c := helperCommand(t, "read-with-context")
	if err := r.ExportTo(c, endEnv); err != nil {
		t.Fatal(err)
	}
	stdout, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	reapAtEnd(t, c, os.Kill)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "deadline honoured" {
		t.Fatalf("child said %q (%v), want \"deadline honoured\"", line, err)
	}
	if err := w.TokenWrite(42); err != nil {
		t.Fatal(err)
	}
	c.Wait()
	if code := c.ProcessState.ExitCode(); code != 42 {
		t.Fatalf("child exited %d, want the token 42", code)
	}
}

// Reliability 4, for a child not written in Go.
func TestShellChildWritesToken(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no POSIX shell on Windows; TestParentWritesToChild covers handles in any child")
	}
	r, w := mustMake(t)
	cmd := exec.Command("sh", "-c", `printf '\001' >&"$`+endEnv+`"`)
	if err := w.ExportTo(cmd, endEnv); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.CombinedOutput()
	w.Close()
	if err != nil {
		t.Fatalf("sh: %v: %s", err, out)
	}
	if tok, err := readWithin(t, r, hangGuard); tok != 1 || err != nil {
		t.Fatalf("got (%d, %v), want (1, nil)", tok, err)
	}
	if tok, err := readWithin(t, r, hangGuard); err != io.EOF {
		t.Fatalf("after sh exited: got (%d, %v), want io.EOF", tok, err)
	}
}

// Reliability 5: ends started concurrently reach only their own child, not a
// sibling and not a grandchild.
func TestNoEndLeaksToSiblingsOrGrandchildren(t *testing.T) {
	const children = 12
	var wg sync.WaitGroup
	kids := make([]*child, children)
	for i := range children {
		wg.Go(func() {
			r, w := mustMake(t)
			kids[i] = startChild(t, "report-and-linger", w)
			if tok, err := readWithin(t, r, hangGuard); tok != 1 || err != nil {
				t.Errorf("child %d: got (%d, %v), want (1, nil)", i, tok, err)
				return
			}
			// The child and its grandchild live on; only a leaked copy of
			// the write end could hold off end of stream now.
			if tok, err := readWithin(t, r, 10*time.Second); err != io.EOF {
				t.Errorf("child %d closed its end: got (%d, %v), want io.EOF; a sibling or grandchild holds the end", i, tok, err)
			}
		})
	}
	wg.Wait()
	for _, k := range kids {
		if k != nil {
			k.wait(t, 0)
		}
	}
}

// An end dropped after ExportTo, as by the one-liner
// p.TakeWriteEnd().ExportTo(cmd, env), is not closed by the collector under
// cmd, which needs it until Start: the child gets its end. (It was closed:
// on Unix the child started with descriptor 3 closed; on Windows the handle
// value in AdditionalInheritedHandles could have been reused by anything.)
func TestExportedEndDroppedBeforeStart(t *testing.T) {
	p, err := tokenpipe.Make()
	if err != nil {
		t.Fatal(err)
	}
	r := p.TakeReadEnd()
	defer r.Close()
	cmd := helperCommand(t, "write-1-to-10")
	if err := p.TakeWriteEnd().ExportTo(cmd, endEnv); err != nil {
		t.Fatal(err)
	}
	p = nil
	for range 3 {
		runtime.GC()
	}
	// Make a few pipes so that, on Windows, the freed handle value is reused.
	for range 4 {
		q, err := tokenpipe.Make()
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("Start after dropping the exported end: %v", err)
	}
	reapAtEnd(t, cmd, os.Kill)
	for want := byte(1); want <= 10; want++ {
		if tok, err := readWithin(t, r, hangGuard); tok != want || err != nil {
			cmd.Wait() // the child exits 3 when FromEnv fails
			t.Fatalf("child started after its exported end was dropped and collected: got (%d, %v), want (%d, nil); child exit %d",
				tok, err, want, cmd.ProcessState.ExitCode())
		}
	}
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("child exit %d", code)
	}

	// Once nothing holds the end, the collector closes it, as any dropped
	// end; this test then leaves no descriptor for the collector to close
	// while a later test counts them. On Unix cmd holds it, in ExtraFiles.
	// On Windows only Close closes an exported end: cmd names its handle by
	// value alone, so nothing could tell when cmd is done with it.
	if runtime.GOOS == "windows" {
		return
	}
	open := tokenpipe.OpenDescriptors(t).Pipes
	cmd.ExtraFiles = nil
	for deadline := time.Now().Add(hangGuard); tokenpipe.OpenDescriptors(t).Pipes >= open; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the dropped end was still open %v after cmd let go of it", hangGuard)
		}
		runtime.GC() // a state, polled: the collector signals nothing
	}
}

// FromEnv takes an inherited end whole: not inheritable again, variable gone,
// reads with a context and Close-unblocking work.
func TestFromEnv(t *testing.T) {
	h, w := tokenpipe.RawPipe(t, tokenpipe.ReadEnd)
	t.Setenv(endEnv, strconv.FormatUint(uint64(h), 10))
	r, err := tokenpipe.FromEnv(endEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if v, ok := os.LookupEnv(endEnv); ok {
		t.Errorf("FromEnv left %s=%s in the environment", endEnv, v)
	}
	if got := tokenpipe.OSHandle(t, r); got != h {
		t.Fatalf("FromEnv took handle %d, want %d", got, h)
	}
	if tokenpipe.Inheritable(t, h) {
		t.Error("FromEnv left the end inheritable: the process's own children would hold it")
	}
	if tok, err := readWithin(t, r, 10*time.Millisecond); err != context.DeadlineExceeded {
		t.Fatalf("read with deadline: got (%d, %v), want context.DeadlineExceeded", tok, err)
	}
	w.Write([]byte{9})
	if tok, err := r.TokenRead(); tok != 9 || err != nil {
		t.Fatalf("got (%d, %v), want (9, nil)", tok, err)
	}
	started, done := readAsync(r.TokenRead)
	<-started
	r.Close()
	if res := await(t, done, "read after Close"); !errors.Is(res.err, os.ErrClosed) {
		t.Fatalf("read after Close: got (%d, %v), want os.ErrClosed", res.tok, res.err)
	}
	// The handle was the only read end: closing it breaks the pipe. (Its
	// value is no proof: Windows hands it out again at once.)
	if _, err := w.Write([]byte{1}); err == nil {
		t.Error("Close left the imported handle open: the pipe still has a reader")
	}
	if _, err := tokenpipe.FromEnv(endEnv); !errors.Is(err, tokenpipe.ErrNotExported) {
		t.Errorf("second FromEnv: got %v, want ErrNotExported", err)
	}
}

// FromEnv refuses bad values with an error naming the variable and the
// value, and leaves whatever they name alone.
func TestFromEnvRefusesBadValues(t *testing.T) {
	regular := openNonPipe(t)
	socket := tokenpipe.OpenSocket(t)
	// Made inheritable, so that we see FromEnv leave the flags alone.
	tokenpipe.SetInheritable(t, regular, true)
	tokenpipe.SetInheritable(t, socket, true)

	values := []string{"", "abc", "-1", "3x", " 3", "3 ", "+3", "03", "0x3", "1e3", "٣",
		"99999999999999999999999", "18446744073709551616"}
	if limit := tokenpipe.MaxEndValue; limit < math.MaxUint64 {
		values = append(values, strconv.FormatUint(limit+1, 10))
	}
	open := map[string]uintptr{
		"regular file": regular,
		"socket":       socket,
	}
	for i, h := range tokenpipe.StdHandles() {
		open[[]string{"stdin", "stdout", "stderr"}[i]] = h
	}
	for _, v := range values {
		t.Run(fmt.Sprintf("%q", v), func(t *testing.T) {
			refused(t, v)
		})
	}
	t.Run("closed handle", func(t *testing.T) {
		f := createTemp(t)
		closedHandle := f.Fd()
		f.Close()
		refused(t, strconv.FormatUint(uint64(closedHandle), 10))
	})
	for name, h := range open {
		t.Run(name, func(t *testing.T) {
			inheritable := tokenpipe.Inheritable(t, h)
			refused(t, strconv.FormatUint(uint64(h), 10))
			if !tokenpipe.HandleOpen(h) {
				t.Fatal("FromEnv closed a handle it refused")
			}
			if tokenpipe.Inheritable(t, h) != inheritable {
				t.Error("FromEnv changed the flags of a handle it refused")
			}
		})
	}
	t.Run("unset", func(t *testing.T) {
		t.Setenv(endEnv, "")
		os.Unsetenv(endEnv)
		_, err := tokenpipe.FromEnv(endEnv)
		if !errors.Is(err, tokenpipe.ErrNotExported) || !strings.Contains(err.Error(), endEnv) {
			t.Fatalf("got %v, want ErrNotExported naming %s", err, endEnv)
		}
	})
	for _, name := range []string{"", "A=B", "A\x00B"} {
		if _, err := tokenpipe.FromEnv(name); !errors.Is(err, os.ErrInvalid) {
			t.Errorf("FromEnv(%q): got %v, want os.ErrInvalid", name, err)
		}
	}
}

// refused sets endEnv to v, checks that FromEnv says no properly, and
// returns what it said.
func refused(t *testing.T, v string) error {
	t.Helper()
	t.Setenv(endEnv, v)
	e, err := tokenpipe.FromEnv(endEnv)
	if err == nil {
		e.Close()
		t.Fatalf("FromEnv accepted %s=%q", endEnv, v)
	}
	if e != nil {
		t.Errorf("FromEnv returned an end with error %v", err)
	}
	if !errors.Is(err, os.ErrInvalid) {
		t.Errorf("error %q does not match os.ErrInvalid", err)
	}
	if msg := err.Error(); !strings.Contains(msg, endEnv) || !strings.Contains(msg, strconv.Quote(v)) {
		t.Errorf("error %q does not name %s and %q", msg, endEnv, v)
	}
	if got, ok := os.LookupEnv(endEnv); !ok || got != v {
		t.Errorf("FromEnv changed %s from %q to %q (set %v) although it refused it", endEnv, v, got, ok)
	}
	return err
}

// FromEnv refuses a number that an end of this process holds: two ends
// would close it twice, the second time closing whatever reused it.
func TestFromEnvRefusesOwnedEnd(t *testing.T) {
	r, w := mustMake(t)
	for _, e := range []*tokenpipe.TokenPipeEnd{r, w} {
		v := strconv.FormatUint(uint64(tokenpipe.OSHandle(t, e)), 10)
		err := refused(t, v)
		if !strings.Contains(err.Error(), "another end of this process") {
			t.Errorf("error %q does not say that an end of this process holds %s", err, v)
		}
	}
	if err := w.TokenWrite(3); err != nil {
		t.Fatalf("after the refusals: %v", err)
	}
	if tok, err := r.TokenRead(); tok != 3 || err != nil {
		t.Fatalf("after the refusals: got (%d, %v), want (3, nil)", tok, err)
	}
}

func TestExportToRefusesBadCalls(t *testing.T) {
	r, _ := mustMake(t)
	bad := map[string]func() error{
		"empty name":    func() error { return r.ExportTo(exec.Command("x"), "") },
		"name with =":   func() error { return r.ExportTo(exec.Command("x"), "A=B") },
		"name with NUL": func() error { return r.ExportTo(exec.Command("x"), "A\x00B") },
		"nil cmd":       func() error { return r.ExportTo(nil, endEnv) },
		"started cmd": func() error {
			cmd := helperCommand(t, "exit-silently")
			cmd.Process = new(os.Process) // as Start leaves it; never used
			return r.ExportTo(cmd, endEnv)
		},
	}
	for name, call := range bad {
		if err := call(); !errors.Is(err, os.ErrInvalid) {
			t.Errorf("%s: got %v, want os.ErrInvalid", name, err)
		}
		if !r.IsOpen() {
			t.Fatalf("%s: the end was closed", name)
		}
	}
	// Nothing was exported: the end still works.
	if _, err := readWithin(t, r, time.Millisecond); err != context.DeadlineExceeded {
		t.Fatalf("after refused exports: read got %v, want context.DeadlineExceeded", err)
	}
}

func TestExportToEnvironment(t *testing.T) {
	t.Setenv("TOKENPIPE_TEST_KEEP", "kept")
	sameName := endEnv
	if runtime.GOOS == "windows" {
		sameName = strings.ToLower(endEnv) // names ignore case there
	}
	for _, c := range []struct {
		name string
		env  []string // cmd.Env before ExportTo
		keep string   // an entry ExportTo must keep
	}{
		{"parent environment", nil, "TOKENPIPE_TEST_KEEP=kept"},
		{"replaces old value", []string{"A=1", sameName + "=old", endEnv + "=older"}, "A=1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, w := mustMake(t)
			cmd := exec.Command("x")
			cmd.Env = c.env
			if err := w.ExportTo(cmd, endEnv); err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(cmd.Env, c.keep) {
				t.Errorf("ExportTo dropped %s", c.keep)
			}
			checkOnce(t, cmd.Env)
		})
	}
	t.Run("end exported once", func(t *testing.T) {
		_, w := mustMake(t)
		if err := w.ExportTo(exec.Command("x"), endEnv); err != nil {
			t.Fatal(err)
		}
		if err := w.ExportTo(exec.Command("x"), endEnv); !errors.Is(err, tokenpipe.ErrExported) {
			t.Errorf("second ExportTo: got %v, want ErrExported", err)
		}
		if err := w.TokenWrite(1); !errors.Is(err, tokenpipe.ErrExported) {
			t.Errorf("TokenWrite on an exported end: got %v, want ErrExported", err)
		}
		if !w.IsOpen() {
			t.Error("an exported end reports closed")
		}
		if err := w.Close(); err != nil {
			t.Errorf("Close of an exported end: %v", err)
		}
	})
}

// checkOnce checks that env sets endEnv exactly once, whatever the case.
func checkOnce(t *testing.T, env []string) {
	t.Helper()
	n := 0
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); strings.EqualFold(k, endEnv) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%s is set %d times in %q, want once", endEnv, n, env)
	}
}

// FuzzFromEnv: no value makes FromEnv panic, accept a non-canonical
// spelling, or take a handle that is not there.
func FuzzFromEnv(f *testing.F) {
	for _, s := range []string{"", "0", "3", "03", "-1", " 3", "3x", "18446744073709551616", "2147483648", "4294967296"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := tokenpipe.ParseEndValue(s)
		if err == nil {
			if strconv.FormatUint(n, 10) != s {
				t.Fatalf("ParseEndValue accepted %q as %d, a spelling that is not canonical", s, n)
			}
			if n > tokenpipe.MaxEndValue {
				t.Fatalf("ParseEndValue accepted %q, above %d", s, tokenpipe.MaxEndValue)
			}
			if tokenpipe.HandleOpen(uintptr(n)) {
				// It might be the fuzzing engine's own pipe: leave it be.
				// TestFromEnvRefusesBadValues covers open handles.
				return
			}
		}
		if os.Setenv(endEnv, s) != nil {
			return // no environment can hold s
		}
		defer os.Unsetenv(endEnv)
		if e, err := tokenpipe.FromEnv(endEnv); err == nil {
			e.Close()
			t.Fatalf("FromEnv took %q, which names no open handle", s)
		}
	})
}

// ExportTo writes into nothing the caller may share between commands: two
// Cmds built from one base (environment, extra files or inherited handles,
// with spare capacity) each hand their child the end exported to them.
func TestExportToSharedExtraFiles(t *testing.T) {
	cmds := []*exec.Cmd{helperCommand(t, "write-1-to-10"), helperCommand(t, "write-1-to-10")}
	env := slices.Grow(slices.Clone(cmds[0].Env), 8)
	unchanged := shareAttributes(cmds...)
	var readEnds, writeEnds []*tokenpipe.TokenPipeEnd
	for _, cmd := range cmds {
		cmd.Env = env
		r, w := mustMake(t)
		readEnds, writeEnds = append(readEnds, r), append(writeEnds, w)
		if err := w.ExportTo(cmd, endEnv); err != nil {
			t.Fatal(err)
		}
	}
	if !unchanged() {
		t.Error("ExportTo wrote into the attributes the commands share")
	}
	if got := env[:cap(env)][len(env)]; got != "" {
		t.Errorf("ExportTo wrote %q into the environment the commands share", got)
	}
	for i, cmd := range cmds {
		err := cmd.Start()
		writeEnds[i].Close()
		if err != nil {
			t.Fatal(err)
		}
		reapAtEnd(t, cmd, os.Kill)
	}
	for i, r := range readEnds {
		for want := byte(1); want <= 10; want++ {
			if tok, err := readWithin(t, r, hangGuard); tok != want || err != nil {
				t.Fatalf("child %d: got (%d, %v), want (%d, nil): it inherited another's end", i, tok, err, want)
			}
		}
		if tok, err := readWithin(t, r, hangGuard); err != io.EOF {
			t.Fatalf("child %d: after its last token got (%d, %v), want io.EOF", i, tok, err)
		}
	}
}

// ExportTo ends the reads under way with ErrExported before it hands the end
// over: no read in the parent takes a token meant for the child, none is
// left in a system call that Close cannot end, and Close does not hang. (It
// did, in about 3% of rounds, when a reader retried on the descriptor that
// ExportTo had made blocking.)
func TestExportToEndsReadsUnderWay(t *testing.T) {
	for round := range 200 {
		r, w := mustMake(t)
		_, plain := readAsync(func() (byte, error) { return r.TokenReadContext(context.Background()) })
		timeout := time.Duration(round%4) * time.Millisecond
		_, timed := readAsync(func() (byte, error) { return readWithin(t, r, timeout) })
		if err := r.ExportTo(exec.Command("x"), endEnv); err != nil {
			t.Fatalf("round %d: ExportTo: %v", round, err)
		}
		// This token is the child's: no reader here may take it.
		if err := w.TokenWrite(1); err != nil {
			t.Fatal(err)
		}
		if res := await(t, plain, "read beside ExportTo"); !errors.Is(res.err, tokenpipe.ErrExported) {
			t.Fatalf("round %d: read beside ExportTo got (%d, %v), want ErrExported", round, res.tok, res.err)
		}
		if res := await(t, timed, "read with a deadline beside ExportTo"); !errors.Is(res.err, tokenpipe.ErrExported) && res.err != context.DeadlineExceeded {
			t.Fatalf("round %d: read with a deadline beside ExportTo got (%d, %v), want ErrExported or DeadlineExceeded", round, res.tok, res.err)
		}
		closeWithin(t, r)
	}
}

// closeWithin closes e, failing the test if Close hangs.
func closeWithin(t *testing.T, e *tokenpipe.TokenPipeEnd) {
	t.Helper()
	closed := make(chan error, 1)
	go func() { closed <- e.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(hangGuard):
		t.Fatalf("Close still blocked after %v", hangGuard)
	}
}

// ExportTo and Close racing on one end: ExportTo either hands the end over
// or says it is closed, and never goes on to change a descriptor that Close
// has closed (and that may have been reused).
func TestExportToRacingClose(t *testing.T) {
	for range 200 {
		r, _ := mustMake(t)
		exported := make(chan error, 1)
		go func() { exported <- r.ExportTo(exec.Command("x"), endEnv) }()
		closeWithin(t, r)
		if err := <-exported; err != nil && !errors.Is(err, os.ErrClosed) {
			t.Fatalf("ExportTo racing Close: got %v, want nil or os.ErrClosed", err)
		}
	}
}
