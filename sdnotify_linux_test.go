package tokenpipe_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokenpipe/tokenpipe"
	"golang.org/x/sys/unix"
)

// needProgram returns the path of a program the test runs. CI installs them
// all (.ci/run), so there a missing one fails the test; elsewhere it skips.
func needProgram(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} { // not in every user's PATH
		if path, err := exec.LookPath(filepath.Join(dir, name)); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed, and CI must run this test: %v", name, err)
	}
	t.Skipf("%s is not installed (apt-get install it, or run bash .ci/run): %v", name, err)
	return ""
}

// listen makes a listener that is closed at the end of the test, and checks
// then that its directory is gone.
func listen(t *testing.T) *tokenpipe.NotifyListener { return listenFor(t, nil) }

// listenFor listens as StartAndWait does for a child started with attr.
func listenFor(t *testing.T, attr *syscall.SysProcAttr) *tokenpipe.NotifyListener {
	t.Helper()
	l, err := tokenpipe.ListenNotify(attr)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(l.Addr())
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
		if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the socket's directory %s is still there after close (%v)", dir, err)
		}
	})
	return l
}

// await waits for the listener's decision, which must come.
func awaitDecision(t *testing.T, l *tokenpipe.NotifyListener) tokenpipe.NotifyResult {
	t.Helper()
	r, ok := l.Await(hangGuard)
	if !ok {
		t.Fatalf("no decision after %v", hangGuard)
	}
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	return r
}

func TestNotifyListenerDirectory(t *testing.T) {
	l := listen(t)
	dir := filepath.Dir(l.Addr())
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700", st.Mode().Perm())
	}
	if len(l.Addr()) >= 108 {
		t.Errorf("socket path %q does not fit sun_path", l.Addr())
	}
}

// A TMPDIR too long for a socket path makes the listener use /tmp.
func TestNotifyListenerLongTMPDIR(t *testing.T) {
	long := filepath.Join(t.TempDir(), strings.Repeat("d", 100))
	if err := os.Mkdir(long, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", long)
	l := listen(t)
	if !strings.HasPrefix(l.Addr(), "/tmp/tokenpipe-") {
		t.Fatalf("socket at %q, want it in /tmp", l.Addr())
	}
	l.Close()
}

// systemd-notify sends each message and then BARRIER=1 with a descriptor,
// and fails unless the receiver closes it; the first call exiting 7 would
// show the barrier was not answered.
func TestNotifyListenerSystemdNotify(t *testing.T) {
	needProgram(t, "systemd-notify")
	l := listen(t)
	cmd := exec.Command("sh", "-c", "systemd-notify --status=starting || exit 7; systemd-notify --ready")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+l.Addr())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if r := awaitDecision(t, l); !r.Ready || r.Status != "starting" || r.Errno != 0 {
		t.Fatalf("got %+v, want ready with status \"starting\"", r)
	}
}

// Redis with --supervised systemd reports through libsystemd's sd_notify.
func TestNotifyListenerRedis(t *testing.T) {
	redis := needProgram(t, "redis-server")
	l := listen(t)
	cmd := exec.Command(redis, "--port", "0", "--unixsocket", filepath.Join(t.TempDir(), "redis.sock"),
		"--save", "", "--supervised", "systemd")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+l.Addr())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	if r := awaitDecision(t, l); !r.Ready || r.Status != "Ready to accept connections" {
		t.Fatalf("got %+v, want ready with Redis's last status", r)
	}
}

// send sends one datagram to addr, with the given control message.
func send(t *testing.T, addr string, msg, oob []byte) {
	t.Helper()
	if err := sendDatagram(addr, msg, oob); err != nil {
		t.Fatalf("sendmsg (%d bytes, %d bytes of control): %v", len(msg), len(oob), err)
	}
}

// sendDatagram sends msg to the datagram socket at addr, a path or an
// @abstract name, from a socket of its own, with oob as its control message.
func sendDatagram(addr string, msg, oob []byte) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Sendmsg(fd, msg, oob, &unix.SockaddrUnix{Name: addr}, 0)
}

