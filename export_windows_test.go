package tokenpipe

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// Inheritable reports whether a child started with bInheritHandles would get h.
func Inheritable(t testing.TB, h uintptr) bool {
	t.Helper()
	flags, err := handleInformation(h)
	if err != nil {
		t.Fatalf("GetHandleInformation(%d): %v", h, err)
	}
	return flags&windows.HANDLE_FLAG_INHERIT != 0
}

// HandleOpen reports whether h is an open handle.
func HandleOpen(h uintptr) bool {
	_, err := handleInformation(h)
	return err == nil
}

var (
	kernel32                 = windows.NewLazySystemDLL("kernel32.dll")
	procGetHandleInformation = kernel32.NewProc("GetHandleInformation")
)

// handleInformation calls GetHandleInformation, which x/sys/windows lacks.
func handleInformation(h uintptr) (flags uint32, err error) {
	ok, _, err := procGetHandleInformation.Call(h, uintptr(unsafe.Pointer(&flags)))
	if ok == 0 {
		return 0, err
	}
	return flags, nil
}

// OpenDescriptors counts the process's open pipe handles, which are All
// here.
//
// Not GetProcessHandleCount: Wine's succeeds and returns 0, so a test built
// on it could never fail there. Handle values are multiples of four, handed
// out lowest first, so probing the values up to maxProbedHandle finds every
// handle of a process that has fewer than a few thousand; only pipes are
// counted, so that the threads and events the runtime opens and closes
// meanwhile do not blur the count.
func OpenDescriptors(t testing.TB) Descriptors {
	t.Helper()
	n := 0
	for h := uintptr(4); h <= maxProbedHandle; h += 4 {
		if _, err := handleInformation(h); err != nil {
			continue
		}
		if typ, err := windows.GetFileType(windows.Handle(h)); err == nil && typ == windows.FILE_TYPE_PIPE {
			n++
		}
	}
	return Descriptors{Pipes: n, All: n}
}

const maxProbedHandle = 16 << 10

// SetInheritable sets or clears what Inheritable reports.
func SetInheritable(t testing.TB, h uintptr, on bool) {
	t.Helper()
	var flags uint32
	if on {
		flags = windows.HANDLE_FLAG_INHERIT
	}
	if err := windows.SetHandleInformation(windows.Handle(h), windows.HANDLE_FLAG_INHERIT, flags); err != nil {
		t.Fatal(err)
	}
}

// RawPipe makes a pipe with CreatePipe: inheritable handles, which wait.
func RawPipe(t testing.TB, give int) (given uintptr, kept *os.File) {
	t.Helper()
	var h [2]windows.Handle
	sa := windows.SecurityAttributes{InheritHandle: 1}
	sa.Length = uint32(unsafe.Sizeof(sa))
	if err := windows.CreatePipe(&h[0], &h[1], &sa, 0); err != nil {
		t.Fatal(err)
	}
	kept = os.NewFile(uintptr(h[1-give]), "kept end")
	t.Cleanup(func() { kept.Close() })
	return uintptr(h[give]), kept
}

// OpenSocket opens a socket and returns its handle.
func OpenSocket(t testing.TB) uintptr {
	t.Helper()
	var d windows.WSAData
	if err := windows.WSAStartup(uint32(0x202), &d); err != nil {
		t.Fatal(err)
	}
	s, err := windows.Socket(windows.AF_INET, windows.SOCK_STREAM, windows.IPPROTO_TCP)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { windows.Closesocket(s) })
	return uintptr(s)
}

// StdHandles returns the handles of standard input, output and error.
func StdHandles() []uintptr {
	var hs []uintptr
	for _, std := range []uint32{windows.STD_INPUT_HANDLE, windows.STD_OUTPUT_HANDLE, windows.STD_ERROR_HANDLE} {
		if h, err := windows.GetStdHandle(std); err == nil && h != 0 && h != windows.InvalidHandle {
			hs = append(hs, uintptr(h))
		}
	}
	return hs
}

// SetNoWait puts the pipe handle h in no-wait mode (PIPE_NOWAIT).
func SetNoWait(t testing.TB, h uintptr) {
	t.Helper()
	setPipeMode(t, h, windows.PIPE_NOWAIT, "PIPE_NOWAIT")
}

// setPipeMode sets the read and wait modes of the pipe handle h.
func setPipeMode(t testing.TB, h uintptr, mode uint32, name string) {
	t.Helper()
	if err := windows.SetNamedPipeHandleState(windows.Handle(h), &mode, nil, nil); err != nil {
		t.Fatalf("SetNamedPipeHandleState(%s): %v", name, err)
	}
}

// ProcessCPUTime returns the CPU time, user and system, that the process has
// used so far.
func ProcessCPUTime(t testing.TB) time.Duration {
	t.Helper()
	var creation, exit, kernel, user windows.Filetime
	if err := windows.GetProcessTimes(windows.CurrentProcess(), &creation, &exit, &kernel, &user); err != nil {
		t.Fatalf("GetProcessTimes: %v", err)
	}
	// Filetimes count 100 ns ticks.
	ticks := func(f windows.Filetime) int64 { return int64(f.HighDateTime)<<32 | int64(f.LowDateTime) }
	return time.Duration((ticks(kernel) + ticks(user)) * 100)
}

