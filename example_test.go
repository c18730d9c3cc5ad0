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
