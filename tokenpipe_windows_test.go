package tokenpipe

import (
	"os"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// OSHandle returns the descriptor or handle behind an open end.
func OSHandle(t testing.TB, e *TokenPipeEnd) uintptr {
	t.Helper()
	return EndHandle(e)
}

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

// OpenHandles counts the process's open pipe handles.
//
// Not GetProcessHandleCount: Wine's succeeds and returns 0, so a test built
// on it could never fail there. Handle values are multiples of four, handed
// out lowest first, so probing the values up to maxProbedHandle finds every
// handle of a process that has fewer than a few thousand; only pipes are
// counted, so that the threads and events the runtime opens and closes
// meanwhile do not blur the count.
func OpenHandles(t testing.TB) int {
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
	return n
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

// RawInheritablePipe makes a pipe as a parent would hand it down: r is a bare
// inheritable handle for FromEnv to take, w an *os.File to write to it.
func RawInheritablePipe(t testing.TB) (r uintptr, w *os.File) {
	t.Helper()
	var rh, wh windows.Handle
	sa := windows.SecurityAttributes{InheritHandle: 1}
	sa.Length = uint32(unsafe.Sizeof(sa))
	if err := windows.CreatePipe(&rh, &wh, &sa, 0); err != nil {
		t.Fatal(err)
	}
	w = os.NewFile(uintptr(wh), "w")
	t.Cleanup(func() { w.Close() })
	return uintptr(rh), w
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
	mode := uint32(windows.PIPE_NOWAIT)
	if err := windows.SetNamedPipeHandleState(windows.Handle(h), &mode, nil, nil); err != nil {
		t.Fatalf("SetNamedPipeHandleState(PIPE_NOWAIT): %v", err)
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
