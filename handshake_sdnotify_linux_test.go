package tokenpipe_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokenpipe/tokenpipe"
	"golang.org/x/sys/unix"
)

// StartAndWait with sd_notify: the parent's side of the handshake with
// daemons that report over NOTIFY_SOCKET, Go or not.

func init() {
	// sd-send sends each argument, unquoted (strconv.Quote), as a datagram to NOTIFY_SOCKET, without
	// touching its end, and then waits for its standard input to close.
	register("sd-send", func() int {
		for _, quoted := range os.Args[1:] {
			msg, err := strconv.Unquote(quoted)
			if err == nil {
				err = sendRaw(msg, nil)
			}
			if err != nil {
				return helperExit(3, err)
			}
		}
		holdStdin()
		return 0
	})
	// sd-close-then-ready closes its inherited end at once, as daemons that
	// close every descriptor at start-up do, waits a while, then sends
	// READY=1 and waits for its standard input to close.
	register("sd-close-then-ready", func() int {
		childEndNamed(readyEnv).Close()
		time.Sleep(200 * time.Millisecond) // the scenario, not synchronisation
		if err := sendRaw("STATUS=late\nREADY=1", nil); err != nil {
			return helperExit(3, err)
		}
		holdStdin()
		return 0
	})
	// sd-ready-and-die sends READY=1 and exits 5 at once.
	register("sd-ready-and-die", func() int {
		if err := sendRaw("STATUS=bye\nREADY=1", nil); err != nil {
			return helperExit(3, err)
		}
		return 5
	})
	// sd-pass-fd sends a pipe's write end in SCM_RIGHTS and checks that the
	// receiver closed it; it reports ready if so and fails otherwise.
	register("sd-pass-fd", func() int {
		r, w, err := os.Pipe()
		if err != nil {
			return helperExit(3, err)
		}
		if err := sendRaw("STATUS=passing a descriptor", unix.UnixRights(int(w.Fd()))); err != nil {
			return helperExit(3, err)
		}
		w.Close()
		r.SetReadDeadline(time.Now().Add(hangGuard))
		if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			sendRaw(fmt.Sprintf("STATUS=the receiver kept the descriptor: (%d, %v)\nERRNO=9", n, err), nil)
			return 1
		}
		if err := sendRaw("STATUS=descriptor closed\nREADY=1", nil); err != nil {
			return helperExit(3, err)
		}
		holdStdin()
		return 0
	})
	// sd-stdio-closed reports with Ready with its standard descriptors
	// closed, so that the socket it sends on may be descriptor 0.
	register("sd-stdio-closed", func() int {
		for fd := range 3 {
			unix.Close(fd)
		}
		if err := tokenpipe.Ready(readyEnv, "no stdio"); err != nil {
			return 3
		}
		time.Sleep(hangGuard) // until killed
		return 0
	})
}

// sendRaw sends one datagram to NOTIFY_SOCKET with a raw socket, carrying oob.
func sendRaw(msg string, oob []byte) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Sendmsg(fd, []byte(msg), oob, &unix.SockaddrUnix{Name: os.Getenv("NOTIFY_SOCKET")}, 0)
}

// notifySocket returns the NOTIFY_SOCKET that StartAndWait gave cmd.
func notifySocket(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	var addr string
	for _, kv := range cmd.Env {
		if v, ok := strings.CutPrefix(kv, "NOTIFY_SOCKET="); ok {
			if addr != "" {
				t.Fatalf("NOTIFY_SOCKET set twice in cmd.Env")
			}
			addr = v
		}
	}
	if addr == "" {
		t.Fatal("StartAndWait set no NOTIFY_SOCKET")
	}
	return addr
}

