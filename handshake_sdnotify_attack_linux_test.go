package tokenpipe_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/tokenpipe/tokenpipe"
	"golang.org/x/sys/unix"
)

// What a hostile review of the sd_notify layer broke, each tried the way it
// was broken. None relies on timing for its verdict (hangGuard only detects
// a hang).

// floodCtx is how long the flood scenario's context lasts.
const floodCtx = 10 * time.Second

func init() {
	// atk10-flooder sends, over one connected socket, datagrams that each
	// carry 253 descriptors (its /dev/null, 253 times) and no decision,
	// until the socket is gone. After the first it writes one byte to its
	// standard output and closes it, so that whoever started it knows the
	// flood has begun.
	register("atk10-flooder", func() int {
		null, err := os.Open(os.DevNull)
		if err != nil {
			return helperExit(3, err)
		}
		fds := make([]int, 253) // SCM_MAX_FD
		for i := range fds {
			fds[i] = int(null.Fd())
		}
		rights := unix.UnixRights(fds...)
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
	// atk10-spawn-flooders closes its end at once (as daemons that close
	// every descriptor at start-up do), starts 4 flooders, which do not
	// inherit the end, waits until each has begun, writes their pids to the
	// file os.Args[1], and exits 0 without a report.
	register("atk10-spawn-flooders", func() int {
		childEndNamed(readyEnv).Close()
		var pids []string
		for range 4 {
			c, err := newHelperCommand("atk10-flooder")
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
	// atk10-flood-parent is the parent of the flood scenario, in a process
	// of its own so that it can be the flooders' subreaper and reap them:
	// StartAndWait on atk10-spawn-flooders with a context that ends after
	// floodCtx (long enough for the child to start its flooders and exit,
	// so that the exit, not ctx, ends the pipe's wait). It prints what
	// StartAndWait returned and exits 0 if it returned within hangGuard
	// after ctx ended; if not, it prints HANG, kills the flooders (after
	// which StartAndWait returns) and exits 1.
	register("atk10-flood-parent", func() int {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return helperExit(3, err)
		}
		pidFile, err := os.CreateTemp("", "atk10-pids-")
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

		cmd, err := newHelperCommand("atk10-spawn-flooders", pidFile.Name())
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
	cmd := helperCommand(t, "atk10-flood-parent")
	cmd.Stderr = nil
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	t.Logf("%s", out)
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
	msg, err := sdStartAndWait(t, cmd)
	if err != nil || msg != "up" {
		t.Fatalf("TMPDIR=tmp: got (%q, %v), want (\"up\", nil); the child's NOTIFY_SOCKET was %q", msg, err, notifySocket(t, cmd))
	}
}

func init() {
	// atk10-seccomp-parent makes pidfd_open fail with EPERM, as a seccomp
	// profile that denies syscalls it does not know does (Docker before
	// 20.10, systemd's SystemCallFilter= with SystemCallErrorNumber=EPERM,
	// some CI sandboxes), and then runs StartAndWait on a child that calls
	// Ready. Go's own os package treats any pidfd_open error as "no pidfd"
	// and falls back (os/pidfd_linux.go, checkPidfd). It exits 0 if
	// StartAndWait returned ready.
	register("atk10-seccomp-parent", func() int {
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
		cmd, err := newHelperCommand("hs-ready", "plain")
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
	cmd := helperCommand(t, "atk10-seccomp-parent")
	cmd.Stderr = nil
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v:\n%s", err, out)
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
			msg, err := sdStartAndWait(t, cmd)
			if !errors.Is(err, tokenpipe.ErrChildFailed) || !errors.Is(err, syscall.Errno(5)) {
				t.Fatalf("ERRNO=%s, then READY=1: got (%q, %v), want ErrChildFailed with errno 5, as start-stop-daemon sees it", errno, msg, err)
			}
		})
	}
}