// scmMaxFD is the most descriptors Linux lets one datagram carry
// (SCM_MAX_FD).
const scmMaxFD = 253

// devNullRights opens the null device, for as long as the process lives, and
// returns a control message that passes it scmMaxFD times: as many
// descriptors as one datagram can carry.
func devNullRights() ([]byte, error) {
	null, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	fds := make([]int, scmMaxFD)
	for i := range fds {
		fds[i] = null
	}
	return unix.UnixRights(fds...), nil
}

// dialLingering connects to addr, whose peer never reads, fills the
// connection until it takes no more, and sets SO_LINGER to linger seconds,
// so that the socket's last close blocks that long, or until the peer
// reads; fd is the connection's descriptor, conn's until conn closes.
func dialLingering(addr string, linger int) (conn *net.TCPConn, fd int, err error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, -1, err
	}
	conn = c.(*net.TCPConn)
	rc, err := conn.SyscallConn()
	if err == nil {
		err = conn.SetLinger(linger)
	}
	if err != nil {
		conn.Close()
		return nil, -1, err
	}
	rc.Control(func(s uintptr) {
		fd = int(s)
		for buf := make([]byte, 64<<10); ; {
			if _, err := unix.Write(fd, buf); err != nil {
				break // EAGAIN: full
			}
		}
	})
	return conn, fd, nil
}

// Datagrams that are too long, hold a NUL byte or carry another user's
// credentials are ignored whole; the first good report decides, and its
// status shows that nothing before it counted.
func TestNotifyListenerIgnoresBadDatagrams(t *testing.T) {
	l := listen(t)
	send(t, l.Addr(), []byte("READY=1\nSTATUS=too long\n"+strings.Repeat("x", 5000)), nil)
	send(t, l.Addr(), []byte("READY=1\nSTATUS=nul\x00x"), nil)
	send(t, l.Addr(), []byte("garbage\n=\n\xff\xfe"), nil)
	if os.Getuid() == 0 {
		// Root may claim another user's credentials (CAP_SETUID): the
		// kernel passes them on as the sender's.
		cred := unix.UnixCredentials(&unix.Ucred{Pid: int32(os.Getpid()), Uid: 65534, Gid: 65534})
		send(t, l.Addr(), []byte("STATUS=other user\nREADY=1"), cred)
	} else {
		t.Log("not root: cannot send with another user's credentials; that case is not tested")
	}
	send(t, l.Addr(), []byte("STATUS=good\nREADY=1"), nil)
	if r := awaitDecision(t, l); !r.Ready || r.Status != "good" {
		t.Fatalf("got %+v, want ready with status \"good\"", r)
	}
}

// ERRNO= decides as a failure, with the status sent before it.
func TestNotifyListenerErrno(t *testing.T) {
	l := listen(t)
	send(t, l.Addr(), []byte("STATUS=loading"), nil)
	send(t, l.Addr(), []byte("ERRNO=5"), nil)
	send(t, l.Addr(), []byte("READY=1"), nil)
	if r := awaitDecision(t, l); r.Ready || r.Errno != 5 || r.Status != "loading" {
		t.Fatalf("got %+v, want errno 5 with status \"loading\"", r)
	}
}

// Every descriptor received is closed at once: senders holding the other end
// of a pipe they sent see end of stream, also when the datagram was dropped,
// and when it carried the most descriptors Linux allows (253).
func TestNotifyListenerClosesReceivedDescriptors(t *testing.T) {
	l := listen(t)
	leaks := watchEveryDescriptor(t)
	for _, tc := range []struct {
		msg string
		n   int
	}{{"BARRIER=1", 1}, {strings.Repeat("x", 5000), 1}, {"STATUS=many", scmMaxFD}} {
		readEnds, writeEnds := make([]*os.File, tc.n), make([]*os.File, tc.n)
		writeFds := make([]int, tc.n)
		for i := range tc.n {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			readEnds[i], writeEnds[i], writeFds[i] = r, w, int(w.Fd())
		}
		send(t, l.Addr(), []byte(tc.msg), unix.UnixRights(writeFds...))
		for i, r := range readEnds {
			writeEnds[i].Close()
			// Blocks until the listener closes its copy.
			r.SetReadDeadline(time.Now().Add(hangGuard))
			if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Fatalf("%q: read (%d, %v), want end of stream", tc.msg, n, err)
			}
			r.Close()
		}
	}
	send(t, l.Addr(), []byte("READY=1"), nil)
	awaitDecision(t, l)
	leaks.check(t)
}

