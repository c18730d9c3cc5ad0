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
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/tokenpipe/tokenpipe"
	"golang.org/x/sys/unix"
)

// StartAndWait with children that speak sd_notify (Go or not), with daemons
// under s6, and with children that flood or trick the socket.

func init() {
	// send-datagrams sends each argument, unquoted (strconv.Quote), as a
	// datagram to NOTIFY_SOCKET, without touching its end, and then waits for
	// its standard input to close.
	register("send-datagrams", func() int {
		for _, quoted := range os.Args[1:] {
			msg, err := strconv.Unquote(quoted)
			if err == nil {
				err = sendToNotifySocket(msg, nil)
			}
			if err != nil {
				return helperExit(3, err)
			}
		}
		holdStdin()
		return 0
	})
	// close-end-then-notify-ready closes its inherited end at once, as daemons
	// that close every descriptor at start-up do, waits a while, then sends
	// READY=1 and waits for its standard input to close.
	register("close-end-then-notify-ready", func() int {
		childEnd(readyEnv).Close()
		time.Sleep(200 * time.Millisecond) // the scenario, not synchronisation
		if err := sendToNotifySocket("STATUS=late\nREADY=1", nil); err != nil {
			return helperExit(3, err)
		}
		holdStdin()
		return 0
	})
	// notify-ready-and-exit-5 sends READY=1 and exits 5 at once.
	register("notify-ready-and-exit-5", func() int {
		if err := sendToNotifySocket("STATUS=bye\nREADY=1", nil); err != nil {
			return helperExit(3, err)
		}
		return 5
	})
	// pass-descriptor-then-ready sends a pipe's write end in SCM_RIGHTS and
	// checks that the receiver closed it; it reports ready if so and fails
	// otherwise.
	register("pass-descriptor-then-ready", func() int {
		r, w, err := os.Pipe()
		if err != nil {
			return helperExit(3, err)
		}
		if err := sendToNotifySocket("STATUS=passing a descriptor", unix.UnixRights(int(w.Fd()))); err != nil {
			return helperExit(3, err)
		}
		w.Close()
		r.SetReadDeadline(time.Now().Add(hangGuard))
		if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			sendToNotifySocket(fmt.Sprintf("STATUS=the receiver kept the descriptor: (%d, %v)\nERRNO=9", n, err), nil)
			return 1
		}
		if err := sendToNotifySocket("STATUS=descriptor closed\nREADY=1", nil); err != nil {
			return helperExit(3, err)
		}
		holdStdin()
		return 0
	})
	// ready-with-stdio-closed reports with Ready with its standard descriptors
	// closed, so that the socket it sends on may be descriptor 0.
	register("ready-with-stdio-closed", func() int {
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

// sendToNotifySocket sends one datagram to NOTIFY_SOCKET with a raw socket,
// carrying oob.
func sendToNotifySocket(msg string, oob []byte) error {
	return sendDatagram(os.Getenv("NOTIFY_SOCKET"), []byte(msg), oob)
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

// checkedStartAndWait runs StartAndWait on cmd with a context that never ends
// by itself, and fails the test if it has not returned after hangGuard. It
// checks that the socket's directory is gone, and at the end of the test, once
// the child is reaped, that nothing is left open (watchLeaks).
func checkedStartAndWait(t *testing.T, cmd *exec.Cmd) (string, error) {
	t.Helper()
	leaks := watchLeaks(t)
	t.Cleanup(func() { leaks.check(t) })
	reapAtEnd(t, cmd, os.Kill) // before the check: the last cleanup registered runs first
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

// redisCommand returns a Redis that reports with sd_notify, with args added.
func redisCommand(t *testing.T, args ...string) *exec.Cmd {
	redis := needProgram(t, "redis-server")
	cmd := exec.Command(redis, append([]string{"--port", "0", "--unixsocket", filepath.Join(t.TempDir(), "redis.sock"),
		"--save", "", "--supervised", "systemd"}, args...)...)
	reapAtEnd(t, cmd, syscall.SIGTERM) // Redis stops cleanly on SIGTERM
	return cmd
}

// Redis, which speaks only sd_notify and keeps the inherited end open, is
// ready with its last status as the message.
func TestStartAndWaitRedis(t *testing.T) {
	cmd := redisCommand(t)
	msg, err := checkedStartAndWait(t, cmd)
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
	_, err := checkedStartAndWait(t, cmd)
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
	msg, err := checkedStartAndWait(t, cmd)
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
	msg, err := checkedStartAndWait(t, cmd)
	if !errors.Is(err, tokenpipe.ErrChildFailed) || !errors.Is(err, syscall.EIO) ||
		!strings.Contains(err.Error(), "disk gone") || !strings.Contains(err.Error(), syscall.EIO.Error()) || msg != "disk gone" {
		t.Fatalf("got (%q, %v), want ErrChildFailed with EIO and the status", msg, err)
	}
	reaped(t, cmd)
}

// Of ERRNO= and READY=1 in one datagram, the first counts, as
// start-stop-daemon reads them (TestErrnoAsStartStopDaemon).
func TestStartAndWaitErrnoWithReady(t *testing.T) {
	needProgram(t, "systemd-notify")
	cmd := exec.Command("systemd-notify", "STATUS=confused", "ERRNO=3", "READY=1") // one datagram
	if _, err := checkedStartAndWait(t, cmd); !errors.Is(err, tokenpipe.ErrChildFailed) || !errors.Is(err, syscall.Errno(3)) {
		t.Fatalf("ERRNO= first: got %v, want ErrChildFailed with errno 3", err)
	}
	cmd = exec.Command("systemd-notify", "STATUS=confused", "READY=1", "ERRNO=3")
	if msg, err := checkedStartAndWait(t, cmd); err != nil || msg != "confused" {
		t.Fatalf("READY=1 first: got (%q, %v), want (\"confused\", nil)", msg, err)
	}
}

// start-stop-daemon (dpkg 1.21.22, measured here) fails at once on ERRNO=05
// and ERRNO=+5 ("program failed to initialize (Input/output error)"), as on
// ERRNO=0. StartAndWait takes the first two for errno 5 too, so that a daemon
// that says ERRNO=05 and then READY=1 is a failure to both, never taken for
// success. (ERRNO=0 says "no error" to systemd, and so to StartAndWait.)
// systemd-notify --no-block sends without waiting for a barrier, and each
// datagram is queued before the next one is sent.
func TestStartAndWaitErrnoNonCanonical(t *testing.T) {
	needProgram(t, "systemd-notify")
	for _, errno := range []string{"05", "+5"} {
		t.Run(errno, func(t *testing.T) {
			cmd := exec.Command("sh", "-c", `systemd-notify --no-block "STATUS=bad config" "ERRNO=$1" && exec systemd-notify --no-block READY=1`, "sh", errno)
			msg, err := checkedStartAndWait(t, cmd)
			if !errors.Is(err, tokenpipe.ErrChildFailed) || !errors.Is(err, syscall.Errno(5)) {
				t.Fatalf("ERRNO=%s, then READY=1: got (%q, %v), want ErrChildFailed with errno 5, as start-stop-daemon sees it", errno, msg, err)
			}
		})
	}
}

// A child that closes its inherited end at start-up and reports later is
// ready, not dead: the end of the pipe is not its exit.
func TestStartAndWaitClosedEndThenReady(t *testing.T) {
	cmd, _ := handshakeCommand(t, "close-end-then-notify-ready")
	msg, err := checkedStartAndWait(t, cmd)
	if err != nil || msg != "late" {
		t.Fatalf("got (%q, %v), want (\"late\", nil)", msg, err)
	}
	if cmd.ProcessState != nil {
		t.Fatal("StartAndWait waited for a child that reported ready")
	}
}

// Malformed datagrams are ignored, whatever comes after them counts.
func TestStartAndWaitMalformedDatagrams(t *testing.T) {
	cmd := datagramSender(t, "garbage", "READY=0\nerrno=5\nSTATUS", "ERRNO=5\x00x", "READY=1\x00x", strings.Repeat("READY=1\n", 1000), "STATUS=fine\nREADY=1")
	msg, err := checkedStartAndWait(t, cmd)
	if err != nil || msg != "fine" {
		t.Fatalf("got (%q, %v), want (\"fine\", nil)", msg, err)
	}
}

// A descriptor sent to the socket is closed at once: the sender sees it
// closed, and reports so.
func TestStartAndWaitClosesPassedDescriptors(t *testing.T) {
	cmd, _ := handshakeCommand(t, "pass-descriptor-then-ready")
	msg, err := checkedStartAndWait(t, cmd)
	if err != nil || msg != "descriptor closed" {
		t.Fatalf("got (%q, %v), want (\"descriptor closed\", nil)", msg, err)
	}
}

// A child that says READY=1 and dies at once is ready, as one that writes
// token 1 and dies is: its word came before its death. Its status is left
// for the caller.
func TestStartAndWaitReadyThenDies(t *testing.T) {
	for range 20 { // the race between the datagram and the exit, many times
		cmd, _ := handshakeCommand(t, "notify-ready-and-exit-5")
		msg, err := checkedStartAndWait(t, cmd)
		if err != nil || msg != "bye" {
			t.Fatalf("got (%q, %v), want (\"bye\", nil)", msg, err)
		}
		if err := cmd.Wait(); cmd.ProcessState.ExitCode() != 5 {
			t.Fatalf("cmd.Wait: %v, want exit status 5", err)
		}
	}
}

// datagramSender returns a send-datagrams helper command that sends msgs.
func datagramSender(t *testing.T, msgs ...string) *exec.Cmd {
	t.Helper()
	args := make([]string, len(msgs))
	for i, m := range msgs {
		args[i] = strconv.Quote(m)
	}
	cmd, _ := handshakeCommand(t, "send-datagrams", args...)
	return cmd
}

// Reports that never decide leave the wait to the context, which kills the
// child.
func TestStartAndWaitStatusOnly(t *testing.T) {
	cmd := datagramSender(t, "STATUS=still loading")
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
	cmd := datagramSender(t, "STATUS=mine\nREADY=1")
	cmd.Env = append(cmd.Env, "NOTIFY_SOCKET=/nonexistent/socket")
	msg, err := checkedStartAndWait(t, cmd)
	if err != nil || msg != "mine" {
		t.Fatalf("got (%q, %v), want (\"mine\", nil)", msg, err)
	}
	notifySocket(t, cmd) // set once
}

// Closed standard descriptors in the daemon change nothing.
func TestReadyWithStdioClosed(t *testing.T) {
	cmd, _ := handshakeCommand(t, "ready-with-stdio-closed")
	cmd.Stderr = nil
	msg, err := checkedStartAndWait(t, cmd)
	if err != nil || msg != "no stdio" {
		t.Fatalf("got (%q, %v), want (\"no stdio\", nil)", msg, err)
	}
}

// A TMPDIR that does not exist does not stop StartAndWait: its socket goes
// in /tmp then, and the child reports as usual.
func TestStartAndWaitMissingTMPDIR(t *testing.T) {
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "missing"))
	cmd, _ := handshakeCommand(t, "report-ready", "plain")
	msg, err := startAndWait(cmd)
	if err != nil || msg != messages["plain"].want {
		t.Fatalf("got (%q, %v), want (%q, nil)", msg, err, messages["plain"].want)
	}
}

// With a relative TMPDIR, StartAndWait puts its socket in /tmp: a relative
// NOTIFY_SOCKET is refused by libsystemd (systemd-notify, Redis) and Ready
// itself ("not an absolute path"), so a daemon that speaks only sd_notify
// could never report ready (and it would name another place if cmd.Dir is
// set). It did use $TMPDIR as given.
func TestStartAndWaitRelativeTMPDIR(t *testing.T) {
	needProgram(t, "systemd-notify")
	t.Chdir(t.TempDir())
	if err := os.Mkdir("tmp", 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", "tmp")
	cmd := exec.Command("systemd-notify", "--ready", "--status=up")
	msg, err := checkedStartAndWait(t, cmd)
	if err != nil || msg != "up" {
		t.Fatalf("TMPDIR=tmp: got (%q, %v), want (\"up\", nil); the child's NOTIFY_SOCKET was %q", msg, err, notifySocket(t, cmd))
	}
}

func init() {
	// flood-socket-then-ready sends what a broken or hostile daemon might:
	// oversized datagrams, datagrams carrying the most descriptors Linux
	// allows, garbage; then READY=1. With "forever" it floods until the socket
	// is gone, and then waits for its standard input to close.
	register("flood-socket-then-ready", func() int {
		huge := strings.Repeat("READY=1\n", 20000)
		rights, err := devNullRights()
		if err != nil {
			return helperExit(3, err)
		}
		for i := 0; os.Args[1] == "forever" || i < 300; i++ {
			var err error
			switch i % 3 {
			case 0:
				err = sendToNotifySocket(huge, nil)
			case 1:
				err = sendToNotifySocket("STATUS=fds", rights)
			case 2:
				err = sendToNotifySocket("\x00\xff=\n=READY=1\nERRNO=-5", nil)
			}
			if err != nil && os.Args[1] == "forever" {
				holdStdin()
				return 0
			}
			if err != nil {
				return helperExit(3, err)
			}
		}
		if err := sendToNotifySocket("STATUS=survived\nREADY=1", nil); err != nil {
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
	cmd, _ := handshakeCommand(t, "flood-socket-then-ready", "300")
	msg, err := checkedStartAndWait(t, cmd)
	if err != nil || msg != "survived" {
		t.Fatalf("got (%q, %v), want (\"survived\", nil)", msg, err)
	}

	cmd, _ = handshakeCommand(t, "flood-socket-then-ready", "forever")
	leaks := watchLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := tokenpipe.StartAndWait(ctx, cmd, readyEnv); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
	reaped(t, cmd)
	leaks.check(t)
}

// ERRNO= is read as start-stop-daemon reads it, whatever its spelling, and
// the first decisive line counts: the real start-stop-daemon and StartAndWait
// are sent the same datagrams, and either both fail or neither does; where
// start-stop-daemon cannot parse the errno, StartAndWait says so too.
func TestErrnoAsStartStopDaemon(t *testing.T) {
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
			code, out := startStopDaemon(t, 10, "send-datagrams", quoted...)
			ssdFailed := code != 0
			ssdUnparsed := strings.Contains(out, "cannot parse errno")

			// Its standard input is the null device: it sends and exits.
			msg, err := checkedStartAndWait(t, helperCommand(t, "send-datagrams", quoted...))
			failed := errors.Is(err, tokenpipe.ErrChildFailed)
			unparsed := failed && strings.Contains(err.Error(), "which is not a number")
			if failed != ssdFailed || (!failed && err != nil) || unparsed != ssdUnparsed {
				t.Fatalf("start-stop-daemon: failed %v (%s); StartAndWait: (%q, %v)", ssdFailed, strings.TrimSpace(out), msg, err)
			}
		})
	}
}

// A daemon that sends its notification with the C string's terminating NUL
// (send(fd, "READY=1", sizeof "READY=1", 0): a common C idiom) is ready, as
// it is for systemd, which permits one trailing NUL
// (src/shared/notify-recv.c), and for start-stop-daemon, which reads up to
// the first (checked here against the real one).
func TestStartAndWaitTrailingNULAsStartStopDaemon(t *testing.T) {
	const msg = "STATUS=up\nREADY=1\x00"
	// Its standard input is the null device: the sender sends and exits.
	if code, out := startStopDaemon(t, 5, "send-datagrams", strconv.Quote(msg)); code != 0 {
		t.Fatalf("start-stop-daemon was expected to take %q as ready: exit %d\n%s", msg, code, out)
	}

	cmd, _ := handshakeCommand(t, "send-datagrams", strconv.Quote(msg))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := tokenpipe.StartAndWait(ctx, cmd, readyEnv)
	if err != nil || got != "up" {
		t.Fatalf("start-stop-daemon: ready; StartAndWait: (%q, %v), want (\"up\", nil)", got, err)
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
	msg, err := checkedStartAndWait(t, cmd)
	if err != nil || msg != "up as nobody" {
		t.Fatalf("got (%q, %v), want (\"up as nobody\", nil)", msg, err)
	}
}

func init() {
	// notify-ready-with-lingering-socket connects to the TCP address arg, fills
	// the connection until the peer, which never reads, takes no more, sets
	// SO_LINGER so that the last close of the socket blocks for a minute, and
	// sends it to NOTIFY_SOCKET with STATUS=up and READY=1. Then it closes its
	// own copy, says "closed" on standard output, and waits for standard input
	// to close.
	register("notify-ready-with-lingering-socket", func() int {
		conn, fd, err := dialLingering(os.Args[1], 60)
		if err != nil {
			return helperExit(3, err)
		}
		if err := sendToNotifySocket("STATUS=up\nREADY=1", unix.UnixRights(fd)); err != nil {
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
	t.Cleanup(func() { ln.Close() }) // after checkedStartAndWait's count
	cmd, _ := handshakeCommand(t, "notify-ready-with-lingering-socket", ln.Addr().String())
	// A pipe of the test's, not StdoutPipe's: cmd.Wait would close that one
	// at the end, after checkedStartAndWait's leak check began counting.
	stdout, stdoutW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdout.Close(); stdoutW.Close() })
	cmd.Stdout = stdoutW
	var once sync.Once
	restore := tokenpipe.SetReceiveHook(func() {
		once.Do(func() { bufio.NewReader(stdout).ReadString('\n') })
	})
	msg, err := checkedStartAndWait(t, cmd)
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
	// litter-socket-dir-then-ready makes, in its NOTIFY_SOCKET's directory,
	// what arg says, then reports with Ready and waits for standard input to
	// close. "read-only": a subdirectory holding a file, then that subdirectory
	// and the directory itself made read-only (0500). "moved": the directory
	// renamed to dir+".moved", and a symbolic link to the directory named by
	// arg 2 put in its place.
	register("litter-socket-dir-then-ready", func() int {
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
		cmd, _ := handshakeCommand(t, "litter-socket-dir-then-ready", "read-only")
		msg, err := checkedStartAndWait(t, cmd) // checks that the directory is gone
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
		cmd, _ := handshakeCommand(t, "litter-socket-dir-then-ready", "moved", target)
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
	// dies-while-grandchild-holds-end starts a grandchild
	// ("live-until-stdin-closes", on the same standard input) that inherits its
	// end, so that the pipe never ends, prints its own pid, and then ends
	// itself with signal arg (a number), or exits with status 3 when arg is
	// "exit".
	register("dies-while-grandchild-holds-end", func() int {
		gc, err := newHelperCommand("live-until-stdin-closes")
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
			cmd, _ := handshakeCommand(t, "dies-while-grandchild-holds-end", how)
			line, cancel, done := startAndWaitUntilLine(t, cmd)
			pid, err := strconv.Atoi(strings.TrimSpace(line))
			if err != nil {
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
			r := cancelAndAwait(t, cancel, done)
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
		e := childEnd(readyEnv) // held open, never written
		rights, err := devNullRights()
		if err != nil {
			return helperExit(3, err)
		}
		n, _ := strconv.Atoi(os.Args[1])
		for i := range n {
			if err := sendToNotifySocket(fmt.Sprintf("STATUS=starting %d", i), rights); err != nil {
				return helperExit(3, err)
			}
		}
		if err := sendToNotifySocket("STATUS=up\nREADY=1", nil); err != nil {
			return helperExit(3, err)
		}
		fmt.Println("sent")
		holdStdin()
		runtime.KeepAlive(e)
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
		cmd, _ := handshakeCommand(t, "statuses-with-descriptors-then-ready", "40")
		line, cancel, done := startAndWaitUntilLine(t, cmd)
		r := cancelAndAwait(t, cancel, done)
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
	// linger-then-flood-descriptors connects to the TCP address arg1, whose
	// peer never reads, fills the connection, sets SO_LINGER to an hour, sends
	// the socket to NOTIFY_SOCKET with STATUS= only, closes its own copy, says
	// "closed" on standard output, then sends arg2 datagrams that each carry
	// 253 descriptors (its /dev/null, 253 times), then READY=1, and waits for
	// standard input to close.
	register("linger-then-flood-descriptors", func() int {
		conn, fd, err := dialLingering(os.Args[1], 3600)
		if err != nil {
			return helperExit(3, err)
		}
		if err := sendToNotifySocket("STATUS=lingering", unix.UnixRights(fd)); err != nil {
			return helperExit(3, err)
		}
		conn.Close() // not the last reference: the listener's copy is
		fmt.Println("closed")
		rights, err := devNullRights()
		if err != nil {
			return helperExit(3, err)
		}
		n, _ := strconv.Atoi(os.Args[2])
		for range n {
			if err := sendToNotifySocket("STATUS=flood", rights); err != nil {
				return helperExit(3, err)
			}
		}
		if err := sendToNotifySocket("STATUS=up\nREADY=1", nil); err != nil {
			return helperExit(3, err)
		}
		holdStdin()
		return 0
	})
	// launch-flooder-with-1024-descriptors is a launcher with RLIMIT_NOFILE
	// 1024: it runs StartAndWait on linger-then-flood-descriptors (16 datagrams
	// of 253 descriptors: more than it may hold) against a TCP listener of its
	// own that never reads, then starts its next daemon with StartAndWait. Exit
	// 0: it can; 4: it cannot; 3: the first StartAndWait did not say ready.
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
		next, err := newHelperCommand("report-ready", "plain")
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
	runLauncher(t, "launch-flooder-with-1024-descriptors")
}

// runLauncher runs a helper that runs StartAndWait itself, in a process of
// its own, and fails the test, with the launcher's output, if it fails.
func runLauncher(t *testing.T, helper string) (output string) {
	t.Helper()
	cmd := helperCommand(t, helper)
	cmd.Stderr = nil
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", helper, err, out)
	}
	return string(out)
}

// floodCtx is how long the flood scenario's context lasts.
const floodCtx = 10 * time.Second

func init() {
	// flood-descriptors-until-socket-gone sends, over one connected socket,
	// datagrams that each carry 253 descriptors (its /dev/null, 253 times) and
	// no decision, until the socket is gone. After the first it writes one byte
	// to its standard output and closes it, so that whoever started it knows
	// the flood has begun.
	register("flood-descriptors-until-socket-gone", func() int {
		rights, err := devNullRights()
		if err != nil {
			return helperExit(3, err)
		}
		s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return helperExit(3, err)
		}
		if err := unix.Connect(s, &unix.SockaddrUnix{Name: os.Getenv("NOTIFY_SOCKET")}); err != nil {
			return helperExit(3, err)
		}
		msg := []byte("STATUS=flooding")
		if err := unix.Sendmsg(s, msg, rights, nil, 0); err != nil {
			return helperExit(3, err)
		}
		os.Stdout.Write([]byte{1})
		os.Stdout.Close()
		for {
			// Never asleep in the kernel: retried at once when the queue
			// is full, so a slot the reader frees is filled again.
			err := unix.Sendmsg(s, msg, rights, nil, unix.MSG_DONTWAIT)
			if err != nil && err != unix.EINTR && err != unix.EAGAIN {
				return 0 // the socket is gone
			}
		}
	})
	// leave-flooders-and-exit closes its end at once (as daemons that close
	// every descriptor at start-up do), starts 4 flooders, which do not
	// inherit the end, waits until each has begun, writes their pids to the
	// file os.Args[1], and exits 0 without a report.
	register("leave-flooders-and-exit", func() int {
		childEnd(readyEnv).Close()
		var pids []string
		for range 4 {
			c, err := newHelperCommand("flood-descriptors-until-socket-gone")
			if err != nil {
				return helperExit(3, err)
			}
			out, err := c.StdoutPipe()
			if err != nil {
				return helperExit(3, err)
			}
			if err := c.Start(); err != nil {
				return helperExit(3, err)
			}
			pids = append(pids, strconv.Itoa(c.Process.Pid))
			if _, err := io.ReadFull(out, make([]byte, 1)); err != nil {
				return helperExit(3, fmt.Errorf("flooder %d did not start flooding: %w", c.Process.Pid, err))
			}
		}
		if err := os.WriteFile(os.Args[1], []byte(strings.Join(pids, " ")), 0o600); err != nil {
			return helperExit(3, err)
		}
		return 0
	})
	// launch-child-that-leaves-flooders is the parent of the flood scenario, in
	// a process of its own so that it can be the flooders' subreaper and reap
	// them: StartAndWait on leave-flooders-and-exit with a context that ends
	// after floodCtx (long enough for the child to start its flooders and exit,
	// so that the exit, not ctx, ends the pipe's wait). It prints what
	// StartAndWait returned and exits 0 if it returned within hangGuard after
	// ctx ended; if not, it prints HANG, kills the flooders (after which
	// StartAndWait returns) and exits 1.
	register("launch-child-that-leaves-flooders", func() int {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return helperExit(3, err)
		}
		pidFile, err := os.CreateTemp("", "tokenpipe-test-flooder-pids-")
		if err != nil {
			return helperExit(3, err)
		}
		pidFile.Close()
		defer os.Remove(pidFile.Name())
		killFlooders := func() {
			b, _ := os.ReadFile(pidFile.Name())
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					unix.Kill(pid, unix.SIGKILL)
					var ws unix.WaitStatus
					unix.Wait4(pid, &ws, 0, nil) // ours: we are their subreaper
				}
			}
		}
		defer killFlooders()

		cmd, err := newHelperCommand("leave-flooders-and-exit", pidFile.Name())
		if err != nil {
			return helperExit(3, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), floodCtx)
		defer cancel()
		done := goStartAndWait(ctx, cmd)
		select {
		case r := <-done:
			fmt.Printf("returned (%q, %v)\n", r.msg, r.err)
			return 0
		case <-time.After(floodCtx + hangGuard):
		}
		fmt.Printf("HANG: StartAndWait still running %v after its context ended, while the child's orphaned grandchildren flood the socket\n", hangGuard)
		killFlooders()
		select {
		case r := <-done:
			fmt.Printf("after the flooders were killed it returned (%q, %v)\n", r.msg, r.err)
		case <-time.After(hangGuard):
			fmt.Printf("and still running after the flooders were killed\n")
		}
		return 1
	})
}

// A child closes its end, leaves behind grandchildren that keep sending
// (non-deciding) datagrams, and exits without a report. StartAndWait must
// return: ErrChildExited once the child's exit is seen, or at the latest
// when ctx ends. (It did neither: after the pidfd showed the exit, drain
// read "until the queue is empty", which a queue that others keep full never
// is.)
func TestStartAndWaitDrainEndsUnderFlood(t *testing.T) {
	t.Log(runLauncher(t, "launch-child-that-leaves-flooders"))
}

func init() {
	// launch-with-pidfd-open-denied makes pidfd_open fail with EPERM, as a
	// seccomp profile that denies syscalls it does not know does (Docker before
	// 20.10, systemd's SystemCallFilter= with SystemCallErrorNumber=EPERM, some
	// CI sandboxes), and then runs StartAndWait on a child that calls Ready.
	// Go's own os package treats any pidfd_open error as "no pidfd" and falls
	// back (os/pidfd_linux.go, checkPidfd). It exits 0 if StartAndWait returned
	// ready.
	register("launch-with-pidfd-open-denied", func() int {
		prog := []unix.SockFilter{
			{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
			{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: unix.SYS_PIDFD_OPEN},
			{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
			{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
		}
		fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return helperExit(3, err)
		}
		if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog))); e != 0 {
			return helperExit(3, fmt.Errorf("seccomp: %w", e))
		}
		if fd, err := unix.PidfdOpen(os.Getpid(), 0); err != unix.EPERM {
			unix.Close(fd)
			return helperExit(3, fmt.Errorf("the filter does not work: pidfd_open gave %v", err))
		}
		cmd, err := newHelperCommand("report-ready", "plain")
		if err != nil {
			return helperExit(3, err)
		}
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return helperExit(3, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		msg, err := tokenpipe.StartAndWait(ctx, cmd, readyEnv)
		stdin.Close()
		if cmd.ProcessState == nil && cmd.Process != nil {
			cmd.Wait()
		}
		fmt.Printf("StartAndWait returned (%q, %v)\n", msg, err)
		if err != nil || msg != messages["plain"].want {
			return 1
		}
		return 0
	})
}

// Where pidfd_open is denied with EPERM (seccomp), StartAndWait falls back
// to taking the end of the pipe for the exit, as where there is no pidfd at
// all. (It killed a perfectly good child and failed before reading a single
// report: only ENOSYS meant "cannot watch".)
func TestStartAndWaitPidfdOpenDenied(t *testing.T) {
	runLauncher(t, "launch-with-pidfd-open-denied")
}

func init() {
	// ready-after-deep-read-only-tree makes, in its NOTIFY_SOCKET's
	// directory, a chain of arg1 nested directories a/a/a/..., each one,
	// and the directory itself, made read-only (0500) once its child is in
	// it: litter-socket-dir-then-ready's read-only tree, many levels deep.
	// Then it reports ready and waits for standard input to close.
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
	// launch-deep-read-only-tree runs StartAndWait, with a context of 5
	// seconds, on ready-after-deep-read-only-tree with depth arg1, and says on
	// standard output what it returned; exit 3 if the child was not ready.
	register("launch-deep-read-only-tree", func() int {
		_, msg, err := startAndWaitFiveSeconds("ready-after-deep-read-only-tree", os.Args[1])
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
	cmd := launcherNotRoot(t, "launch-deep-read-only-tree", "6000")
	cmd.SysProcAttr.Setpgid = true
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

// startAndWaitFiveSeconds runs StartAndWait, with a context of five
// seconds, on the helper, whose standard input stays open until it returns.
func startAndWaitFiveSeconds(helper string, args ...string) (*exec.Cmd, string, error) {
	cmd, err := newHelperCommand(helper, args...)
	if err != nil {
		return cmd, "", err
	}
	stdin, _ := cmd.StdinPipe()
	defer stdin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg, err := tokenpipe.StartAndWait(ctx, cmd, readyEnv)
	return cmd, msg, err
}

// launcherNotRoot returns a command that runs the helper in a TMPDIR of its
// own, removed at the end of the test, and, when the test runs as root, as
// uid 65534, from a copy of the test binary that user can run: root passes
// every permission check that a launcher of another user meets.
func launcherNotRoot(t *testing.T, helper string, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "tokenpipe-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("chmod", "-R", "u+rwx", dir).Run() // linear, unlike a walk by path
		os.RemoveAll(dir)
	})
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	cmd := helperCommand(t, helper, args...)
	cmd.Env = append(cmd.Env, "TMPDIR="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if os.Getuid() == 0 {
		bin := filepath.Join(dir, "tokenpipe.test")
		if err := copyExecutable(exe, bin); err != nil {
			t.Fatal(err)
		}
		cmd.Path, cmd.Args[0] = bin, bin
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 65534, Gid: 65534}
	}
	return cmd
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

// s6Env is the variable the s6 run script sets to the notification-fd.
const s6Env = "MYD_READY_FD"

func init() {
	// ready-under-s6 and fail-under-s6 report as a daemon under s6-supervise
	// would, then stay up until s6 stops them with SIGTERM.
	register("ready-under-s6", func() int {
		return serveUnderS6(tokenpipe.Ready(s6Env, "listening on 127.0.0.1:8080"))
	})
	register("fail-under-s6", func() int {
		return serveUnderS6(tokenpipe.Fail(s6Env, errors.New("cannot bind: address in use")))
	})
	// fail-and-exit-under-s6 reports failure and exits 1, as the README's
	// daemon does.
	register("fail-and-exit-under-s6", func() int {
		if err := tokenpipe.Fail(s6Env, errors.New("cannot bind: address in use")); err != nil {
			return helperExit(3, err)
		}
		recordReport()
		return 1
	})
}

// recordReport writes one line to the file "reports" in the service
// directory (s6 runs ./run there) for each report that went out.
func recordReport() {
	f, err := os.OpenFile("reports", os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		os.Exit(helperExit(3, err))
	}
	fmt.Fprintln(f, os.Getpid())
	f.Close()
}

func serveUnderS6(reportErr error) int {
	if reportErr != nil {
		return helperExit(3, reportErr)
	}
	// The test checks that the daemon did report, and once, not that it
	// crashed and was restarted.
	recordReport()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, hangGuard) // if the test dies
	defer cancel()
	<-ctx.Done()
	return 0
}

// A daemon that calls Ready is ready to s6 too; one that calls Fail and stays
// up is up but never ready; one that calls Fail and exits is restarted, as
// any service that dies is, and is never ready either: the README's s6
// promises.
func TestUnderS6(t *testing.T) {
	for _, tool := range []string{"s6-supervise", "s6-svwait", "s6-svc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("s6 is not installed (%v); CI installs it with apt-get install s6", err)
		}
	}
	t.Run("Ready", func(t *testing.T) {
		dir := s6Service(t, "ready-under-s6")
		if code := s6(t, "s6-svwait", "-U", "-t", "5000", dir); code != 0 {
			t.Fatalf("s6-svwait -U exited %d, want 0: s6 did not see the daemon ready", code)
		}
		reportedOnce(t, dir)
	})
	t.Run("Fail", func(t *testing.T) {
		dir := s6Service(t, "fail-under-s6")
		if code := s6(t, "s6-svwait", "-u", "-t", "5000", dir); code != 0 {
			t.Fatalf("s6-svwait -u exited %d, want 0: the daemon is not even up", code)
		}
		if code := s6(t, "s6-svwait", "-U", "-t", "1000", dir); code != 99 {
			t.Fatalf("s6-svwait -U exited %d, want 99 (timed out): s6 took a failure report for readiness", code)
		}
		reportedOnce(t, dir)
	})
	t.Run("Fail, then exit", func(t *testing.T) {
		dir := s6Service(t, "fail-and-exit-under-s6")
		// s6-supervise waits a second before it restarts a service that
		// died within a second of starting.
		if code := s6(t, "s6-svwait", "-U", "-t", "3000", dir); code != 99 {
			t.Fatalf("s6-svwait -U exited %d, want 99 (timed out): s6 took a failure report for readiness", code)
		}
		b, err := os.ReadFile(filepath.Join(dir, "reports"))
		if n := strings.Count(string(b), "\n"); n < 2 {
			t.Fatalf("the daemon reported %d times (%v) in 3 s, want it restarted after each Fail", n, err)
		}
	})
}

// s6Service makes a service directory whose run script execs the helper with
// s6Env=3 and notification-fd 3, supervises it with s6-supervise until the
// test ends, and returns the directory once s6-svwait can watch it.
func s6Service(t *testing.T, helper string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "svc")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run := fmt.Sprintf("#!/bin/sh\n%s=3 %s=%s GORACE=atexit_sleep_ms=0 exec %s\n",
		s6Env, helperEnv, helper, shellQuote(exe))
	if err := os.WriteFile(filepath.Join(dir, "run"), []byte(run), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notification-fd"), []byte("3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sup := exec.Command("s6-supervise", dir)
	sup.Stdout, sup.Stderr = os.Stderr, os.Stderr
	if err := sup.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- sup.Wait() }()
	t.Cleanup(func() {
		s6(t, "s6-svc", "-xd", dir) // down, then s6-supervise exits
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("s6-supervise: %v", err)
			}
		case <-time.After(hangGuard):
			sup.Process.Kill()
			<-exited
			t.Errorf("s6-supervise still running %v after s6-svc -xd", hangGuard)
		}
	})
	// s6-svwait fails (111) until s6-supervise has written its status file,
	// and s6 offers nothing to wait on for that: poll for it.
	status := filepath.Join(dir, "supervise", "status")
	for deadline := time.Now().Add(hangGuard); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(status); err == nil {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("s6-supervise exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("s6-supervise wrote no %s in %v", status, hangGuard)
		}
	}
	return dir
}

// s6 runs an s6 tool and returns its exit code.
func s6(t *testing.T, name string, args ...string) int {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("%s: %v", name, err)
	}
	if len(out) > 0 {
		t.Logf("%s %s: %s", name, strings.Join(args, " "), out)
	}
	return exitCode(err)
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return 0
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// reportedOnce checks that the service's daemon reported, and only once: a
// daemon that crashed and was restarted by s6 would leave no line or several.
func reportedOnce(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile(dir + "/reports")
	if err != nil {
		t.Fatalf("the daemon did not report: %v", err)
	}
	if lines := strings.Count(string(b), "\n"); lines != 1 {
		t.Fatalf("the daemon reported %d times (restarted by s6?), want once", lines)
	}
}

func init() {
	// jam-closers-then-flood connects four times to the TCP address arg1,
	// whose peer never reads, fills each connection and sets SO_LINGER to a
	// minute, sends the four sockets in one datagram to NOTIFY_SOCKET,
	// closes its own copies and says "closed" on standard output; then it
	// sends two datagrams of 253 descriptors each, then READY=1, says "sent"
	// and waits for standard input to close.
	register("jam-closers-then-flood", func() int {
		if err := jamClosers(os.Args[1], 60); err != nil {
			return helperExit(3, err)
		}
		fmt.Println("closed")
		rights, err := devNullRights()
		if err != nil {
			return helperExit(3, err)
		}
		for range 2 {
			if err := sendToNotifySocket("STATUS=flood", rights); err != nil {
				return helperExit(3, err)
			}
		}
		if err := sendToNotifySocket("STATUS=up\nREADY=1", nil); err != nil {
			return helperExit(3, err)
		}
		fmt.Println("sent")
		holdStdin()
		return 0
	})
}

// jamClosers connects four times to addr, whose peer never reads, fills
// each connection and sets SO_LINGER to linger seconds, sends the four
// sockets in one datagram to NOTIFY_SOCKET and closes its own copies: the
// listener's are then the last, and each of their closes holds one of its
// four closing goroutines for the linger.
func jamClosers(addr string, linger int) error {
	var jam []int
	defer func() {
		for _, fd := range jam {
			unix.Close(fd)
		}
	}()
	for range 4 {
		conn, fd, err := dialLingering(addr, linger)
		if err != nil {
			return err
		}
		dup, err := unix.Dup(fd)
		conn.Close() // not the last reference: dup is
		if err != nil {
			return err
		}
		jam = append(jam, dup)
	}
	return sendToNotifySocket("STATUS=jam", unix.UnixRights(jam...))
}

// A child that jams every closing goroutine (four sockets whose last close
// lingers a minute) and then floods the socket cannot hold StartAndWait when
// ctx ends: reading what is queued waits a bounded time for room, then
// stops, and the READY=1 behind the flood, which the listener could not read
// without holding more descriptors, does not count. The linger ends when the
// test reads the four connections, and the closes with it.
func TestStartAndWaitJammedClosersAtContextEnd(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cmd, _ := handshakeCommand(t, "jam-closers-then-flood", ln.Addr().String())
	stdout, stdoutW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdout.Close()
	defer stdoutW.Close()
	cmd.Stdout = stdoutW
	lines := bufio.NewReader(stdout)
	var once sync.Once
	hooked := make(chan struct{})
	restore := tokenpipe.SetReceiveHook(func() {
		once.Do(func() {
			lines.ReadString('\n') // "closed"
			close(hooked)
		})
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := goStartAndWait(ctx, cmd)
	select {
	case <-hooked:
	case r := <-done:
		t.Fatalf("StartAndWait returned before any datagram came: (%q, %v)", r.msg, r.err)
	}
	if line, err := lines.ReadString('\n'); line != "sent\n" {
		t.Fatalf("helper: %q, %v", line, err)
	}
	cancel()
	var r started
	select {
	case r = <-done:
	case <-time.After(hangGuard):
		t.Fatalf("StartAndWait still waiting %v after ctx ended: it waited for the jammed closes", hangGuard)
	}
	restore()
	if !errors.Is(r.err, tokenpipe.ErrChildKilled) {
		t.Errorf("got (%q, %v), want ErrChildKilled: the READY=1 behind the flood could not be read", r.msg, r.err)
	}
	for range 4 { // end the lingers
		conn, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(hangGuard))
		if _, err := io.Copy(io.Discard, conn); err != nil {
			t.Errorf("a jammed socket was not closed: %v", err)
		}
		conn.Close()
	}
}

// A descriptor the listener cannot install (its process is at
// RLIMIT_NOFILE) is closed by the kernel in the thread that called recvmsg
// (scm_detach_fds installs what fits and drops the rest, whose last close
// runs before recvmsg returns). A lingering socket there holds the receive
// goroutine for its linger, but not StartAndWait: drain and close wait for
// the goroutine a bounded time (DESIGN.md), and leave it to finish.

func init() {
	// lingering-socket-past-full-table connects five times to the TCP
	// address arg1, whose peer never reads (dialLingering, an hour). It sends
	// four of those sockets in one datagram (they jam the four closing
	// goroutines), closes its copies and says "closed"; sends STATUS=sync
	// (the parent waits there for the jam to take hold); sends a datagram of
	// 253 descriptors (its /dev/null), which fills the parent's table; sends
	// the fifth socket alone, closes its copy and says "closed5"; then sends
	// READY=1, says "sent" and waits for standard input to close.
	register("lingering-socket-past-full-table", func() int {
		lingering := func() (int, error) {
			conn, fd, err := dialLingering(os.Args[1], 3600)
			if err != nil {
				return -1, err
			}
			dup, err := unix.Dup(fd)
			conn.Close() // not the last reference: dup is
			return dup, err
		}
		var jam []int
		for range 4 {
			fd, err := lingering()
			if err != nil {
				return helperExit(3, err)
			}
			jam = append(jam, fd)
		}
		if err := sendToNotifySocket("STATUS=jam", unix.UnixRights(jam...)); err != nil {
			return helperExit(3, err)
		}
		for _, fd := range jam {
			unix.Close(fd)
		}
		fmt.Println("closed")
		if err := sendToNotifySocket("STATUS=sync", nil); err != nil {
			return helperExit(3, err)
		}
		nulls, err := devNullRights()
		if err != nil {
			return helperExit(3, err)
		}
		if err := sendToNotifySocket("STATUS=fill", nulls); err != nil {
			return helperExit(3, err)
		}
		fifth, err := lingering()
		if err != nil {
			return helperExit(3, err)
		}
		if err := sendToNotifySocket("STATUS=fifth", unix.UnixRights(fifth)); err != nil {
			return helperExit(3, err)
		}
		unix.Close(fifth) // the datagram's reference is the last
		fmt.Println("closed5")
		if err := sendToNotifySocket("STATUS=up\nREADY=1", nil); err != nil {
			return helperExit(3, err)
		}
		fmt.Println("sent")
		holdStdin()
		return 0
	})

	// launch-near-descriptor-limit is a launcher with RLIMIT_NOFILE
	// 1024 that holds all but 48 of them (its other connections, files and
	// so on), and runs StartAndWait on lingering-socket-past-full-table. It
	// cancels ctx once the child has sent READY=1. Exit 0: StartAndWait
	// returned within hangGuard of ctx's end; 1: it did not (it returns
	// once the launcher reads the lingering connections); 3: set-up failed.
	register("launch-near-descriptor-limit", func() int {
		lim := syscall.Rlimit{Cur: 1024, Max: 1024}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return helperExit(3, err)
		}
		ln, err := listenSmallWindow()
		if err != nil {
			return helperExit(3, err)
		}
		defer ln.Close()
		cmd, err := newHelperCommand("lingering-socket-past-full-table", ln.Addr().String())
		if err != nil {
			return helperExit(3, err)
		}
		stdin, _ := cmd.StdinPipe() // held: the child stays up
		defer stdin.Close()
		stdout, _ := cmd.StdoutPipe()
		lines := bufio.NewReader(stdout)
		var n atomic.Int32
		filled := make(chan struct{})
		restore := tokenpipe.SetReceiveHook(func() {
			switch n.Add(1) {
			case 1: // the jam: its sockets are the last references once the child says so
				lines.ReadString('\n') // "closed"
			case 2:
				// Until the closing goroutines have taken the jam's sockets
				// out of the table (close(2) does so at once, and then waits
				// out the linger): only the fill's descriptors hold it then.
				for deadline := time.Now().Add(hangGuard); socketsOpen() > 2; time.Sleep(time.Millisecond) {
					if time.Now().After(deadline) {
						break // no jam: the run shows what it shows
					}
				}
			case 3: // the fill: the table is full; the fifth socket is queued, its only reference in flight
				lines.ReadString('\n') // "closed5"
				close(filled)
			}
		})
		// Not restored: the listener's receive goroutine outlives StartAndWait
		// here, by design, and reads the hook until it returns; the process
		// exits soon after.
		_ = restore

		// The launcher's own descriptors: all but 48.
		var ballast []int
		defer func() {
			for _, fd := range ballast {
				unix.Close(fd)
			}
		}()
		for {
			ents, err := os.ReadDir("/proc/self/fd")
			if err != nil {
				return helperExit(3, err)
			}
			if len(ents) >= int(lim.Cur)-48 {
				break
			}
			fd, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return helperExit(3, err)
			}
			ballast = append(ballast, fd)
		}

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		type result struct {
			msg string
			err error
		}
		done := make(chan result, 1)
		go func() {
			msg, err := tokenpipe.StartAndWait(ctx, cmd, readyEnv)
			done <- result{msg, err}
		}()
		select {
		case <-filled:
		case r := <-done:
			return helperExit(3, fmt.Errorf("StartAndWait returned before the table was full: (%q, %v)", r.msg, r.err))
		case <-time.After(hangGuard):
			return helperExit(3, fmt.Errorf("the child did not get as far as the fifth socket"))
		}
		if line, err := lines.ReadString('\n'); line != "sent\n" {
			return helperExit(3, fmt.Errorf("child: %q, %v", line, err))
		}
		cancel()
		ended := time.Now()

		// endLingers gives the launcher its descriptors back and reads the
		// five connections, which ends the lingers and the closes with them.
		endLingers := func() {
			for _, fd := range ballast {
				unix.Close(fd)
			}
			ballast = nil
			var wg sync.WaitGroup
			for range 5 {
				conn, err := ln.Accept()
				if err != nil {
					fmt.Println("accept:", err)
					break
				}
				wg.Go(func() {
					defer conn.Close()
					conn.SetReadDeadline(time.Now().Add(hangGuard))
					io.Copy(io.Discard, conn)
				})
			}
			wg.Wait()
		}
		select {
		case r := <-done:
			fmt.Printf("returned %v after ctx ended: (%q, %v)\n", time.Since(ended).Round(time.Millisecond), r.msg, r.err)
			endLingers()
			return 0
		case <-time.After(hangGuard):
		}
		fmt.Printf("HANG: StartAndWait still running %v after ctx ended: a lingering socket it could not install is being closed in its receiving thread\n", hangGuard)
		endLingers()
		select {
		case r := <-done:
			fmt.Printf("once the lingers ended it returned, %v after ctx ended: (%q, %v)\n", time.Since(ended).Round(time.Millisecond), r.msg, r.err)
		case <-time.After(hangGuard):
			fmt.Println("and it was still running after the lingers ended")
		}
		return 1
	})
}

// socketsOpen counts the sockets among the process's descriptors.
func socketsOpen() int {
	ents, _ := os.ReadDir("/proc/self/fd")
	n := 0
	for _, e := range ents {
		if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// listenSmallWindow listens on a loopback TCP port whose connections take
// little before their window closes, so that a peer that fills one
// (dialLingering) is left with unsent data however the kernel tunes its
// buffers: its last close then waits out its linger.
func listenSmallWindow() (net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		c.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096) })
		return err
	}}
	return lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
}

