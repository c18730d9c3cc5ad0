package tokenpipe_test

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/tokenpipe/tokenpipe"
)

// Windows ignores the two low bits of a handle value: h+1, h+2 and h+3 name
// h. FromEnv refuses them, so that no other spelling slips past its checks
// (a redirected standard input was accepted as stdin+1).
func TestFromEnvRefusesOtherSpellingsOfAHandle(t *testing.T) {
	h, _ := tokenpipe.RawInheritablePipe(t)
	for _, base := range append([]uintptr{h}, tokenpipe.StdHandles()...) {
		for d := uintptr(1); d <= 3; d++ {
			err := refused(t, strconv.FormatUint(uint64(base+d), 10))
			if !strings.Contains(err.Error(), "multiples of 4") {
				t.Errorf("error %q does not say why", err)
			}
		}
	}
	t.Setenv(endEnv, strconv.FormatUint(uint64(h), 10))
	r, err := tokenpipe.FromEnv(endEnv)
	if err != nil {
		t.Fatalf("FromEnv of the handle itself, after the refusals: %v", err)
	}
	r.Close()
}

// ExportTo refuses a command that inherits no handles: the child would be
// started with a variable naming a handle it does not have.
func TestExportToRefusesNoInheritHandles(t *testing.T) {
	r, w := mustMake(t)
	cmd := exec.Command("x")
	cmd.SysProcAttr = &syscall.SysProcAttr{NoInheritHandles: true}
	err := w.ExportTo(cmd, endEnv)
	if !errors.Is(err, os.ErrInvalid) || !strings.Contains(err.Error(), "NoInheritHandles") {
		t.Fatalf("ExportTo with NoInheritHandles: got %v, want os.ErrInvalid naming NoInheritHandles", err)
	}
	if cmd.Env != nil || len(cmd.SysProcAttr.AdditionalInheritedHandles) != 0 {
		t.Errorf("the refused ExportTo changed cmd: Env %q, handles %v", cmd.Env, cmd.SysProcAttr.AdditionalInheritedHandles)
	}
	if err := w.TokenWrite(4); err != nil {
		t.Fatalf("the end after a refused ExportTo: %v", err)
	}
	if tok, err := r.TokenRead(); tok != 4 || err != nil {
		t.Fatalf("got (%d, %v), want (4, nil)", tok, err)
	}
}

// A pipe in no-wait mode cannot wait for a token: FromEnv refuses one, and a
// read on a pipe switched to that mode later says so, rather than calling
// the empty pipe broken.
func TestNoWaitPipe(t *testing.T) {
	h, _ := tokenpipe.RawInheritablePipe(t)
	tokenpipe.SetNoWait(t, h)
	if err := refused(t, strconv.FormatUint(uint64(h), 10)); !strings.Contains(err.Error(), "no-wait") {
		t.Errorf("error %q does not say the pipe is in no-wait mode", err)
	}

	h, _ = tokenpipe.RawInheritablePipe(t)
	t.Setenv(endEnv, strconv.FormatUint(uint64(h), 10))
	r, err := tokenpipe.FromEnv(endEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tokenpipe.SetNoWait(t, h)
	_, err = r.TokenRead()
	if err == nil || errors.Is(err, io.ErrClosedPipe) || err == io.EOF || !strings.Contains(err.Error(), "no-wait") {
		t.Fatalf("read of an empty pipe in no-wait mode: got %v, want an error saying no-wait", err)
	}
}
