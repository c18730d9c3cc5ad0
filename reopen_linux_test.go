package tokenpipe_test

import (
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/tokenpipe/tokenpipe"
	"golang.org/x/sys/unix"
)

// On Linux FromEnv gives an inherited end an open file description of its
// own, so that O_NONBLOCK, which lives there, is the end's alone: FromEnv
// leaves the parent's copy as it was, and a holder that makes its copy
// blocking cannot make a read through the end sit in read(2), out of reach
// of its context (nor, with raw system calls, hold its P).
func TestFromEnvEndOwnsItsDescription(t *testing.T) {
	// The parent's copies of a pipe as a shell hands one over: blocking.
	w, readEnd := tokenpipe.RawPipe(t, tokenpipe.WriteEnd)
	parentR, parentW := int(readEnd.Fd()), int(w)
	defer unix.Close(parentW)
	r, inherited := fromEnvCopy(t, parentR)
	defer r.Close()
	if nonblocking(t, parentR) {
		t.Error("FromEnv made the description the parent holds non-blocking")
	}
	if !nonblocking(t, inherited) {
		t.Error("the end is blocking")
	}

	unix.SetNonblock(parentR, false) // another holder makes its copy blocking
	done := make(chan result, 1)
	go func() {
		tok, err := readWithin(t, r, 50*time.Millisecond)
		done <- result{tok, err}
	}()
	select {
	case res := <-done:
		if res.err != context.DeadlineExceeded {
			t.Fatalf("read from an empty pipe with a deadline: got (%d, %v), want context.DeadlineExceeded", res.tok, res.err)
		}
	case <-time.After(hangGuard):
		unix.Write(parentW, []byte{9}) // let the read go
		<-done
		t.Fatalf("a read through the end sat in read(2) past its context once another holder of the pipe made it blocking")
	}

	// Still the same pipe.
	if _, err := unix.Write(parentW, []byte{7}); err != nil {
		t.Fatal(err)
	}
	if tok, err := r.TokenRead(); tok != 7 || err != nil {
		t.Fatalf("TokenRead of what the parent wrote: (%d, %v), want (7, nil)", tok, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if nonblocking(t, parentR) {
		t.Error("Close changed the description the parent holds")
	}
}

// Where the pipe cannot be opened afresh (here, the write end of a FIFO whose
// readers are all gone: opening it for writing fails with ENXIO), FromEnv
// takes the end as it is, sharing its description, and the end works.
func TestFromEnvSharesWhatItCannotReopen(t *testing.T) {
	path := fifoPath(t)
	reader, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	parentW, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	unix.Close(reader)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(parentW)
	w, _ := fromEnvCopy(t, parentW)
	defer w.Close()
	if !nonblocking(t, parentW) {
		t.Error("FromEnv reopened a FIFO with no reader, or left the shared end blocking")
	}
	if err := w.TokenWrite(1); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("TokenWrite with no reader left: %v, want an error matching io.ErrClosedPipe", err)
	}
}

// fromEnvCopy hands FromEnv a copy of the parent's descriptor, sharing its
// open file description as an inherited one does, and returns the end and
// the copy's number.
func fromEnvCopy(t *testing.T, parent int) (*tokenpipe.TokenPipeEnd, int) {
	t.Helper()
	inherited, err := unix.Dup(parent)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(endEnv, strconv.Itoa(inherited))
	e, err := tokenpipe.FromEnv(endEnv)
	if err != nil {
		unix.Close(inherited)
		t.Fatal(err)
	}
	return e, inherited
}

func nonblocking(t *testing.T, fd int) bool {
	t.Helper()
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fl&unix.O_NONBLOCK != 0
}

// The end FromEnv reopens keeps the status flags the inherited description
// had, as the end that shares it does: a parent that made a packet-mode pipe
// (pipe2 with O_DIRECT, pipe(7)) reads each of the child's writes as one
// packet, here one token per read(2) however large its buffer. The reopened
// description dropped O_DIRECT, and the parent got all ten tokens in one read.
func TestFromEnvKeepsPacketMode(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_DIRECT|unix.O_CLOEXEC); err != nil {
		t.Skipf("no packet-mode pipes here (pipe2 O_DIRECT, Linux 3.4): %v", err)
	}
	parentR := p[0]
	defer unix.Close(parentR)
	w := os.NewFile(uintptr(p[1]), "packet-mode write end")
	cmd := helperCommand(t, "write-1-to-10")
	cmd.ExtraFiles = []*os.File{w}
	cmd.Env = append(cmd.Env, endEnv+"=3")
	err := cmd.Run()
	w.Close()
	if err != nil {
		t.Fatalf("write-1-to-10: %v", err)
	}
	for want := byte(1); want <= 10; want++ {
		buf := make([]byte, 10)
		n, err := unix.Read(parentR, buf)
		if err != nil || n != 1 || buf[0] != want {
			t.Fatalf("read(2) of the packet-mode pipe: (%v, %v), want one packet: [%d]", buf[:max(n, 0)], err, want)
		}
	}
}