// A flood of datagrams neither stops the listener nor grows it; the report
// after the flood is still read.
func TestNotifyListenerFlood(t *testing.T) {
	l := listen(t)
	big := bytes.Repeat([]byte("STATUS=x\n"), 3000)
	for i := range 2000 {
		if i%2 == 0 {
			send(t, l.Addr(), []byte(fmt.Sprintf("STATUS=%d", i)), nil)
		} else {
			send(t, l.Addr(), big, nil)
		}
	}
	send(t, l.Addr(), []byte("READY=1"), nil)
	if r := awaitDecision(t, l); !r.Ready || r.Status != "1998" {
		t.Fatalf("got %+v, want ready with status 1998", r)
	}
}

// Close leaves no goroutine, descriptor, socket or directory behind.
func TestNotifyListenerCloseLeavesNothing(t *testing.T) {
	cycle := func() {
		l, err := tokenpipe.ListenNotify(nil)
		if err != nil {
			t.Fatal(err)
		}
		send(t, l.Addr(), []byte("STATUS=x"), nil)
		dir := filepath.Dir(l.Addr())
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s is still there (%v)", dir, err)
		}
	}
	cycle()
	leaks := watchEveryDescriptor(t)
	for range 200 {
		cycle()
	}
	leaks.check(t)
}

// After drain, whatever was sent before it has been read: a decision sent
// before is there at once, and without one there is none.
func TestNotifyListenerDrain(t *testing.T) {
	for _, decisive := range []bool{false, true} {
		l := listen(t)
		for i := range 50 {
			send(t, l.Addr(), []byte(fmt.Sprintf("STATUS=%d", i)), nil)
		}
		if decisive {
			send(t, l.Addr(), []byte("READY=1"), nil)
		}
		l.Drain()
		r, ok := l.Decided()
		if ok != decisive || (ok && (!r.Ready || r.Status != "49")) {
			t.Fatalf("sent READY=1: %v; after drain got (%+v, %v)", decisive, r, ok)
		}
	}
}

// A child run as another user (a root launcher starting a daemon as an
// unprivileged user) can reach the socket, as under start-stop-daemon
// --chuid, and its datagrams count; a third user's do not.
func TestNotifyListenerChildUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("not root: cannot start a child as another user, nor send with another user's credentials")
	}
	const child, other = 65534, 65533
	l := listenFor(t, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: child, Gid: child}})
	for _, path := range []string{filepath.Dir(l.Addr()), l.Addr()} {
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil || st.Uid != child || st.Gid != child {
			t.Fatalf("%s: owner %d:%d (%v), want the child's %d:%d", path, st.Uid, st.Gid, err, child, child)
		}
	}
	claim := func(uid uint32) []byte {
		return unix.UnixCredentials(&unix.Ucred{Pid: int32(os.Getpid()), Uid: uid, Gid: uid})
	}
	send(t, l.Addr(), []byte("STATUS=other user\nREADY=1"), claim(other))
	send(t, l.Addr(), []byte("STATUS=child\nERRNO=5"), claim(child))
	if r := awaitDecision(t, l); r.Ready || r.Errno != 5 || r.Status != "child" {
		t.Fatalf("got %+v, want the child user's ERRNO=5", r)
	}
}

// lingeringSocket returns a TCP socket whose last close blocks for a
// minute (dialLingering), connected to a listener of the test's; the test
// must close it, or read from the listener's side, to end the linger. The
// returned conn is that side, accepted.
func lingeringSocket(t *testing.T) (fd int, peer net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conn, connFd, err := dialLingering(ln.Addr().String(), 60)
	if err != nil {
		t.Fatal(err)
	}
	peer, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	fd, err = unix.Dup(connFd)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close() // fd is the socket's last descriptor now
	return fd, peer
}

