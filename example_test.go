//go:build unix || windows

package tokenpipe_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"time"

	"github.com/tokenpipe/tokenpipe"
)

// The handshake within one process: one goroutine reports, the other waits.
func Example() {
	p, err := tokenpipe.Make()
	if err != nil {
		log.Fatal(err)
	}
	r, w := p.TakeReadEnd(), p.TakeWriteEnd()
	defer r.Close()

	go func() {
		defer w.Close()
		w.TokenWrite(1) // initialised
	}()

	tok, err := r.TokenRead()
	fmt.Println(tok, err)
	tok, err = r.TokenRead()
	fmt.Println(tok, err)
	// Output:
	// 1 <nil>
	// 0 EOF
}

// A parent starts a child, hands it the write end and waits at most ten
// seconds for its report.
func ExampleTokenPipeEnd_ExportTo() {
	p, err := tokenpipe.Make()
	if err != nil {
		log.Fatal(err)
	}
	r, w := p.TakeReadEnd(), p.TakeWriteEnd()
	defer r.Close()

	cmd := childCommand() // runs reportReady
	if err := w.ExportTo(cmd, "READY_FD"); err != nil {
		log.Fatal(err)
	}
	err = cmd.Start()
	w.Close() // whether or not Start worked: now only the child can write
	if err != nil {
		log.Fatal(err)
	}
	defer cmd.Wait()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch tok, err := r.TokenReadContext(ctx); {
	case err == io.EOF:
		fmt.Println("child exited before it was ready")
	case err != nil:
		fmt.Println("no word from the child:", err)
	case tok == 1:
		fmt.Println("child is ready")
	default:
		fmt.Println("child failed to start")
	}
	// Output: child is ready
}