// sdStartAndWait runs StartAndWait on cmd with a context that never ends by
// itself, and fails the test if it has not returned after hangGuard. It
// checks that the socket's directory is gone, and at the end of the test,
// once the child is reaped, that no socket, pidfd or goroutine is left.
func sdStartAndWait(t *testing.T, cmd *exec.Cmd) (string, error) {
	t.Helper()
	fds, goroutines := socketsAndPidfds(t), runtime.NumGoroutine()
	t.Cleanup(func() {
		if cmd.Process != nil && cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if after := socketsAndPidfds(t); after != fds {
			t.Errorf("%d sockets and pidfds open before, %d after", fds, after)
		}
		if after := settledGoroutines(goroutines); after > goroutines {
			buf := make([]byte, 1<<16)
			t.Errorf("%d goroutines before, %d after:\n%s", goroutines, after, buf[:runtime.Stack(buf, true)])
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := goStartAndWait(ctx, cmd)
	var r started
	select {
	case r = <-done:
	case <-time.After(hangGuard):
		t.Fatalf("StartAndWait still waiting after %v", hangGuard)
	}
	if cmd.Process != nil {
		dir := filepath.Dir(notifySocket(t, cmd))
		if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the socket's directory %s is still there (%v)", dir, err)
		}
	}
	return r.msg, r.err
}

// socketsAndPidfds counts the process's open sockets and pidfds.
func socketsAndPidfds(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		target, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if strings.HasPrefix(target, "socket:") || target == "anon_inode:[pidfd]" {
			n++
		}
	}
	return n
}

// redisCommand returns a Redis that reports with sd_notify, with args added.
func redisCommand(t *testing.T, args ...string) *exec.Cmd {
	redis := needProgram(t, "redis-server")
	cmd := exec.Command(redis, append([]string{"--port", "0", "--unixsocket", filepath.Join(t.TempDir(), "redis.sock"),
		"--save", "", "--supervised", "systemd"}, args...)...)
	t.Cleanup(func() {
		if cmd.Process != nil && cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
	})
	return cmd
}

// Redis, which speaks only sd_notify and keeps the inherited end open, is
// ready with its last status as the message.
func TestStartAndWaitRedis(t *testing.T) {
	cmd := redisCommand(t)
	msg, err := sdStartAndWait(t, cmd)
	if err != nil || msg != "Ready to accept connections" {
		t.Fatalf("got (%q, %v), want Redis's last status and no error", msg, err)
	}
	if cmd.ProcessState != nil {
		t.Fatal("StartAndWait waited for the ready Redis")
	}
}

// Redis with an invalid option exits at once: ErrChildExited with its exit
// status, without waiting for the context.
func TestStartAndWaitRedisExits(t *testing.T) {
	cmd := redisCommand(t, "--no-such-option", "x")
	_, err := sdStartAndWait(t, cmd)
	if !errors.Is(err, tokenpipe.ErrChildExited) || !strings.HasSuffix(err.Error(), "exit status 1") {
		t.Fatalf("got %v, want ErrChildExited with exit status 1", err)
	}
	reaped(t, cmd)
}

// systemd-notify waits for its BARRIER=1 to be answered, and exits non-zero
// if it is not: the shell would then exit 7 before READY=1.
func TestStartAndWaitSystemdNotify(t *testing.T) {
	needProgram(t, "systemd-notify")
	cmd := exec.Command("sh", "-c", "systemd-notify --status=starting || exit 7; systemd-notify --ready")
	msg, err := sdStartAndWait(t, cmd)
	if err != nil || msg != "starting" {
		t.Fatalf("got (%q, %v), want (\"starting\", nil)", msg, err)
	}
	// The second systemd-notify's own barrier fails (exit 1) if it comes
	// after StartAndWait has returned and removed the socket.
	if cmd.Wait(); cmd.ProcessState.ExitCode() == 7 {
		t.Fatal("the first systemd-notify failed")
	}
}

// ERRNO= is a failure, with the errno's text and the last status; the child
// is waited for.
func TestStartAndWaitErrno(t *testing.T) {
	needProgram(t, "systemd-notify")
	cmd := exec.Command("systemd-notify", "STATUS=disk gone", "ERRNO=5")
	msg, err := sdStartAndWait(t, cmd)
	if !errors.Is(err, tokenpipe.ErrChildFailed) || !errors.Is(err, syscall.EIO) ||
		!strings.Contains(err.Error(), "disk gone") || !strings.Contains(err.Error(), syscall.EIO.Error()) || msg != "disk gone" {
		t.Fatalf("got (%q, %v), want ErrChildFailed with EIO and the status", msg, err)
	}
	reaped(t, cmd)
}

// A child that closes its inherited end at start-up and reports later is
// ready, not dead: the end of the pipe is not its exit.
func TestStartAndWaitClosedEndThenReady(t *testing.T) {
	cmd, _ := hsCommand(t, "sd-close-then-ready")
	msg, err := sdStartAndWait(t, cmd)
	if err != nil || msg != "late" {
		t.Fatalf("got (%q, %v), want (\"late\", nil)", msg, err)
	}
	if cmd.ProcessState != nil {
		t.Fatal("StartAndWait waited for a child that reported ready")
	}
}

// Malformed datagrams are ignored, whatever comes after them counts.
func TestStartAndWaitMalformedDatagrams(t *testing.T) {
	cmd := sdSend(t, "garbage", "READY=0\nerrno=5\nSTATUS", "ERRNO=5\x00x", "READY=1\x00x", strings.Repeat("READY=1\n", 1000), "STATUS=fine\nREADY=1")
	msg, err := sdStartAndWait(t, cmd)
	if err != nil || msg != "fine" {
		t.Fatalf("got (%q, %v), want (\"fine\", nil)", msg, err)
	}
}

// A descriptor sent to the socket is closed at once: the sender sees it
// closed, and reports so.
func TestStartAndWaitClosesPassedDescriptors(t *testing.T) {
	cmd, _ := hsCommand(t, "sd-pass-fd")
	msg, err := sdStartAndWait(t, cmd)
	if err != nil || msg != "descriptor closed" {
		t.Fatalf("got (%q, %v), want (\"descriptor closed\", nil)", msg, err)
	}
}

// A child that says READY=1 and dies at once is ready, as one that writes
// token 1 and dies is: its word came before its death. Its status is left
// for the caller.
func TestStartAndWaitReadyThenDies(t *testing.T) {
	for range 20 { // the race between the datagram and the exit, many times
		cmd, _ := hsCommand(t, "sd-ready-and-die")
		msg, err := sdStartAndWait(t, cmd)
		if err != nil || msg != "bye" {
			t.Fatalf("got (%q, %v), want (\"bye\", nil)", msg, err)
		}
		if err := cmd.Wait(); cmd.ProcessState.ExitCode() != 5 {
			t.Fatalf("cmd.Wait: %v, want exit status 5", err)
		}
	}
}

// sdSend returns an sd-send helper command sending msgs.
func sdSend(t *testing.T, msgs ...string) *exec.Cmd {
	t.Helper()
	args := make([]string, len(msgs))
	for i, m := range msgs {
		args[i] = strconv.Quote(m)
	}
	cmd, _ := hsCommand(t, "sd-send", args...)
	return cmd
}

// Reports that never decide leave the wait to the context, which kills the
// child.
func TestStartAndWaitStatusOnly(t *testing.T) {
	cmd := sdSend(t, "STATUS=still loading")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := tokenpipe.StartAndWait(ctx, cmd, readyEnv)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
	reaped(t, cmd)
}

// An inherited NOTIFY_SOCKET is replaced by StartAndWait's own.
func TestStartAndWaitReplacesNotifySocket(t *testing.T) {
	cmd := sdSend(t, "STATUS=mine\nREADY=1")
	cmd.Env = append(cmd.Env, "NOTIFY_SOCKET=/nonexistent/socket")
	msg, err := sdStartAndWait(t, cmd)
	if err != nil || msg != "mine" {
		t.Fatalf("got (%q, %v), want (\"mine\", nil)", msg, err)
	}
	notifySocket(t, cmd) // set once
}

// Closed standard descriptors in the daemon change nothing.
func TestReadyWithStdioClosed(t *testing.T) {
	cmd, _ := hsCommand(t, "sd-stdio-closed")
	cmd.Stderr = nil
	msg, err := sdStartAndWait(t, cmd)
	if err != nil || msg != "no stdio" {
		t.Fatalf("got (%q, %v), want (\"no stdio\", nil)", msg, err)
	}
}

// Ready and Fail in the daemon: the datagram they send, NOTIFY_SOCKET
// unset afterwards, and the errors for channels that fail.
func TestReadyFailNotifySocket(t *testing.T) {
	unsetEnv := func(t *testing.T, key string) {
		t.Setenv(key, "") // restored after the test
		os.Unsetenv(key)
	}
	unsetEnv(t, readyEnv)
	for _, c := range []struct {
		name   string
		report func() error
		want   tokenpipe.NotifyResult
	}{
		{"Ready", func() error { return tokenpipe.Ready(readyEnv, "up\nand running") },
			tokenpipe.NotifyResult{Ready: true, Status: "up and running"}},
		{"Ready without a message", func() error { return tokenpipe.Ready(readyEnv, "") },
			tokenpipe.NotifyResult{Ready: true}},
		{"Fail with an errno", func() error { _, err := os.Open("/nonexistent"); return tokenpipe.Fail(readyEnv, err) },
			tokenpipe.NotifyResult{Errno: int(syscall.ENOENT), Status: "open /nonexistent: no such file or directory"}},
		{"Fail without one", func() error { return tokenpipe.Fail(readyEnv, errors.New("bad config")) },
			tokenpipe.NotifyResult{Errno: int(syscall.EIO), Status: "bad config"}},
		{"Fail without a reason", func() error { return tokenpipe.Fail(readyEnv, nil) },
			tokenpipe.NotifyResult{Errno: int(syscall.EIO)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			freshReports(t)
			l := listen(t)
			t.Setenv("NOTIFY_SOCKET", l.Addr())
			if err := c.report(); err != nil {
				t.Fatal(err)
			}
			if v, ok := os.LookupEnv("NOTIFY_SOCKET"); ok {
				t.Fatalf("NOTIFY_SOCKET=%q is still set", v)
			}
			if r := awaitDecision(t, l); r != c.want {
				t.Fatalf("the supervisor got %+v, want %+v", r, c.want)
			}
			if err := c.report(); !errors.Is(err, tokenpipe.ErrAlreadyReported) {
				t.Fatalf("a second report: got %v, want ErrAlreadyReported", err)
			}
		})
	}
	t.Run("empty NOTIFY_SOCKET", func(t *testing.T) {
		freshReports(t)
		t.Setenv("NOTIFY_SOCKET", "")
		if err := tokenpipe.Ready(readyEnv, "x"); !errors.Is(err, tokenpipe.ErrNotExported) {
			t.Fatalf("got %v, want ErrNotExported", err)
		}
	})
	t.Run("nobody listening", func(t *testing.T) {
		freshReports(t)
		addr := filepath.Join(t.TempDir(), "gone")
		t.Setenv("NOTIFY_SOCKET", addr)
		err := tokenpipe.Ready(readyEnv, "x")
		if !errors.Is(err, syscall.ENOENT) || errors.Is(err, tokenpipe.ErrNotExported) ||
			!strings.HasPrefix(err.Error(), "tokenpipe: Ready: NOTIFY_SOCKET=") {
			t.Fatalf("got %v, want an error naming Ready and NOTIFY_SOCKET, matching ENOENT", err)
		}
	})
	t.Run("pipe takes it, socket fails", func(t *testing.T) {
		freshReports(t)
		r, w := rawPipe(t)
		t.Setenv(readyEnv, strconv.Itoa(w))
		t.Setenv("NOTIFY_SOCKET", "relative/path")
		if err := tokenpipe.Ready(readyEnv, "via pipe"); err != nil {
			t.Fatalf("got %v, want nil: the pipe took the report", err)
		}
		if got, err := io.ReadAll(r); string(got) != "\x01via pipe\n" || err != nil {
			t.Fatalf("the pipe got (%q, %v)", got, err)
		}
	})
	// Once a channel took the report, every later call is refused the same
	// way, whatever the variable holds.
	t.Run("bad variable, socket takes it", func(t *testing.T) {
		freshReports(t)
		l := listen(t)
		t.Setenv(readyEnv, "not-a-number")
		t.Setenv("NOTIFY_SOCKET", l.Addr())
		if err := tokenpipe.Ready(readyEnv, "up"); err != nil {
			t.Fatalf("got %v, want nil: the socket took the report", err)
		}
		for _, err := range []error{tokenpipe.Fail(readyEnv, errors.New("late")), tokenpipe.Ready(readyEnv, "again")} {
			if !errors.Is(err, tokenpipe.ErrAlreadyReported) || !strings.Contains(err.Error(), "already") {
				t.Fatalf("a later report: got %v, want ErrAlreadyReported, saying \"already\"", err)
			}
		}
	})
	t.Run("both fail", func(t *testing.T) {
		freshReports(t)
		r, w := rawPipe(t)
		r.Close() // the parent has gone away
		t.Setenv(readyEnv, strconv.Itoa(w))
		t.Setenv("NOTIFY_SOCKET", "relative/path")
		err := tokenpipe.Fail(readyEnv, errors.New("x"))
		if !errors.Is(err, io.ErrClosedPipe) || !errors.Is(err, os.ErrInvalid) || !strings.Contains(err.Error(), "NOTIFY_SOCKET=") {
			t.Fatalf("got %v, want both channels' errors", err)
		}
	})
}

// rawPipe makes a pipe whose write end is a bare inheritable descriptor, as
// a parent hands it down, for FromEnv to take.
func rawPipe(t *testing.T) (r *os.File, w int) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe(p[:]); err != nil {
		t.Fatal(err)
	}
	r = os.NewFile(uintptr(p[0]), "r")
	t.Cleanup(func() { r.Close() })
	return r, p[1]
}