// A child can make the kernel close one of its lingering sockets in the
// listener's receiving thread: it fills the launcher's descriptor table
// (here, a launcher that was near its limit already) and then sends the
// socket. StartAndWait must still return within the documented bound after
// ctx ends.
func TestStartAndWaitLingeringSocketPastFullTable(t *testing.T) {
	t.Log(runLauncher(t, "launch-near-descriptor-limit"))
}

func init() {
	// jam-closers-flood-then-ready connects four times to the TCP address
	// arg1, whose peer never reads (dialLingering, an hour), sends the four
	// sockets in one datagram, closes its copies and says "closed"; sends a
	// datagram of 253 descriptors (its /dev/null); then, once a line comes on
	// its standard input, calls Ready and waits for standard input to close.
	register("jam-closers-flood-then-ready", func() int {
		if err := jamClosers(os.Args[1], 3600); err != nil {
			return helperExit(3, err)
		}
		fmt.Println("closed")
		nulls, err := devNullRights()
		if err != nil {
			return helperExit(3, err)
		}
		if err := sendToNotifySocket("STATUS=flood", nulls); err != nil {
			return helperExit(3, err)
		}
		in := bufio.NewReader(os.Stdin)
		in.ReadString('\n')
		if err := tokenpipe.Ready(readyEnv, "up"); err != nil {
			return helperExit(3, err)
		}
		io.Copy(io.Discard, in)
		return 0
	})
}

