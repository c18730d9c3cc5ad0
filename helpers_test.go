//go:build unix || windows

package tokenpipe_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tokenpipe/tokenpipe"
)

// hangGuard bounds every wait in these tests: reaching it means a hang, the
// very bug under test, never a slow machine.
const hangGuard = 20 * time.Second

// helperEnv makes the test binary, started as a child, run the helper it names
// instead of the tests; helpers lists them.
const helperEnv = "TOKENPIPE_TEST_HELPER"

// helpers are what a child started by helperCommand can run, by name; the
// function's result is the child's exit code.
var helpers = map[string]func() int{}

// register adds a helper. A name registered twice is a mistake that would
// make one test run another's child: it panics, as os/exec's tests do.
func register(name string, f func() int) {
	if _, dup := helpers[name]; dup {
		panic("test helper " + name + " registered twice")
	}
	helpers[name] = f
}

func TestMain(m *testing.M) {
	if name, ok := os.LookupEnv(helperEnv); ok {
		os.Unsetenv(helperEnv) // the helper's own children are not helpers
		run, ok := helpers[name]
		if !ok {
			os.Stderr.WriteString("unknown test helper " + name + "\n")
			os.Exit(2)
		}
		os.Exit(run())
	}
	os.Exit(m.Run())
}

// helperCommand returns a command that runs the named helper in a child.
func helperCommand(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd, err := newHelperCommand(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

func newHelperCommand(name string, args ...string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	// A race-enabled binary sleeps a second at exit unless told otherwise.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), helperEnv+"="+name, "GORACE="+gorace)
	cmd.Stderr = os.Stderr
	return cmd, nil
}

// helperExit reports a helper's failure on standard error and returns code.
func helperExit(code int, err error) int {
	fmt.Fprintln(os.Stderr, "helper:", err)
	return code
}

// holdStdin blocks until standard input closes: the test holds the other end.
func holdStdin() { io.Copy(io.Discard, os.Stdin) }

func init() {
	// hold stays alive until its standard input closes.
	register("hold", func() int {
		io.Copy(io.Discard, os.Stdin)
		return 0
	})
}

// childEnd is FromEnv in a helper child, which exits 3 if it fails.
func childEnd() *tokenpipe.TokenPipeEnd {
	e, err := tokenpipe.FromEnv(endEnv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(3)
	}
	return e
}

// childEndNamed is FromEnv(env) in a helper child, which exits 3 if it fails.
func childEndNamed(env string) *tokenpipe.TokenPipeEnd {
	e, err := tokenpipe.FromEnv(env)
	if err != nil {
		os.Exit(helperExit(3, err))
	}
	return e
}

func mustMake(t testing.TB) (r, w *tokenpipe.TokenPipeEnd) {
	t.Helper()
	p, err := tokenpipe.Make()
	if err != nil {
		t.Fatalf("Make: %v", err)
	}
	r, w = p.TakeReadEnd(), p.TakeWriteEnd()
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// result is what one read returned.
type result struct {
	tok byte
	err error
}

// readAsync starts read in a goroutine and returns where its result arrives;
// the channel started is closed just before read is called.
func readAsync(read func() (byte, error)) (started chan struct{}, done chan result) {
	started, done = make(chan struct{}), make(chan result, 1)
	go func() {
		close(started)
		tok, err := read()
		done <- result{tok, err}
	}()
	return started, done
}

// readWithin reads from r, giving up after d.
func readWithin(t testing.TB, r *tokenpipe.TokenPipeEnd, d time.Duration) (byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return r.TokenReadContext(ctx)
}

func await(t testing.TB, done chan result, what string) result {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(hangGuard):
		t.Fatalf("%s: still blocked after %v", what, hangGuard)
		return result{}
	}
}

// openNonPipe opens a regular file and returns its handle.
func openNonPipe(t testing.TB) uintptr {
	t.Helper()
	return createTemp(t).Fd()
}

// createTemp creates a temporary file, closed and removed after the test.
// (Not in t.TempDir: Go 1.26's RemoveAll fails under Wine 8 with "Invalid
// function", while os.Remove works.)
func createTemp(t testing.TB) *os.File {
	t.Helper()
	f, err := os.CreateTemp("", "tokenpipe-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		if err := os.Remove(f.Name()); err != nil {
			t.Error(err)
		}
	})
	return f
}

// noLeaks runs f and checks that it left no pipe and no goroutine behind.
func noLeaks(t *testing.T, f func()) {
	t.Helper()
	pipes, goroutines := tokenpipe.OpenPipes(t), runtime.NumGoroutine()
	f()
	if got := tokenpipe.OpenPipes(t); got != pipes {
		t.Errorf("%d pipes open before, %d after", pipes, got)
	}
	// A joined goroutine may still be on its way out after it signalled.
	deadline := time.Now().Add(hangGuard)
	for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := runtime.NumGoroutine(); got > goroutines {
		t.Errorf("%d goroutines before, %d after", goroutines, got)
	}
}

// settledGoroutines counts goroutines, giving those that have finished their
// work (and said so) up to hangGuard to return.
func settledGoroutines(want int) int {
	deadline := time.Now().Add(hangGuard)
	n := runtime.NumGoroutine()
	for n > want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
		n = runtime.NumGoroutine()
	}
	return n
}