// reportReady is the child's side of ExampleTokenPipeEnd_ExportTo.
func reportReady() int {
	w, err := tokenpipe.FromEnv("READY_FD")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer w.Close()
	// ... initialise; on failure, w.TokenWrite(0) ...
	if err := w.TokenWrite(1); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// childCommand returns a command that runs this program again as the child,
// which calls reportReady: in this example the program is the test binary.
func childCommand() *exec.Cmd {
	cmd, err := newHelperCommand("example-child")
	if err != nil {
		log.Fatal(err)
	}
	return cmd
}

func init() { register("example-child", reportReady) }

// A child that was not started with ExportTo gets ErrNotExported, and can
// run in the foreground instead.
func ExampleFromEnv() {
	os.Unsetenv("READY_FD")
	w, err := tokenpipe.FromEnv("READY_FD")
	switch {
	case errors.Is(err, tokenpipe.ErrNotExported):
		fmt.Println("not started as a daemon")
	case err != nil:
		fmt.Println("bad handoff:", err)
	default:
		w.TokenWrite(1)
		w.Close()
	}
	// Output: not started as a daemon
}

// A read that gives up after a timeout loses nothing: the token written
// later is there for the next read.
func ExampleTokenPipeEnd_TokenReadContext() {
	p, err := tokenpipe.Make()
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	r, w := p.TakeReadEnd(), p.TakeWriteEnd()
	defer r.Close()
	defer w.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err = r.TokenReadContext(ctx)
	fmt.Println(err)

	w.TokenWrite(7)
	tok, err := r.TokenRead()
	fmt.Println(tok, err)
	// Output:
	// context deadline exceeded
	// 7 <nil>
}

// bitcoind keeps its end in a variable declared before the pipe exists and
// moves the end into it.
func ExampleTokenPipeEnd_AssignFrom() {
	var daemonEnd tokenpipe.TokenPipeEnd // closed until assigned
	defer daemonEnd.Close()

	p, err := tokenpipe.Make()
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	taken := p.TakeWriteEnd()
	daemonEnd.AssignFrom(taken)
	fmt.Println(daemonEnd.IsOpen(), taken.IsOpen())
	// Output: true false
}

// Writing when nobody can read any more is an error, not a crash by SIGPIPE.
func ExampleTokenPipeEnd_TokenWrite() {
	p, err := tokenpipe.Make()
	if err != nil {
		log.Fatal(err)
	}
	r, w := p.TakeReadEnd(), p.TakeWriteEnd()
	defer w.Close()
	r.Close()

	err = w.TokenWrite(1)
	fmt.Println(errors.Is(err, io.ErrClosedPipe))
	// Output: true
}

// A parent starts a daemon and waits at most ten seconds for it to come up.
func ExampleStartAndWait() {
	cmd := daemonCommand() // runs exampleDaemon: exec.Command("mydaemon") in real life
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr, err := tokenpipe.StartAndWait(ctx, cmd, "MYD_READY_FD")
	switch {
	case err == nil:
		fmt.Println("daemon ready on", addr)
	case errors.Is(err, tokenpipe.ErrChildFailed):
		fmt.Println("daemon failed:", addr) // addr holds the reason here
		return
	case errors.Is(err, tokenpipe.ErrChildExited):
		fmt.Println("daemon exited before it was ready:", err) // with its exit status
		return
	case errors.Is(err, tokenpipe.ErrChildKilled):
		fmt.Println("daemon not ready in ten seconds: killed it")
		return
	default:
		fmt.Println("daemon not started:", err)
		return
	}
	// The daemon runs on and is ours: stop it here, as the example ends.
	cmd.Process.Kill()
	cmd.Wait()
	// Output: daemon ready on 127.0.0.1:8080
}

// exampleDaemon is the daemon of ExampleStartAndWait.
func exampleDaemon() int {
	// ... bind, load, initialise; on failure:
	//	tokenpipe.Fail("MYD_READY_FD", err)
	//	return 1
	if err := tokenpipe.Ready("MYD_READY_FD", "127.0.0.1:8080"); err != nil &&
		!errors.Is(err, tokenpipe.ErrNotExported) {
		log.Print(err) // the parent went away: nobody to tell
	}
	holdStdin() // serve; here, until the parent kills us
	return 0
}

func init() { register("example-daemon", exampleDaemon) }

// daemonCommand returns a command that runs this program again as the
// daemon, which calls exampleDaemon: in this example the program is the test
// binary.
func daemonCommand() *exec.Cmd {
	cmd, err := newHelperCommand("example-daemon")
	if err != nil {
		log.Fatal(err)
	}
	// The daemon serves until its standard input closes, which cmd.Wait does.
	if _, err := cmd.StdinPipe(); err != nil {
		log.Fatal(err)
	}
	return cmd
}

// A daemon run by hand, not by a waiting parent, has nobody to report to:
// Ready says so with ErrNotExported, which the daemon ignores.
func ExampleReady() {
	os.Unsetenv("MYD_READY_FD")
	err := tokenpipe.Ready("MYD_READY_FD", "127.0.0.1:8080")
	fmt.Println(errors.Is(err, tokenpipe.ErrNotExported))
	// Output: true
}

// A daemon that cannot start says why; the parent's StartAndWait returns
// the reason.
func ExampleFail() {
	cmd := failingDaemonCommand() // runs exampleFailingDaemon
	reason, err := tokenpipe.StartAndWait(context.Background(), cmd, "MYD_READY_FD")
	fmt.Println(errors.Is(err, tokenpipe.ErrChildFailed), reason, cmd.ProcessState.ExitCode())
	// Output: true listen tcp 127.0.0.1:8080: address already in use 1
}

// exampleFailingDaemon is the daemon of ExampleFail.
func exampleFailingDaemon() int {
	err := errors.New("listen tcp 127.0.0.1:8080: address already in use")
	tokenpipe.Fail("MYD_READY_FD", err)
	return 1
}

func init() { register("example-failing-daemon", exampleFailingDaemon) }

func failingDaemonCommand() *exec.Cmd {
	cmd, err := newHelperCommand("example-failing-daemon")
	if err != nil {
		log.Fatal(err)
	}
	return cmd
}