// Of ERRNO= and READY=1 in one datagram, the first counts, as
// start-stop-daemon reads them (TestErrnoAsStartStopDaemon).
func TestStartAndWaitErrnoWithReady(t *testing.T) {
	needProgram(t, "systemd-notify")
	cmd := exec.Command("systemd-notify", "STATUS=confused", "ERRNO=3", "READY=1") // one datagram
	if _, err := sdStartAndWait(t, cmd); !errors.Is(err, tokenpipe.ErrChildFailed) || !errors.Is(err, syscall.Errno(3)) {
		t.Fatalf("ERRNO= first: got %v, want ErrChildFailed with errno 3", err)
	}
	cmd = exec.Command("systemd-notify", "STATUS=confused", "READY=1", "ERRNO=3")
	if msg, err := sdStartAndWait(t, cmd); err != nil || msg != "confused" {
		t.Fatalf("READY=1 first: got (%q, %v), want (\"confused\", nil)", msg, err)
	}
}

// A TMPDIR that does not exist does not stop StartAndWait: its socket goes
// in /tmp then, and the child reports as usual.
func TestStartAndWaitMissingTMPDIR(t *testing.T) {
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "missing"))
	cmd, _ := hsCommand(t, "hs-ready", "plain")
	msg, err := startAndWait(cmd)
	if err != nil || msg != messages["plain"].want {
		t.Fatalf("got (%q, %v), want (%q, nil)", msg, err, messages["plain"].want)
	}
}

