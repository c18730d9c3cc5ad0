//go:build unix || windows

package tokenpipe_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
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
	os.Exit(runInOwnTempDir(m))
}

// runInOwnTempDir runs the tests with a temporary directory of their own,
// inherited by their children, so that a leak check sees only what the
// tests leave there, not what other processes (another run of these tests)
// put in the shared one. It is open to every user, as /tmp is, for the
// children that the tests run as another user.
func runInOwnTempDir(m *testing.M) int {
	dir, err := os.MkdirTemp("", "tokenpipe-tests-")
	if err == nil {
		err = os.Chmod(dir, 0o711)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot make the tests' temporary directory:", err)
		return 2
	}
	tempVar := "TMPDIR"
	if runtime.GOOS == "windows" {
		tempVar = "TMP" // what GetTempPath reads first
	}
	os.Setenv(tempVar, dir)
	code := m.Run()
	if err := removeTree(dir); err != nil {
		fmt.Fprintln(os.Stderr, "the tests' temporary directory is left behind:", err)
	}
	return code
}

// removeTree removes dir and what it holds, one entry at a time: Go 1.26's
// os.RemoveAll fails under Wine 8 with "Invalid function", while os.Remove
// works.
func removeTree(dir string) error {
	var paths []string
	err := filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		paths = append(paths, path)
		return err
	})
	for _, path := range slices.Backward(paths) {
		err = errors.Join(err, os.Remove(path))
	}
	return err
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
	// live-until-stdin-closes lives until its standard input closes and does
	// nothing else: a child that holds what it inherited, and never
	// reports, for as long as the test wants.
	register("live-until-stdin-closes", func() int {
		holdStdin()
		return 0
	})
}

// childEnd is FromEnv(env) in a helper child, which exits 3 if it fails.
func childEnd(env string) *tokenpipe.TokenPipeEnd {
	e, err := tokenpipe.FromEnv(env)
	if err != nil {
		os.Exit(helperExit(3, err))
	}
	return e
}

// mustMake makes a pipe and takes its ends, which close when the test ends.
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

// reapAtEnd ends cmd's process when the test ends, if it was started and
// has not been waited for: it sends sig (os.Kill, unless the child deserves
// the chance to stop cleanly) and waits, so that no test leaves a child
// running, or a zombie, behind.
func reapAtEnd(t testing.TB, cmd *exec.Cmd, sig os.Signal) {
	t.Cleanup(func() {
		if cmd.Process != nil && cmd.ProcessState == nil {
			cmd.Process.Signal(sig)
			cmd.Wait()
		}
	})
}

// A leakCheck is what a test found open when it began to watch, to fail
// the test if more is open when it ends: descriptors (handles, on Windows),
// goroutines, and the temporary directory's entries named tokenpipe-*, as
// the sd_notify socket's directory is.
type leakCheck struct {
	every       bool // every descriptor, not only pipes, sockets and pidfds
	descriptors tokenpipe.Descriptors
	goroutines  int
	tempDir     string
	temp        []string
}

// watchLeaks begins a leak check of the pipes, sockets and pidfds: what the
// ends, the handshake and its socket open, and not the /dev/null that
// os/exec opens for a child's standard streams and closes again.
func watchLeaks(t testing.TB) *leakCheck {
	t.Helper()
	return newLeakCheck(t, false)
}

// watchEveryDescriptor begins a leak check of every descriptor (on Windows,
// of every pipe handle: the runtime's threads and events come and go).
func watchEveryDescriptor(t testing.TB) *leakCheck {
	t.Helper()
	return newLeakCheck(t, true)
}

func newLeakCheck(t testing.TB, every bool) *leakCheck {
	t.Helper()
	c := &leakCheck{every: every, tempDir: os.TempDir(), goroutines: runtime.NumGoroutine()}
	c.temp = tokenpipeEntries(t, c.tempDir)
	c.descriptors = tokenpipe.OpenDescriptors(t)
	return c
}

// check fails the test unless what c watches is as it was: no more
// goroutines, as many descriptors of each kind counted (fewer would be one
// closed that the test did not own), no new tokenpipe-* entry. The
// goroutines come first: one that has done its work, and said so, may still
// be on its way out, closing what it held.
func (c *leakCheck) check(t testing.TB) {
	t.Helper()
	if after := settledGoroutines(c.goroutines); after > c.goroutines {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines before, %d after:\n%s", c.goroutines, after, buf[:runtime.Stack(buf, true)])
	}
	after := tokenpipe.OpenDescriptors(t)
	if c.every && after.All != c.descriptors.All {
		t.Errorf("%d descriptors open before, %d after", c.descriptors.All, after.All)
	}
	if before := c.descriptors; after.Pipes != before.Pipes || after.Sockets != before.Sockets || after.Pidfds != before.Pidfds {
		t.Errorf("pipes, sockets and pidfds open before: %d, %d, %d; after: %d, %d, %d",
			before.Pipes, before.Sockets, before.Pidfds, after.Pipes, after.Sockets, after.Pidfds)
	}
	for _, name := range tokenpipeEntries(t, c.tempDir) {
		if !slices.Contains(c.temp, name) {
			t.Errorf("%s is left in the temporary directory", filepath.Join(c.tempDir, name))
		}
	}
}

// tokenpipeEntries lists the entries of dir named tokenpipe-*.
func tokenpipeEntries(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("listing the temporary directory: %v", err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "tokenpipe-") {
			names = append(names, e.Name())
		}
	}
	return names
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