// NamedPipe makes a connected named pipe, as a C or .NET parent may create
// one and hand down, with two bare inheritable handles: server, with the
// pipe mode given (PIPE_TYPE_MESSAGE|PIPE_READMODE_MESSAGE, say), and
// client, which CreateFile leaves in byte-read mode:
// https://learn.microsoft.com/windows/win32/ipc/named-pipe-type-read-and-wait-modes
// flags go into both handles' open modes (FILE_FLAG_OVERLAPPED, say). The
// caller hands each handle to FromEnv or closes it with CloseOnCleanup.
func NamedPipe(t testing.TB, mode, flags uint32) (server, client uintptr) {
	t.Helper()
	name, err := windows.UTF16PtrFromString(fmt.Sprintf(`\\.\pipe\tokenpipe-test-%d-%d`, os.Getpid(), pipeSerial.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	sa := windows.SecurityAttributes{InheritHandle: 1}
	sa.Length = uint32(unsafe.Sizeof(sa))
	sh, err := windows.CreateNamedPipe(name, windows.PIPE_ACCESS_DUPLEX|flags, mode, 1, 4096, 4096, 0, &sa)
	if err != nil {
		t.Fatalf("CreateNamedPipe: %v", err)
	}
	ch, err := windows.CreateFile(name, windows.GENERIC_READ|windows.GENERIC_WRITE, 0, &sa, windows.OPEN_EXISTING, flags, 0)
	if err != nil {
		windows.CloseHandle(sh)
		t.Fatalf("CreateFile: %v", err)
	}
	return uintptr(sh), uintptr(ch)
}

// MessagePipe is a NamedPipe of message type whose server handle is in
// message-read mode.
func MessagePipe(t testing.TB) (server, client uintptr) {
	t.Helper()
	return NamedPipe(t, windows.PIPE_TYPE_MESSAGE|windows.PIPE_READMODE_MESSAGE, 0)
}

var pipeSerial atomic.Int64

// CloseOnCleanup closes h when the test ends, or before when the function
// it returns is called.
func CloseOnCleanup(t testing.TB, h uintptr) (closeNow func()) {
	var once sync.Once
	closeNow = func() { once.Do(func() { windows.CloseHandle(windows.Handle(h)) }) }
	t.Cleanup(closeNow)
	return closeNow
}

// SetMessageRead puts the pipe handle h in message-read mode.
func SetMessageRead(t testing.TB, h uintptr) {
	t.Helper()
	setPipeMode(t, h, windows.PIPE_READMODE_MESSAGE, "PIPE_READMODE_MESSAGE")
}

// WriteMessage writes msg to the pipe handle h in one WriteFile, which on a
// message-type pipe makes it one message, also when it is empty.
func WriteMessage(t testing.TB, h uintptr, msg []byte) {
	t.Helper()
	var n uint32
	if err := windows.WriteFile(windows.Handle(h), msg, &n, nil); err != nil || int(n) != len(msg) {
		t.Fatalf("WriteFile(%q): wrote %d: %v", msg, n, err)
	}
}

// ReadMessage reads from the pipe handle h with one ReadFile, which in
// message-read mode returns one message whole.
func ReadMessage(t testing.TB, h uintptr) []byte {
	t.Helper()
	buf := make([]byte, 64)
	var n uint32
	if err := windows.ReadFile(windows.Handle(h), buf, &n, nil); err != nil {
		t.Fatalf("ReadFile: %v", err)
	}
	return buf[:n]
}

// DuplicateWithAccess returns a bare inheritable duplicate of h with only
// the access given, for FromEnv to take or CloseOnCleanup to close.
func DuplicateWithAccess(t testing.TB, h uintptr, access uint32) uintptr {
	t.Helper()
	var dup windows.Handle
	p := windows.CurrentProcess()
	if err := windows.DuplicateHandle(p, windows.Handle(h), p, &dup, access, true, 0); err != nil {
		t.Fatalf("DuplicateHandle(%#x): %v", access, err)
	}
	return uintptr(dup)
}

// OpenEvent creates an inheritable event, a handle that is no file, closed
// when the test ends.
func OpenEvent(t testing.TB) uintptr {
	t.Helper()
	sa := windows.SecurityAttributes{InheritHandle: 1}
	sa.Length = uint32(unsafe.Sizeof(sa))
	h, err := windows.CreateEvent(&sa, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	CloseOnCleanup(t, uintptr(h))
	return uintptr(h)
}

// Interrupter returns what TokenReadContext calls on e's handle when its
// context ends, and again when the read has returned: set(true) cancels a
// call under way on the handle.
func Interrupter(e *TokenPipeEnd) (set func(on bool)) { return e.f.Load().sys.setInterrupted }