// Ready gives up on a supervisor that does not read (its queue full) after
// a bounded time, instead of hanging the daemon.
func TestReadySupervisorNotReading(t *testing.T) {
	addr := filepath.Join(t.TempDir(), "deaf")
	deaf, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer deaf.Close()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	for { // fill its queue
		err := unix.Sendmsg(fd, []byte("STATUS=x"), nil, &unix.SockaddrUnix{Name: addr}, unix.MSG_DONTWAIT)
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv(readyEnv, "")
	os.Unsetenv(readyEnv)
	t.Setenv("NOTIFY_SOCKET", addr)
	freshReports(t)
	done := make(chan error, 1)
	go func() { done <- tokenpipe.Ready(readyEnv, "x") }()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("got %v, want a timeout", err)
		}
	case <-time.After(hangGuard):
		t.Fatalf("Ready still blocked after %v", hangGuard)
	}
}

func init() {
	// sd-hostile sends what a broken or hostile daemon might: oversized
	// datagrams, datagrams carrying the most descriptors Linux allows,
	// garbage; then READY=1. With "forever" it floods until the socket is
	// gone, and then waits for its standard input to close.
	register("sd-hostile", func() int {
		huge := strings.Repeat("READY=1\n", 20000)
		fds := make([]int, 253)
		for i := range fds {
			fds[i] = 1 // its standard output, 253 times: 253 descriptors
		}
		rights := unix.UnixRights(fds...)
		for i := 0; os.Args[1] == "forever" || i < 300; i++ {
			var err error
			switch i % 3 {
			case 0:
				err = sendRaw(huge, nil)
			case 1:
				err = sendRaw("STATUS=fds", rights)
			case 2:
				err = sendRaw("\x00\xff=\n=READY=1\nERRNO=-5", nil)
			}
			if err != nil && os.Args[1] == "forever" {
				holdStdin()
				return 0
			}
			if err != nil {
				return helperExit(3, err)
			}
		}
		if err := sendRaw("STATUS=survived\nREADY=1", nil); err != nil {
			return helperExit(3, err)
		}
		holdStdin()
		return 0
	})
}

// A daemon that floods the socket with oversized datagrams, descriptors and
// garbage neither fails the wait nor leaves a descriptor open; its READY=1
// after all that counts. One that floods without end is killed when ctx ends.
func TestStartAndWaitHostileChild(t *testing.T) {
	cmd, _ := hsCommand(t, "sd-hostile", "300")
	msg, err := sdStartAndWait(t, cmd)
	if err != nil || msg != "survived" {
		t.Fatalf("got (%q, %v), want (\"survived\", nil)", msg, err)
	}

	fds, goroutines := socketsAndPidfds(t), runtime.NumGoroutine()
	cmd, _ = hsCommand(t, "sd-hostile", "forever")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := tokenpipe.StartAndWait(ctx, cmd, readyEnv); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
	reaped(t, cmd)
	if after := socketsAndPidfds(t); after != fds {
		t.Errorf("%d sockets and pidfds before, %d after", fds, after)
	}
	if after := settledGoroutines(goroutines); after > goroutines {
		t.Errorf("%d goroutines before, %d after", goroutines, after)
	}
}