// Datagrams still queued when the listener closes hold the descriptors they
// carry, and the socket's last close drops them: where one of those blocks
// in its close, the listener's close still returns at once, as that last
// close is left to the goroutines that nothing waits for; and the
// descriptor is closed, later, all the same. (The hook holds the listener
// on the first datagram until close has begun, so that the second, which
// carries the only reference to a lingering socket, is still queued.)
func TestNotifyListenerDescriptorQueuedAtClose(t *testing.T) {
	var stopping <-chan struct{}
	listening := make(chan struct{})
	restore := tokenpipe.SetReceiveHook(func() { <-listening; <-stopping })
	l := listen(t)
	stopping = l.Stopping()
	close(listening)
	send(t, l.Addr(), []byte("STATUS=first"), nil)
	fd, peer := lingeringSocket(t)
	send(t, l.Addr(), []byte("STATUS=second"), unix.UnixRights(fd))
	unix.Close(fd) // the queued datagram's reference is the last
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	select {
	case err := <-closed:
		restore()
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(hangGuard):
		peer.Close() // ends the linger, and the close with it
		t.Fatalf("Close still blocked after %v: it dropped a lingering socket itself", hangGuard)
	}
	peer.SetReadDeadline(time.Now().Add(hangGuard))
	if _, err := io.Copy(io.Discard, peer); err != nil {
		t.Fatalf("the connection did not end: the queued socket was not closed: %v", err)
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
		w, r := tokenpipe.RawPipe(t, tokenpipe.WriteEnd)
		t.Setenv(readyEnv, strconv.Itoa(int(w)))
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
		w, r := tokenpipe.RawPipe(t, tokenpipe.WriteEnd)
		r.Close() // the parent has gone away
		t.Setenv(readyEnv, strconv.Itoa(int(w)))
		t.Setenv("NOTIFY_SOCKET", "relative/path")
		err := tokenpipe.Fail(readyEnv, errors.New("x"))
		if !errors.Is(err, io.ErrClosedPipe) || !errors.Is(err, os.ErrInvalid) || !strings.Contains(err.Error(), "NOTIFY_SOCKET=") {
			t.Fatalf("got %v, want both channels' errors", err)
		}
	})
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
	// ready-and-exit and fail-and-exit report with Ready and Fail, as a daemon
	// does under start-stop-daemon or systemd, where no end is exported to
	// them, and exit.
	register("ready-and-exit", func() int {
		if err := tokenpipe.Ready(readyEnv, "up"); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 1
		}
		return 0
	})
	register("fail-and-exit", func() int {
		err := fmt.Errorf("cannot bind: %w", syscall.EADDRINUSE)
		if err := tokenpipe.Fail(readyEnv, err); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 1
		}
		return 0
	})
}

// startStopDaemon runs the helper, with args, under the real
// start-stop-daemon --start --background --notify-await, with the given
// --notify-timeout in seconds, and returns its exit code and output. The
// daemon is known by a pid file of its own: by the executable,
// start-stop-daemon would take any process running the test binary for the
// daemon, already running.
func startStopDaemon(t *testing.T, timeout int, helper string, args ...string) (int, string) {
	t.Helper()
	ssd := needProgram(t, "start-stop-daemon")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	cmd := exec.CommandContext(ctx, ssd, append([]string{"--start", "--background", "--notify-await",
		"--notify-timeout", strconv.Itoa(timeout), "--pidfile", filepath.Join(t.TempDir(), "pid"), "--make-pidfile",
		"--startas", exe, "--"}, args...)...)
	cmd.Env = helperCommand(t, helper).Env
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("start-stop-daemon still running after %v (its timeout: %ds): %s", hangGuard, timeout, out)
	}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// Ready and Fail speak sd_notify as start-stop-daemon understands it, and