// unixDatagramSockets counts the process's AF_UNIX datagram sockets: the
// sd_notify listener's kind.
func unixDatagramSockets(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		domain, err1 := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
		typ, err2 := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
		if err1 == nil && err2 == nil && domain == unix.AF_UNIX && typ == unix.SOCK_DGRAM {
			n++
		}
	}
	return n
}

// StartAndWait leaves no descriptor of its own behind, also when the
// closing goroutines are jammed (four lingering sockets) and 256
// descriptors wait behind them: the listener's socket is closed all the
// same, and what is still queued in it goes with it, in a goroutine that
// nothing waits for (godoc: "No descriptor is left behind, but those the
// child sent with a datagram").
func TestStartAndWaitJammedClosersLeaveNoSocket(t *testing.T) {
	ln, err := listenSmallWindow()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cmd, stdin := handshakeCommand(t, "jam-closers-flood-then-ready", ln.Addr().String())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewReader(stdout)
	var n atomic.Int32
	flooded := make(chan struct{})
	restore := tokenpipe.SetReceiveHook(func() {
		switch n.Add(1) {
		case 1: // the jam: its sockets are the last references once the child says so
			lines.ReadString('\n') // "closed"
		case 2: // the flood: once handled, 257 descriptors wait and the listener reads no more
			close(flooded)
		}
	})
	before := unixDatagramSockets(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := goStartAndWait(ctx, cmd)
	select {
	case <-flooded:
	case r := <-done:
		t.Fatalf("StartAndWait returned before the flood came: (%q, %v)", r.msg, r.err)
	}
	stdin.Write([]byte("report\n"))
	var r started
	select {
	case r = <-done:
	case <-time.After(hangGuard):
		t.Fatalf("StartAndWait still waiting after %v", hangGuard)
	}
	restore()
	after := unixDatagramSockets(t)

	for range 4 { // end the lingers, so that the closing goroutines finish
		conn, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(hangGuard))
		io.Copy(io.Discard, conn)
		conn.Close()
	}
	if r.err != nil || r.msg != "up" {
		t.Fatalf("StartAndWait: (%q, %v), want (\"up\", nil)", r.msg, r.err)
	}
	if after != before {
		t.Fatalf("%d AF_UNIX datagram sockets open before StartAndWait, %d after it returned ready: it left its own socket behind", before, after)
	}
}