// ERRNO= is read as start-stop-daemon reads it, whatever its spelling, and
// the first decisive line counts: the real start-stop-daemon and StartAndWait
// are sent the same datagrams, and either both fail or neither does; where
// start-stop-daemon cannot parse the errno, StartAndWait says so too.
func TestErrnoAsStartStopDaemon(t *testing.T) {
	ssd := needProgram(t, "start-stop-daemon")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cases := [][]string{{"READY=1\nERRNO=5"}, {"STATUS=x\nERRNO=5\nREADY=1"}}
	for _, v := range []string{"5", "05", "+5", " 5", "\t5", "2147483647", "2147483648", "0", "-0", "-5", "", "abc", "5 ", "0x5"} {
		cases = append(cases, []string{"STATUS=starting\nERRNO=" + v, "READY=1"})
	}
	for _, msgs := range cases {
		t.Run(strconv.Quote(strings.Join(msgs, "|")), func(t *testing.T) {
			quoted := make([]string, len(msgs))
			for i, m := range msgs {
				quoted[i] = strconv.Quote(m)
			}
			// --pidfile, not --exec: start-stop-daemon takes any process
			// running the test binary for the daemon, already running.
			pidfile := filepath.Join(t.TempDir(), "pid")
			ssdCmd := exec.Command(ssd, append([]string{"--start", "--background", "--notify-await",
				"--notify-timeout", "10", "--pidfile", pidfile, "--make-pidfile", "--startas", exe, "--"}, quoted...)...)
			ssdCmd.Env = helperCommand(t, "sd-send").Env
			out, err := ssdCmd.CombinedOutput()
			if _, ok := err.(*exec.ExitError); err != nil && !ok {
				t.Fatal(err)
			}
			ssdFailed := ssdCmd.ProcessState.ExitCode() != 0
			ssdUnparsed := bytes.Contains(out, []byte("cannot parse errno"))

			// Its standard input is the null device: it sends and exits.
			msg, err := sdStartAndWait(t, helperCommand(t, "sd-send", quoted...))
			failed := errors.Is(err, tokenpipe.ErrChildFailed)
			unparsed := failed && strings.Contains(err.Error(), "which is not a number")
			if failed != ssdFailed || (!failed && err != nil) || unparsed != ssdUnparsed {
				t.Fatalf("start-stop-daemon: failed %v (%s); StartAndWait: (%q, %v)", ssdFailed, bytes.TrimSpace(out), msg, err)
			}
		})
	}
}

// A daemon that a root launcher starts as an unprivileged user, and that
// speaks only sd_notify, is heard: systemd-notify run as nobody.
func TestStartAndWaitChildUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("not root: cannot start a child as another user")
	}
	cmd := exec.Command(needProgram(t, "systemd-notify"), "--ready", "--status=up as nobody")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	msg, err := sdStartAndWait(t, cmd)
	if err != nil || msg != "up as nobody" {
		t.Fatalf("got (%q, %v), want (\"up as nobody\", nil)", msg, err)
	}
}

func init() {
	// sd-ready-lingering-socket connects to the TCP address arg, fills the
	// connection until the peer, which never reads, takes no more, sets
	// SO_LINGER so that the last close of the socket blocks for a minute,
	// and sends it to NOTIFY_SOCKET with STATUS=up and READY=1. Then it
	// closes its own copy, says "closed" on standard output, and waits
	// for standard input to close.
	register("sd-ready-lingering-socket", func() int {
		conn, err := net.Dial("tcp", os.Args[1])
		if err != nil {
			return helperExit(3, err)
		}
		tcp := conn.(*net.TCPConn)
		if err := tcp.SetLinger(60); err != nil {
			return helperExit(3, err)
		}
		rc, err := tcp.SyscallConn()
		if err != nil {
			return helperExit(3, err)
		}
		var fd int
		rc.Control(func(s uintptr) {
			fd = int(s)
			for buf := make([]byte, 64<<10); ; {
				if _, err := unix.Write(fd, buf); err != nil {
					break // EAGAIN: full
				}
			}
		})
		if err := sendRaw("STATUS=up\nREADY=1", unix.UnixRights(fd)); err != nil {
			return helperExit(3, err)
		}
		conn.Close() // not the last reference: returns at once
		fmt.Println("closed")
		holdStdin()
		return 0
	})
}

// What a datagram says counts at once, whatever its descriptors do: a TCP
// socket with SO_LINGER and unsent data, whose last close blocks for a
// minute, comes with READY=1, and the sender has closed its copy (the hook
// holds the listener until then), so the listener's close is the last. The
// daemon is ready at once, and the socket is still closed, later, by
// something nothing waits for: once the peer reads, the connection ends.
func TestStartAndWaitBlockingDescriptor(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() }) // after sdStartAndWait's count
	cmd, _ := hsCommand(t, "sd-ready-lingering-socket", ln.Addr().String())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	restore := tokenpipe.SetReceiveHook(func() {
		once.Do(func() { bufio.NewReader(stdout).ReadString('\n') })
	})
	msg, err := sdStartAndWait(t, cmd)
	restore()
	if err != nil || msg != "up" {
		t.Fatalf("got (%q, %v), want (\"up\", nil)", msg, err)
	}
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(hangGuard))
	if _, err := io.Copy(io.Discard, conn); err != nil {
		t.Fatalf("the connection did not end: the socket was not closed: %v", err)
	}
}

func init() {
	// sd-ready-after-littering makes, in its NOTIFY_SOCKET's directory, what
	// arg says, then reports with Ready and waits for standard input to
	// close. "read-only": a subdirectory holding a file, then that
	// subdirectory and the directory itself made read-only (0500).
	// "moved": the directory renamed to dir+".moved", and a symbolic link to
	// the directory named by arg 2 put in its place.
	register("sd-ready-after-littering", func() int {
		dir := filepath.Dir(os.Getenv("NOTIFY_SOCKET"))
		var err error
		switch os.Args[1] {
		case "read-only":
			sub := filepath.Join(dir, "sub")
			err = errors.Join(os.Mkdir(sub, 0o700), os.WriteFile(filepath.Join(sub, "file"), nil, 0o600),
				os.Chmod(sub, 0o500), os.Chmod(dir, 0o500))
		case "moved":
			err = errors.Join(os.Rename(dir, dir+".moved"), os.Symlink(os.Args[2], dir))
		}
		if err != nil {
			return helperExit(3, err)
		}
		if err := tokenpipe.Ready(readyEnv, "littered"); err != nil {
			return helperExit(3, err)
		}
		holdStdin()
		return 0
	})
}