// never wait for a barrier, which start-stop-daemon does not answer: Ready
// makes it exit 0, Fail makes it fail at once, with the reason's errno.
func TestReadyFailStartStopDaemon(t *testing.T) {
	if code, out := startStopDaemon(t, 10, "ready-and-exit"); code != 0 {
		t.Fatalf("start-stop-daemon exited %d after READY=1: %s", code, out)
	}
	// With a timeout longer than hangGuard, returning at all shows that
	// start-stop-daemon failed at once.
	code, out := startStopDaemon(t, 60, "fail-and-exit")
	if code == 0 || !strings.Contains(out, "Address already in use") {
		t.Fatalf("start-stop-daemon exited %d after ERRNO=%d, want a failure naming the errno: %s", code, syscall.EADDRINUSE, out)
	}
}

// sendNotify names NOTIFY_SOCKET and what is wrong with it.
func TestSendNotifyBadSockets(t *testing.T) {
	dir := t.TempDir()
	stream, err := net.Listen("unix", filepath.Join(dir, "stream"))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	msg := []byte("READY=1")
	for _, tc := range []struct {
		addr string
		want error
	}{
		{"", os.ErrInvalid},
		{"relative/path", os.ErrInvalid},
		{"vsock:2:1234", os.ErrInvalid},
		{"/" + strings.Repeat("x", 200), os.ErrInvalid},
		{filepath.Join(dir, "missing"), syscall.ENOENT},
		{filepath.Join(dir, "stream"), syscall.EPROTOTYPE},
		{"@tokenpipe-test-nobody-listens", syscall.ECONNREFUSED},
	} {
		err := tokenpipe.SendNotify(tc.addr, msg)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), fmt.Sprintf("NOTIFY_SOCKET=%q", tc.addr)) {
			t.Errorf("SendNotify(%q): got %v, want an error naming it and matching %v", tc.addr, err, tc.want)
		}
	}
}

// An abstract socket name (Linux) works as well as a path, up to the full
// 108 bytes of sun_path ('@' and 107 more: an abstract name needs no NUL),
// and one byte more is refused.
func TestSendNotifyAbstract(t *testing.T) {
	short := fmt.Sprintf("@tokenpipe-test-%d-", os.Getpid())
	full := short + strings.Repeat("x", 108-len(short))
	for _, name := range []string{short, full} {
		conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := tokenpipe.SendNotify(name, []byte("READY=1\n")); err != nil {
			t.Fatalf("%d-byte name: %v", len(name), err)
		}
		buf := make([]byte, 100)
		conn.SetReadDeadline(time.Now().Add(hangGuard))
		n, err := conn.Read(buf)
		if err != nil || string(buf[:n]) != "READY=1\n" {
			t.Fatalf("%d-byte name: received (%q, %v)", len(name), buf[:n], err)
		}
	}
	if err := tokenpipe.SendNotify(full+"x", []byte("READY=1\n")); !errors.Is(err, os.ErrInvalid) {
		t.Fatalf("109-byte name: got %v, want os.ErrInvalid", err)
	}
}

// manager is a datagram socket standing in for the service manager.
type manager struct {
	conn *net.UnixConn
	addr string
}

// listenManager listens at addr, a path or an @abstract name.
func listenManager(t *testing.T, addr string) *manager {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &manager{conn, addr}
}

