package tokenpipe

import (
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/windows"
)

// OSHandle returns the handle behind an open end.
func OSHandle(t testing.TB, e *TokenPipeEnd) uintptr {
	t.Helper()
	return uintptr(e.f.Load().sys.h)
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
	kernel32                  = windows.NewLazySystemDLL("kernel32.dll")
	procGetHandleInformation  = kernel32.NewProc("GetHandleInformation")
	procGetProcessHandleCount = kernel32.NewProc("GetProcessHandleCount")
)

// handleInformation calls GetHandleInformation, which x/sys/windows lacks.
func handleInformation(h uintptr) (flags uint32, err error) {
	ok, _, err := procGetHandleInformation.Call(h, uintptr(unsafe.Pointer(&flags)))
	if ok == 0 {
		return 0, err
	}
	return flags, nil
}

// OpenHandles counts the process's open handles.
func OpenHandles(t testing.TB) int {
	t.Helper()
	var n uint32
	ok, _, err := procGetProcessHandleCount.Call(uintptr(windows.CurrentProcess()), uintptr(unsafe.Pointer(&n)))
	if ok == 0 {
		t.Skipf("cannot count handles on this system: GetProcessHandleCount: %v", err)
	}
	return int(n)
}

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