// The socket's directory goes, whatever the child (the same user) left in
// it; and where it cannot go, StartAndWait says so (ErrCleanup), keeps the
// child's outcome, and changes nothing outside the directory it made: a
// child that moved the directory away and left a symbolic link in its place
// does not get it to change what the link points to.
func TestStartAndWaitRemovesSocketDir(t *testing.T) {
	t.Run("read-only", func(t *testing.T) {
		cmd, _ := hsCommand(t, "sd-ready-after-littering", "read-only")
		msg, err := sdStartAndWait(t, cmd) // checks that the directory is gone
		if err != nil || msg != "littered" {
			t.Fatalf("got (%q, %v), want (\"littered\", nil)", msg, err)
		}
	})
	t.Run("moved", func(t *testing.T) {
		target := t.TempDir()
		if err := os.Chmod(target, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(target, "keep"), nil, 0o644)
		cmd, _ := hsCommand(t, "sd-ready-after-littering", "moved", target)
		msg, err := startAndWait(cmd)
		dir := filepath.Dir(notifySocket(t, cmd))
		t.Cleanup(func() { os.Remove(dir); os.RemoveAll(dir + ".moved") })
		if !errors.Is(err, tokenpipe.ErrCleanup) || msg != "littered" || !strings.Contains(err.Error(), dir) {
			t.Fatalf("got (%q, %v), want (\"littered\", ErrCleanup naming %s)", msg, err, dir)
		}
		if st, err := os.Stat(target); err != nil || st.Mode().Perm() != 0o755 {
			t.Fatalf("the link's target: %v (%v), want it as it was, mode 0755", st.Mode(), err)
		}
		if _, err := os.Stat(filepath.Join(target, "keep")); err != nil {
			t.Fatalf("the link's target lost a file: %v", err)
		}
		if entries, err := os.ReadDir(dir + ".moved"); err != nil || len(entries) != 0 {
			t.Fatalf("the moved directory holds %d entries (%v), want it emptied", len(entries), err)
		}
	})
}

func init() {
	// dies-while-grandchild-holds-end starts a grandchild ("hold", on the same
	// standard input) that inherits its end, so that the pipe never ends,
	// prints its own pid, and then ends itself with signal arg (a number),
	// or exits with status 3 when arg is "exit".
	register("dies-while-grandchild-holds-end", func() int {
		gc, err := newHelperCommand("hold")
		if err != nil {
			return helperExit(3, err)
		}
		gc.Stdin = os.Stdin // the test's pipe: the grandchild ends with the test
		if err := gc.Start(); err != nil {
			return helperExit(3, err)
		}
		gc.Process.Release()
		os.Stdout.WriteString(strconv.Itoa(os.Getpid()) + "\n")
		if os.Args[1] == "exit" {
			return 3
		}
		sig, _ := strconv.Atoi(os.Args[1])
		syscall.Kill(os.Getpid(), syscall.Signal(sig))
		holdStdin() // not reached
		return 0
	})
}

// A child that died by itself before ctx ended, of a status or a signal
// (SIGKILL too), was not killed: StartAndWait says it exited, as the README's
// table does ("exits without a report | ErrChildExited"). A grandchild holds
// the end, so that only ctx ends the wait, and the test cancels ctx only
// once the child is a zombie (waitid WNOWAIT): the kill StartAndWait would
// send could only hit a dead process, which kill(2) takes without a word.
func TestStartAndWaitDiedBeforeContextEnded(t *testing.T) {
	for _, how := range []string{"exit", strconv.Itoa(int(syscall.SIGTERM)), strconv.Itoa(int(syscall.SIGKILL))} {
		t.Run(how, func(t *testing.T) {
			cmd, _ := hsCommand(t, "dies-while-grandchild-holds-end", how)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := goStartAndWait(ctx, cmd)
			line, err := bufio.NewReader(stdout).ReadString('\n')
			pid, perr := strconv.Atoi(strings.TrimSpace(line))
			if perr != nil {
				t.Fatalf("child's pid: %q, %v", line, err)
			}
			// Until the child is a zombie; not reaped (WNOWAIT).
			var info unix.Siginfo
			for {
				err = unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
				if err != unix.EINTR {
					break
				}
			}
			if err != nil {
				t.Fatalf("waitid: %v", err)
			}
			cancel()
			var r started
			select {
			case r = <-done:
			case <-time.After(hangGuard):
				t.Fatal("StartAndWait still waiting after ctx was cancelled")
			}
			if !errors.Is(r.err, tokenpipe.ErrChildExited) || errors.Is(r.err, tokenpipe.ErrChildKilled) {
				t.Fatalf("the child had died by itself before ctx ended (%s); got %v, want ErrChildExited and not ErrChildKilled",
					cmd.ProcessState, r.err)
			}
		})
	}
}