func init() {
	// chmod-socket-dir-then-ready leaves a file in its NOTIFY_SOCKET's
	// directory, sets the directory's mode to arg1 (octal), reports with Ready
	// and waits for standard input to close.
	register("chmod-socket-dir-then-ready", func() int {
		dir := filepath.Dir(os.Getenv("NOTIFY_SOCKET"))
		mode, _ := strconv.ParseUint(os.Args[1], 8, 32)
		if err := errors.Join(os.WriteFile(filepath.Join(dir, "left"), nil, 0o600), os.Chmod(dir, os.FileMode(mode))); err != nil {
			return helperExit(3, err)
		}
		if err := tokenpipe.Ready(readyEnv, "chmodded"); err != nil {
			return helperExit(3, err)
		}
		holdStdin()
		return 0
	})
	// launch-chmod-socket-dir runs StartAndWait (5 s) on
	// chmod-socket-dir-then-ready with mode arg1 and says what it
	// returned. Exit 0: ready, no error, directory gone; 1: not so (it then
	// removes the directory itself).
	register("launch-chmod-socket-dir", func() int {
		cmd, msg, err := startAndWaitFiveSeconds("chmod-socket-dir-then-ready", os.Args[1])
		var dir string
		for _, kv := range cmd.Env {
			if v, ok := strings.CutPrefix(kv, "NOTIFY_SOCKET="); ok {
				dir = filepath.Dir(v)
			}
		}
		_, lerr := os.Lstat(dir)
		fmt.Printf("uid %d: (%q, %v); %s: %v\n", os.Getuid(), msg, err, dir, lerr)
		if msg == "chmodded" && err == nil && errors.Is(lerr, os.ErrNotExist) {
			return 0
		}
		os.Chmod(dir, 0o700)
		os.RemoveAll(dir)
		return 1
	})
}

