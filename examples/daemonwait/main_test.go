package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// runMainEnv makes the test binary, started as a child, run main instead of
// the tests: it is the daemonwait program, parent and daemon alike, on every
// OS and under Wine, where no go command can build one.
const runMainEnv = "DAEMONWAIT_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		return
	}
	adoptOrphans()
	os.Exit(m.Run())
}

// daemonwait runs the program with args and returns its output and exit code.
func daemonwait(t *testing.T, args ...string) (string, int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1", "GORACE=atexit_sleep_ms=0")
	out, err := cmd.CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// expect checks the output against a pattern and returns the daemon's pid.
func expect(t *testing.T, out string, code, wantCode int, pattern string) int {
	t.Helper()
	m := regexp.MustCompile(`^daemon (\d+) ` + pattern + `\n$`).FindStringSubmatch(out)
	if m == nil || code != wantCode {
		t.Fatalf("got exit %d and output %q, want exit %d and output matching %q", code, out, wantCode, pattern)
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

func TestReady(t *testing.T) {
	out, code := daemonwait(t, "-lifetime", "1m")
	m := regexp.MustCompile(`ready on (\S+)`).FindStringSubmatch(out)
	pid := expect(t, out, code, 0, `ready on \S+`)
	addr := m[1]
	stopped := false
	defer func() {
		if !stopped {
			stopDaemon(t, pid)
		}
	}()

	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("the daemon that reported ready does not answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "daemonwait " + strconv.Itoa(pid) + " ok\n"; string(body) != want {
		t.Fatalf("health response %q, want %q", body, want)
	}

	stopDaemon(t, pid)
	stopped = true
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Fatalf("daemon %d was stopped but %s still accepts connections", pid, addr)
	}
}

func TestFailureReported(t *testing.T) {
	out, code := daemonwait(t, "-fail")
	expect(t, out, code, 1, `failed: start-up failure requested with -fail`)
}

func TestAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	out, code := daemonwait(t, "-addr", ln.Addr().String())
	expect(t, out, code, 1, `failed: listen tcp `+regexp.QuoteMeta(ln.Addr().String())+`: .+`)
}

func TestDaemonDiesBeforeReady(t *testing.T) {
	out, code := daemonwait(t, "-crash")
	expect(t, out, code, 1, `exited before it was ready`)
}

func TestDaemonHangs(t *testing.T) {
	out, code := daemonwait(t, "-hang", "-timeout", "200ms", "-lifetime", "1h")
	expect(t, out, code, 1, `not ready after 200ms: killed it`)
	// The parent reaped what it killed; no daemon serves anything.
	if strings.Contains(out, "ready on") {
		t.Fatal("a hanging daemon was reported ready")
	}
}

// An empty NOTIFY_SOCKET counts as unset, as for Ready: run by hand with
// one, daemonwait is the parent, starts the daemon and says it is ready,
// rather than serving silently in the foreground.
func TestEmptyNotifySocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	out, code := daemonwait(t, "-lifetime", "3s")
	stopDaemon(t, expect(t, out, code, 0, `ready on \S+`))
}

func TestBadEnvironment(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), runMainEnv+"=1", readyEnv+"=not-a-number")
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(string(out), `DAEMONWAIT_READY_FD="not-a-number"`) {
		t.Fatalf("got exit %d and %q, want exit 2 and an error naming the variable and value", code, out)
	}
}