func init() {
	// statuses-with-descriptors-then-ready sends arg1 datagrams of STATUS= that
	// each carry 253 descriptors (its /dev/null), then STATUS=up and
	// READY=1, says "sent" on standard output once that send has returned
	// (the datagram is in the listener's queue), and waits for standard
	// input to close. Its pipe end stays open and silent.
	register("statuses-with-descriptors-then-ready", func() int {
		e := childEndNamed(readyEnv) // held open, never written
		null, err := os.Open(os.DevNull)
		if err != nil {
			return helperExit(3, err)
		}
		fds := make([]int, 253)
		for i := range fds {
			fds[i] = int(null.Fd())
		}
		n, _ := strconv.Atoi(os.Args[1])
		for i := range n {
			if err := sendRaw(fmt.Sprintf("STATUS=starting %d", i), unix.UnixRights(fds...)); err != nil {
				return helperExit(3, err)
			}
		}
		if err := sendRaw("STATUS=up\nREADY=1", nil); err != nil {
			return helperExit(3, err)
		}
		fmt.Println("sent")
		holdStdin()
		runtimeKeepAlive(e)
		return 0
	})
}

// When ctx ends, what the socket holds counts, however far its reader had
// got (README: "what the pipe and the socket hold counts"): a READY=1 queued
// behind forty datagrams of 253 descriptors each when ctx ends makes the
// daemon ready. The helper says "sent" once its READY=1 is queued; the test
// then cancels.
func TestStartAndWaitQueuedReadyAtContextEnd(t *testing.T) {
	const runs = 20
	var killed int
	var last error
	for range runs {
		cmd, _ := hsCommand(t, "statuses-with-descriptors-then-ready", "40")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := goStartAndWait(ctx, cmd)
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		cancel()
		var r started
		select {
		case r = <-done:
		case <-time.After(hangGuard):
			t.Fatal("StartAndWait still waiting after ctx was cancelled")
		}
		if line != "sent\n" {
			t.Fatalf("helper said %q; StartAndWait: (%q, %v)", line, r.msg, r.err)
		}
		if r.err != nil || r.msg != "up" {
			killed++
			last = r.err
		}
	}
	if killed > 0 {
		t.Fatalf("in %d of %d runs a READY=1 queued before ctx ended did not count; last: %v", killed, runs, last)
	}
}

func init() {
	// linger-then-flood-descriptors connects to the TCP address arg1, whose peer never
	// reads, fills the connection, sets SO_LINGER to an hour, sends the
	// socket to NOTIFY_SOCKET with STATUS= only, closes its own copy, says
	// "closed" on standard output, then sends arg2 datagrams that each carry
	// 253 descriptors (its /dev/null, 253 times), then READY=1, and waits
	// for standard input to close.
	register("linger-then-flood-descriptors", func() int {
		conn, err := net.Dial("tcp", os.Args[1])
		if err != nil {
			return helperExit(3, err)
		}
		tcp := conn.(*net.TCPConn)
		if err := tcp.SetLinger(3600); err != nil {
			return helperExit(3, err)
		}
		rc, _ := tcp.SyscallConn()
		var fd int
		rc.Control(func(s uintptr) {
			fd = int(s)
			for buf := make([]byte, 64<<10); ; {
				if _, err := unix.Write(fd, buf); err != nil {
					break // EAGAIN: full
				}
			}
		})
		if err := sendRaw("STATUS=lingering", unix.UnixRights(fd)); err != nil {
			return helperExit(3, err)
		}
		conn.Close() // not the last reference: the listener's copy is
		fmt.Println("closed")
		null, err := os.Open(os.DevNull)
		if err != nil {
			return helperExit(3, err)
		}
		fds := make([]int, 253) // SCM_MAX_FD
		for i := range fds {
			fds[i] = int(null.Fd())
		}
		n, _ := strconv.Atoi(os.Args[2])
		for range n {
			if err := sendRaw("STATUS=flood", unix.UnixRights(fds...)); err != nil {
				return helperExit(3, err)
			}
		}
		if err := sendRaw("STATUS=up\nREADY=1", nil); err != nil {
			return helperExit(3, err)
		}
		holdStdin()
		return 0
	})
	// launch-flooder-with-1024-descriptors is a launcher with RLIMIT_NOFILE 1024: it runs
	// StartAndWait on linger-then-flood-descriptors (16 datagrams of 253 descriptors:
	// more than it may hold) against a TCP listener of its own that never
	// reads, then starts its next daemon with StartAndWait. Exit 0: it can; 4: it
	// cannot; 3: the first StartAndWait did not say ready.
	register("launch-flooder-with-1024-descriptors", func() int {
		lim := syscall.Rlimit{Cur: 1024, Max: 1024}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return helperExit(5, err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return helperExit(5, err)
		}
		defer ln.Close()
		cmd, err := newHelperCommand("linger-then-flood-descriptors", ln.Addr().String(), "16")
		if err != nil {
			return helperExit(5, err)
		}
		stdin, _ := cmd.StdinPipe() // held: the child stays up
		defer stdin.Close()
		stdout, _ := cmd.StdoutPipe()
		// The listener's copy of the socket must be the last: hold the
		// first datagram until the child has closed its own.
		var once sync.Once
		restore := tokenpipe.SetReceiveHook(func() {
			once.Do(func() { bufio.NewReader(stdout).ReadString('\n') })
		})
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		msg, err := tokenpipe.StartAndWait(ctx, cmd, readyEnv)
		restore()
		if err != nil || msg != "up" {
			return helperExit(3, fmt.Errorf("StartAndWait: (%q, %v), want (\"up\", nil)", msg, err))
		}
		// The launcher starts its next daemon.
		next, err := newHelperCommand("hs-ready", "plain")
		if err != nil {
			return helperExit(5, err)
		}
		nextIn, _ := next.StdinPipe()
		defer nextIn.Close()
		if _, err := tokenpipe.StartAndWait(ctx, next, readyEnv); err != nil {
			n := -1
			if ents, rerr := os.ReadDir("/proc/self/fd"); rerr == nil {
				n = len(ents)
			}
			return helperExit(4, fmt.Errorf("the next StartAndWait, after the first returned ready (%d descriptors open): %w", n, err))
		}
		return 0
	})
}