// The socket directory is removed whatever mode a child of the same user
// leaves it in, 0400 and 0000 too (DESIGN.md: removal "makes directories
// the child left read-only writable"): the directory itself is made
// writable through a descriptor, as resolving "." through the os.Root would
// need search permission on it. Root passes every permission check, so the
// launcher runs as uid 65534 when the test runs as root.
func TestStartAndWaitSocketDirRemovedWhateverItsMode(t *testing.T) {
	for _, mode := range []string{"500", "400", "000"} {
		t.Run(mode, func(t *testing.T) {
			cmd := launcherNotRoot(t, "launch-chmod-socket-dir", mode)
			cmd.Stderr = nil
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("the child left its socket directory mode %s: %v\n%s", mode, err, out)
			}
		})
	}
}

// A child run as another user through a user namespace's mappings is
// handed the socket and its directory as DESIGN.md says (childIDs maps the
// credential): root starts systemd-notify as root of a user namespace of
// its own, which is nobody (65534) outside it.
func TestStartAndWaitChildInUserNamespace(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("not root: cannot map a user namespace's root to another user")
	}
	cmd := exec.Command(needProgram(t, "systemd-notify"), "--ready", "--status=up in a user namespace")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 65534, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 65534, Size: 1}},
		Credential:  &syscall.Credential{Uid: 0, Gid: 0},
	}
	msg, err := checkedStartAndWait(t, cmd)
	if err != nil || msg != "up in a user namespace" {
		t.Fatalf("got (%q, %v), want (\"up in a user namespace\", nil)", msg, err)
	}
}
