// Command daemonwait does what bitcoind -daemonwait does, in Go and
// correctly: it starts itself again as a detached daemon and waits, at most
// -timeout, for the daemon to say whether it came up.
//
//	go run ./examples/daemonwait            # daemon <pid> ready on 127.0.0.1:PORT
//	go run ./examples/daemonwait -fail      # the daemon reports failure: exit 1
//	go run ./examples/daemonwait -crash     # the daemon dies without a word: exit 1
//	go run ./examples/daemonwait -hang -timeout 1s  # killed after the timeout: exit 1
//
// The daemon binds -addr, serves a one-line health response over HTTP, then
// reports token 1 followed by its address, or token 0 followed by what went
// wrong, and closes its end. It serves until -lifetime passes or it is sent
// SIGTERM or interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/tokenpipe/tokenpipe"
)

// readyEnv carries the daemon's end of the token pipe.
const readyEnv = "DAEMONWAIT_READY_FD"

// The two tokens the daemon reports with; whatever follows them is text.
const (
	tokenFailed = 0
	tokenReady  = 1
)

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
	end, err := tokenpipe.FromEnv(readyEnv)
	switch {
	case err == nil:
		os.Exit(daemon(end))
	case errors.Is(err, tokenpipe.ErrNotExported):
		os.Exit(parent())
	default:
		fmt.Fprintln(os.Stderr, "daemonwait:", err)
		os.Exit(2)
	}
}

// parent starts the daemon and reports what became of it.
func parent() int {
	p, err := tokenpipe.Make()
	if err != nil {
		fmt.Fprintln(os.Stderr, "daemonwait:", err)
		return 1
	}
	r, w := p.TakeReadEnd(), p.TakeWriteEnd()
	defer r.Close()

	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "daemonwait:", err)
		return 1
	}
	cmd := exec.Command(exe, os.Args[1:]...) // standard streams: the null device
	detach(cmd)
	if err := w.ExportTo(cmd, readyEnv); err != nil {
		fmt.Fprintln(os.Stderr, "daemonwait:", err)
		return 1
	}
	err = cmd.Start()
	w.Close() // from now on only the daemon holds a write end
	if err != nil {
		fmt.Fprintln(os.Stderr, "daemonwait: starting the daemon:", err)
		return 1
	}
	pid := cmd.Process.Pid

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	tok, text, err := readReport(ctx, r)
	switch {
	case err == nil && tok == tokenReady:
		fmt.Printf("daemon %d ready on %s\n", pid, text)
		cmd.Process.Release()
		return 0
	case err == nil:
		fmt.Printf("daemon %d failed: %s\n", pid, text)
		cmd.Wait()
		return 1
	case err == io.EOF:
		fmt.Printf("daemon %d exited before it was ready\n", pid)
		cmd.Wait()
		return 1
	case errors.Is(err, context.DeadlineExceeded):
		cmd.Process.Kill()
		cmd.Wait()
		fmt.Printf("daemon %d not ready after %v: killed it\n", pid, *timeout)
		return 1
	default:
		cmd.Process.Kill()
		cmd.Wait()
		fmt.Printf("daemon %d: reading its report: %v: killed it\n", pid, err)
		return 1
	}
}

// readReport reads the daemon's token and the text after it, up to end of
// stream. Only a token followed by end of stream is a report.
func readReport(ctx context.Context, r *tokenpipe.TokenPipeEnd) (tok byte, text string, err error) {
	tok, err = r.TokenReadContext(ctx)
	if err != nil {
		return 0, "", err
	}
	var buf []byte
	for len(buf) < 4096 {
		b, err := r.TokenReadContext(ctx)
		if err == io.EOF {
			return tok, string(buf), nil
		}
		if err != nil {
			return 0, "", err
		}
		buf = append(buf, b)
	}
	return 0, "", errors.New("report too long")
}

// daemon initialises, reports on end, and serves.
func daemon(end *tokenpipe.TokenPipeEnd) int {
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
		report(end, tokenFailed, err.Error())
		return 1
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "daemonwait %d ok\n", os.Getpid())
	})}
	go srv.Serve(ln)
	report(end, tokenReady, ln.Addr().String())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *lifetime)
	defer cancel()
	<-ctx.Done()
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutdown)
	return 0
}

// report writes tok and text to the parent and closes the end. Errors are
// not fatal: a parent that has gone away no longer needs the report.
func report(end *tokenpipe.TokenPipeEnd, tok byte, text string) {
	defer end.Close()
	if end.TokenWrite(tok) != nil {
		return
	}
	for i := 0; i < len(text); i++ {
		if end.TokenWrite(text[i]) != nil {
			return
		}
	}
}
