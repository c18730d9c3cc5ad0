package tokenpipe_test

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/tokenpipe/tokenpipe"
	"golang.org/x/sys/windows"
)

// Windows ignores the two low bits of a handle value: h+1, h+2 and h+3 name
// h. FromEnv refuses them, so that no other spelling slips past its checks
// (a redirected standard input was accepted as stdin+1).
func TestFromEnvRefusesOtherSpellingsOfAHandle(t *testing.T) {
	h, _ := tokenpipe.RawPipe(t, tokenpipe.ReadEnd)
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

// FromEnv refuses a pipe handle through which no token can be read or
// written, such as one with only FILE_READ_ATTRIBUTES and SYNCHRONIZE access
// (Windows' O_PATH, which Linux refuses too): it took one, whose reads then
// failed with "Access denied", and Ready returned that, not os.ErrInvalid.
// It refuses a handle without FILE_READ_ATTRIBUTES, which it needs to tell
// a pipe from a socket, saying so (it asked whether that was "a socket?").
// A refused handle stays open and as inheritable as it was; the least access
// that works, data and FILE_READ_ATTRIBUTES, is taken.
func TestFromEnvRefusesHandleWithoutAccess(t *testing.T) {
	r, w := tokenpipe.RawPipe(t, tokenpipe.ReadEnd)
	tokenpipe.CloseOnCleanup(t, r)
	for _, c := range []struct {
		name   string
		h      uintptr
		access uint32
		says   string
	}{
		{"attributes only", r, windows.FILE_READ_ATTRIBUTES | windows.SYNCHRONIZE, "has neither FILE_READ_DATA nor FILE_WRITE_DATA"},
		{"no access", w.Fd(), 0, "has neither FILE_READ_DATA nor FILE_WRITE_DATA"},
		{"read end without attributes", r, windows.FILE_READ_DATA | windows.SYNCHRONIZE, "lacks FILE_READ_ATTRIBUTES"},
		{"write end without attributes", w.Fd(), windows.FILE_WRITE_DATA | windows.SYNCHRONIZE, "lacks FILE_READ_ATTRIBUTES"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := tokenpipe.DuplicateWithAccess(t, c.h, c.access)
			tokenpipe.CloseOnCleanup(t, h)
			v := strconv.FormatUint(uint64(h), 10)
			err := refused(t, v)
			if msg := err.Error(); !strings.Contains(msg, "handle "+v+" "+c.says) || strings.Contains(msg, "socket?") {
				t.Errorf("error %q does not say that handle %s %s", msg, v, c.says)
			}
			freshReports(t)
			if err := tokenpipe.Ready(endEnv, "up"); !errors.Is(err, os.ErrInvalid) {
				t.Errorf("Ready: got %v, want os.ErrInvalid", err)
			}
			if !tokenpipe.HandleOpen(h) || !tokenpipe.Inheritable(t, h) {
				t.Error("FromEnv closed or changed a handle it refused")
			}
		})
	}
	t.Run("least access that works", func(t *testing.T) {
		re := fromEnvHandle(t, tokenpipe.DuplicateWithAccess(t, r, windows.FILE_READ_DATA|windows.FILE_READ_ATTRIBUTES))
		defer re.Close()
		we := fromEnvHandle(t, tokenpipe.DuplicateWithAccess(t, w.Fd(), windows.FILE_WRITE_DATA|windows.FILE_READ_ATTRIBUTES))
		defer we.Close()
		if err := we.TokenWrite(3); err != nil {
			t.Fatal(err)
		}
		expectTokens(t, re, "\x03")
	})
}

// FromEnv refuses a pipe handle opened for overlapped I/O
// (FILE_FLAG_OVERLAPPED), which its ReadFile and WriteFile without an
// OVERLAPPED cannot use: it took one, and of two reads under way one
// returned "Overlapped I/O pending." while its read stayed queued and took
// the next token into a buffer nobody read. The handle is left as it was.
func TestFromEnvRefusesOverlappedHandle(t *testing.T) {
	server, client := tokenpipe.NamedPipe(t, windows.PIPE_TYPE_BYTE, windows.FILE_FLAG_OVERLAPPED)
	for _, h := range []uintptr{server, client} {
		tokenpipe.CloseOnCleanup(t, h)
		v := strconv.FormatUint(uint64(h), 10)
		if err := refused(t, v); !strings.Contains(err.Error(), "handle "+v+" was opened for overlapped I/O") {
			t.Errorf("error %q does not say the handle was opened for overlapped I/O", err)
		}
		if !tokenpipe.HandleOpen(h) || !tokenpipe.Inheritable(t, h) {
			t.Error("FromEnv closed or changed a handle it refused")
		}
	}
}

// FromEnv refuses a handle of an object that is no file, such as an event,
// without calling it closed (it said "is not open"), and leaves it as it was.
func TestFromEnvRefusesAnEvent(t *testing.T) {
	h := tokenpipe.OpenEvent(t)
	v := strconv.FormatUint(uint64(h), 10)
	if err := refused(t, v); !strings.Contains(err.Error(), "not a file") {
		t.Errorf("error %q does not say the handle is not a file", err)
	}
	if !tokenpipe.HandleOpen(h) || !tokenpipe.Inheritable(t, h) {
		t.Error("FromEnv closed or changed a handle it refused")
	}
}

// fromEnvHandle hands h to FromEnv through endEnv and returns the end.
func fromEnvHandle(t *testing.T, h uintptr) *tokenpipe.TokenPipeEnd {
	t.Helper()
	t.Setenv(endEnv, strconv.FormatUint(uint64(h), 10))
	e, err := tokenpipe.FromEnv(endEnv)
	if err != nil {
		t.Fatalf("FromEnv: %v", err)
	}
	return e
}

// expectTokens reads len(want) tokens from r and checks that they are want's
// bytes, in order.
func expectTokens(t *testing.T, r *tokenpipe.TokenPipeEnd, want string) {
	t.Helper()
	for i := 0; i < len(want); i++ {
		if tok, err := readWithin(t, r, hangGuard); tok != want[i] || err != nil {
			t.Fatalf("token %d of %q: got (%d, %v), want (%d, nil)", i, want, tok, err, want[i])
		}
	}
}

// shareAttributes gives cmds one *SysProcAttr whose handle list has spare
// capacity, as code that builds its commands from one base does, and returns
// a check that nothing was written into it.
func shareAttributes(cmds ...*exec.Cmd) (unchanged func() bool) {
	attr := &syscall.SysProcAttr{AdditionalInheritedHandles: make([]syscall.Handle, 0, 4)}
	for _, cmd := range cmds {
		cmd.SysProcAttr = attr
	}
	return func() bool {
		return len(attr.AdditionalInheritedHandles) == 0 && attr.AdditionalInheritedHandles[:1][0] == 0
	}
}