// next returns the next datagram.
func (r *manager) next(t *testing.T) string {
	t.Helper()
	buf := make([]byte, 8192)
	r.conn.SetReadDeadline(time.Now().Add(hangGuard))
	n, err := r.conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

// Notify sends what it is given to NOTIFY_SOCKET, a path or an @abstract
// name, without unsetting it; after Ready has taken the variable out of the
// environment, to the socket Ready took, while children started after Ready
// see no NOTIFY_SOCKET.
func TestNotify(t *testing.T) {
	for _, addr := range []string{
		filepath.Join(t.TempDir(), "manager"),
		fmt.Sprintf("@tokenpipe-test-manager-%d", os.Getpid()),
	} {
		t.Run(addr, func(t *testing.T) {
			freshReports(t)
			t.Setenv(readyEnv, "")
			os.Unsetenv(readyEnv)
			m := listenManager(t, addr)
			t.Setenv("NOTIFY_SOCKET", addr)
			if err := tokenpipe.Notify("STATUS=loading"); err != nil {
				t.Fatal(err)
			}
			if got := m.next(t); got != "STATUS=loading" {
				t.Fatalf("the manager got %q", got)
			}
			if os.Getenv("NOTIFY_SOCKET") != addr {
				t.Fatal("Notify changed NOTIFY_SOCKET")
			}
			if err := tokenpipe.Ready(readyEnv, "up"); err != nil {
				t.Fatal(err)
			}
			if got := m.next(t); got != "STATUS=up\nREADY=1\n" {
				t.Fatalf("the manager got %q from Ready", got)
			}
			out, err := exec.Command("sh", "-c", `echo "${NOTIFY_SOCKET-unset}"`).Output()
			if err != nil || string(out) != "unset\n" {
				t.Fatalf("a child started after Ready saw NOTIFY_SOCKET=%q (%v)", out, err)
			}
			for _, state := range []string{"WATCHDOG=1", "STATUS=reloading\nRELOADING=1", "STOPPING=1"} {
				if err := tokenpipe.Notify(state); err != nil {
					t.Fatal(err)
				}
				if got := m.next(t); got != state {
					t.Fatalf("the manager got %q, want %q", got, state)
				}
			}
		})
	}
}

// Notify races with Ready and with itself and loses nothing.
func TestNotifyConcurrent(t *testing.T) {
	freshReports(t)
	t.Setenv(readyEnv, "")
	os.Unsetenv(readyEnv)
	m := listenManager(t, filepath.Join(t.TempDir(), "manager"))
	t.Setenv("NOTIFY_SOCKET", m.addr)
	var wg sync.WaitGroup
	errs := make(chan error, 11)
	wg.Go(func() { errs <- tokenpipe.Ready(readyEnv, "up") })
	for range 10 {
		wg.Go(func() { errs <- tokenpipe.Notify("WATCHDOG=1") })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]int{}
	for range 11 {
		got[m.next(t)]++
	}
	if got["WATCHDOG=1"] != 10 || got["STATUS=up\nREADY=1\n"] != 1 {
		t.Fatalf("the manager got %v", got)
	}
}

// Notify never waits for a Ready that waits for its parent to read: a ping
// goes out while Ready's 4098-byte report waits for room in a 4096-byte
// pipe.
func TestNotifyBesideABlockedReady(t *testing.T) {
	freshReports(t)
	l := listen(t)
	w, r := tokenpipe.RawPipe(t, tokenpipe.WriteEnd)
	if _, err := unix.FcntlInt(w, unix.F_SETPIPE_SZ, 4096); err != nil {
		t.Fatal(err)
	}
	t.Setenv(readyEnv, strconv.Itoa(int(w)))
	t.Setenv("NOTIFY_SOCKET", l.Addr())
	readyDone := make(chan error, 1)
	go func() { readyDone <- tokenpipe.Ready(readyEnv, strings.Repeat("x", 4096)) }()
	// Ready is in its write once the pipe is full (a state, polled: Ready
	// offers no signal of its own).
	deadline := time.Now().Add(hangGuard)
	for {
		n, err := unix.IoctlGetInt(int(r.Fd()), unix.TIOCINQ)
		if err != nil {
			t.Fatal(err)
		}
		if n == 4096 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Ready wrote %d bytes, want 4096", n)
		}
		time.Sleep(time.Millisecond)
	}
	notifyDone := make(chan error, 1)
	go func() { notifyDone <- tokenpipe.Notify("WATCHDOG=1") }()
	var notified bool
	select {
	case err := <-notifyDone:
		notified = true
		if err != nil {
			t.Errorf("Notify: %v", err)
		}
	case <-time.After(2 * 5 * time.Second): // twice the documented bound
	}
	io.Copy(io.Discard, io.LimitReader(r, 4098)) // the parent reads at last
	if err := <-readyDone; err != nil {
		t.Errorf("Ready: %v", err)
	}
	if !notified {
		<-notifyDone
		t.Fatal("Notify, to a listening socket with an empty queue, blocked for more than 10 s: until Ready's pipe write ended")
	}
}
