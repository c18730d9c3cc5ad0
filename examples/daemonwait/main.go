// Command daemonwait does what bitcoind -daemonwait does, in Go and
// correctly: it starts itself again as a detached daemon and waits, at most
// -timeout, for the daemon to say whether it came up.
//
//	go run ./examples/daemonwait            # daemon <pid> ready on 127.0.0.1:PORT
//	go run ./examples/daemonwait -fail      # the daemon reports failure: exit 1
//	go run ./examples/daemonwait -crash     # the daemon dies without a word: exit 1
//	go run ./examples/daemonwait -hang -timeout 1s  # killed after the timeout: exit 1
//
// Run by systemd (Type=notify) or start-stop-daemon --notify-await, which set
// NOTIFY_SOCKET, it is the daemon itself, and reports to them:
//
//	start-stop-daemon --start --background --notify-await --exec $(which daemonwait)
//
// The parent is one call, tokenpipe.StartAndWait. The daemon binds -addr,
// serves a one-line health response over HTTP, then reports its address with
// tokenpipe.Ready, or what went wrong with tokenpipe.Fail. It serves until
// -lifetime passes or it is sent SIGTERM or interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/tokenpipe/tokenpipe"
)

// readyEnv carries the daemon's end of the token pipe.
const readyEnv = "DAEMONWAIT_READY_FD"

var (
	addr     = flag.String("addr", "127.0.0.1:0", "`address` the daemon listens on")
	timeout  = flag.Duration("timeout", 10*time.Second, "how long to wait for the daemon to report")
	lifetime = flag.Duration("lifetime", time.Minute, "how long the daemon serves before it exits")
	fail     = flag.Bool("fail", false, "make the daemon report failure")
	crash    = flag.Bool("crash", false, "make the daemon exit without reporting")
	hang     = flag.Bool("hang", false, "make the daemon never report")
)

func main() {
	flag.Parse()
	_, exported := os.LookupEnv(readyEnv)
	// Under systemd (Type=notify) or start-stop-daemon --notify-await the
	// supervisor is the parent: serve in the foreground and report to it,
	// with the same Ready and Fail. An empty NOTIFY_SOCKET counts as unset,
	// as it does for Ready. (Windows has no NOTIFY_SOCKET.)
	supervised := os.Getenv("NOTIFY_SOCKET") != "" && runtime.GOOS != "windows"
	if exported || supervised {
		os.Exit(daemon())
	}
	os.Exit(parent())
}

// parent starts the daemon and reports what became of it.
func parent() int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "daemonwait:", err)
		return 1
	}
	cmd := exec.Command(exe, os.Args[1:]...) // standard streams: the null device
	detach(cmd)
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	msg, err := tokenpipe.StartAndWait(ctx, cmd, readyEnv)
	if cmd.Process == nil {
		fmt.Fprintln(os.Stderr, "daemonwait: starting the daemon:", err)
		return 1
	}
	pid := cmd.Process.Pid
	switch {
	case err == nil:
		fmt.Printf("daemon %d ready on %s\n", pid, msg)
		cmd.Process.Release() // it runs on without us
		return 0
	case errors.Is(err, tokenpipe.ErrChildFailed):
		fmt.Printf("daemon %d failed: %s\n", pid, msg)
	case errors.Is(err, tokenpipe.ErrChildExited):
		fmt.Printf("daemon %d exited before it was ready\n", pid)
	case errors.Is(err, tokenpipe.ErrChildKilled):
		fmt.Printf("daemon %d not ready after %v: killed it\n", pid, *timeout)
	default:
		fmt.Printf("daemon %d: %v\n", pid, err)
	}
	return 1 // StartAndWait has killed (if need be) and reaped the daemon
}

// daemon initialises, reports to the parent, and serves.
func daemon() int {
	switch {
	case *crash:
		return 3
	case *hang:
		time.Sleep(*lifetime) // not select{}: the runtime may call that a deadlock
		return 0
	}
	ln, err := net.Listen("tcp", *addr)
	if err == nil && *fail {
		ln.Close()
		err = errors.New("start-up failure requested with -fail")
	}
	if err != nil {
		tokenpipe.Fail(readyEnv, err) // nothing more to do if it fails
		return 1
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "daemonwait %d ok\n", os.Getpid())
	})}
	go srv.Serve(ln)
	// Catch SIGTERM before reporting: whoever waits may send it as soon as
	// the report is in.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A parent that has gone away no longer needs the report, but a bad
	// DAEMONWAIT_READY_FD is a mistake to say out loud.
	if err := tokenpipe.Ready(readyEnv, ln.Addr().String()); errors.Is(err, os.ErrInvalid) {
		fmt.Fprintln(os.Stderr, "daemonwait:", err)
		return 2
	}

	ctx, cancel := context.WithTimeout(ctx, *lifetime)
	defer cancel()
	<-ctx.Done()
	tokenpipe.Notify("STOPPING=1") // to systemd or start-stop-daemon; none otherwise
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutdown)
	return 0
}