// A child whose descriptor blocks in its last close (a TCP socket with
// SO_LINGER for an hour and unsent data) and that then floods the socket
// with descriptors neither fills the launcher's descriptor table nor goes
// unheard: the other closing goroutines go on, and while too many wait to
// be closed the listener reads no more. After StartAndWait has returned
// ready the launcher starts its next daemon. The launcher runs in a process
// of its own with RLIMIT_NOFILE 1024, so that a failure does not fill this
// one's.
func TestStartAndWaitBlockedCloseHoldsNoMore(t *testing.T) {
	cmd := helperCommand(t, "launch-flooder-with-1024-descriptors")
	cmd.Stderr = nil
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("launcher: %v\n%s", err, out)
	}
}

func init() {
	// ready-after-deep-read-only-tree makes, in its NOTIFY_SOCKET's directory, a chain
	// of arg1 nested directories a/a/a/..., each one, and the directory
	// itself, made read-only (0500) once its child is in it: the child of
	// issue 15 item 3, with more levels. Then it reports ready and waits
	// for standard input to close.
	register("ready-after-deep-read-only-tree", func() int {
		depth, _ := strconv.Atoi(os.Args[1])
		fd, err := unix.Open(filepath.Dir(os.Getenv("NOTIFY_SOCKET")), unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return helperExit(3, err)
		}
		for range depth {
			if err := unix.Mkdirat(fd, "a", 0o700); err != nil {
				return helperExit(3, err)
			}
			next, err := unix.Openat(fd, "a", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return helperExit(3, err)
			}
			if err := unix.Fchmod(fd, 0o500); err != nil {
				return helperExit(3, err)
			}
			unix.Close(fd)
			fd = next
		}
		unix.Close(fd)
		if err := tokenpipe.Ready(readyEnv, "deep"); err != nil {
			return helperExit(3, err)
		}
		holdStdin()
		return 0
	})
	// launch-deep-read-only-tree runs StartAndWait, with a context of 5 seconds,
	// on ready-after-deep-read-only-tree with depth arg1, and says on standard output
	// what it returned; exit 3 if the child was not ready.
	register("launch-deep-read-only-tree", func() int {
		cmd, err := newHelperCommand("ready-after-deep-read-only-tree", os.Args[1])
		if err != nil {
			return helperExit(5, err)
		}
		stdin, _ := cmd.StdinPipe()
		defer stdin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		msg, err := tokenpipe.StartAndWait(ctx, cmd, readyEnv)
		fmt.Printf("(%q, %v)\n", msg, err)
		if msg != "deep" || !errors.Is(err, tokenpipe.ErrCleanup) {
			return 3
		}
		return 0
	})
}

// The socket directory's removal is bounded, whatever the child leaves: a
// chain of 6000 read-only directories (a walk by path through os.Root is
// quadratic in the depth: minutes) is left, with ErrCleanup, and
// StartAndWait returns with its context. The launcher runs in a process of
// its own, as uid 65534 when the test runs as root (root would remove the
// read-only chain at once).
func TestStartAndWaitSocketDirCleanupIsBounded(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The launcher's TMPDIR, and the copy of the test binary, which uid
	// 65534 must be able to run.
	dir, err := os.MkdirTemp("", "tokenpipe-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("chmod", "-R", "u+rwx", dir).Run() // linear, unlike the walk under test
		os.RemoveAll(dir)
	})
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	cmd := helperCommand(t, "launch-deep-read-only-tree", "6000")
	cmd.Env = append(cmd.Env, "TMPDIR="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if os.Getuid() == 0 {
		bin := filepath.Join(dir, "tokenpipe.test")
		if err := copyExecutable(exe, bin); err != nil {
			t.Fatal(err)
		}
		cmd.Path, cmd.Args[0] = bin, bin
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 65534, Gid: 65534}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("launcher: %v\n%s", err, out.String())
		}
	case <-time.After(hangGuard):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the launcher and its child
		<-done
		t.Fatalf("StartAndWait, with a 5 s context and a child that reported ready at once, had not returned after %v: it was removing the socket's directory", hangGuard)
	}
}

func copyExecutable(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// A daemon that sends its notification with the C string's terminating NUL
// (send(fd, "READY=1", sizeof "READY=1", 0): a common C idiom) is ready, as
// it is for systemd, which permits one trailing NUL
// (src/shared/notify-recv.c), and for start-stop-daemon, which reads up to
// the first (checked here against the real one).
func TestStartAndWaitTrailingNULAsStartStopDaemon(t *testing.T) {
	const msg = "STATUS=up\nREADY=1\x00"
	ssd := needProgram(t, "start-stop-daemon")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	pidfile := filepath.Join(t.TempDir(), "pid")
	ssdCmd := exec.Command(ssd, "--start", "--background", "--notify-await", "--notify-timeout", "5",
		"--pidfile", pidfile, "--make-pidfile", "--startas", exe, "--", strconv.Quote(msg))
	ssdCmd.Env = helperCommand(t, "sd-send").Env
	out, err := ssdCmd.CombinedOutput()
	// Its standard input is the null device: the sender sends and exits.
	if err != nil {
		t.Fatalf("start-stop-daemon was expected to take %q as ready: %v\n%s", msg, err, out)
	}

	cmd, _ := hsCommand(t, "sd-send", strconv.Quote(msg))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := tokenpipe.StartAndWait(ctx, cmd, readyEnv)
	if err != nil || got != "up" {
		t.Fatalf("start-stop-daemon: ready; StartAndWait: (%q, %v), want (\"up\", nil)", got, err)
	}
}
