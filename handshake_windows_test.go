package tokenpipe

import (
	"testing"

	"golang.org/x/sys/windows"
)

// OpenPipes counts the process's open pipe handles. GetProcessHandleCount
// would count every handle, but Wine's returns 0, so this probes the small
// handle values that Windows and Wine hand out first, as /dev/fd lists them
// on Unix.
func OpenPipes(t testing.TB) int {
	t.Helper()
	n := 0
	for h := uintptr(4); h < 1<<14; h += 4 {
		if _, err := handleInformation(h); err != nil {
			continue
		}
		if ft, err := windows.GetFileType(windows.Handle(h)); err == nil && ft == windows.FILE_TYPE_PIPE {
			n++
		}
	}
	return n
}
