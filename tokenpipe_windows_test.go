package tokenpipe

import (
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
