package tokenpipe

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/windows"
)

const maxEndValue = math.MaxUint // a handle is a pointer

func (s *sysFile) export(cmd *exec.Cmd) (string, error) {
	if cmd.SysProcAttr != nil && cmd.SysProcAttr.NoInheritHandles {
		return "", fmt.Errorf("cmd.SysProcAttr.NoInheritHandles is set, so the child would inherit no handle: %w", os.ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.shutError(); err != nil {
		return "", err
	}
	s.exported = true
	s.waitIdle()
	if s.closing { // a close came while we waited: h may be closed already
		return "", os.ErrClosed
	}
	// PROC_THREAD_ATTRIBUTE_HANDLE_LIST, which os/exec uses, takes only
	// inheritable handles (Wine does not check this; Windows does), and it
	// keeps the handle out of every child but cmd's:
	// https://learn.microsoft.com/windows/win32/api/processthreadsapi/nf-processthreadsapi-updateprocthreadattribute
	err := windows.SetHandleInformation(s.h, windows.HANDLE_FLAG_INHERIT, windows.HANDLE_FLAG_INHERIT)
	if err != nil {
		s.exported = false // e stays as it was
		return "", os.NewSyscallError("SetHandleInformation", err)
	}
	// cmd names the handle by value alone, so nothing keeps the end alive
	// for it: were it dropped before Start, the collector would close the
	// handle under cmd, and the value might name something else by Start.
	// From here only close closes it.
	s.cleanup.Stop()
	// A copy of the caller's attributes, and a new array for the handles:
	// both may be shared with another Cmd (TestExportToSharedExtraFiles).
	attr := new(syscall.SysProcAttr)
	if cmd.SysProcAttr != nil {
		*attr = *cmd.SysProcAttr
	}
	attr.AdditionalInheritedHandles = append(slices.Clip(attr.AdditionalInheritedHandles), syscall.Handle(s.h))
	cmd.SysProcAttr = attr
	// An inherited handle has the same value in the child.
	return strconv.FormatUint(uint64(s.h), 10), nil
}

func importEnd(n uint64) (*sysFile, error) {
	// Windows ignores the two low bits of a handle value, so n+1, n+2 and
	// n+3 would name n's handle too, and dodge every check made of n:
	// https://learn.microsoft.com/windows/win32/sysinfo/kernel-objects
	// ("the lower 2 bits of a handle value ... are not used"); a handle that
	// ExportTo passes is always a multiple of four.
	if n&3 != 0 {
		return nil, fmt.Errorf("%d is not a handle value: those are multiples of 4: %w", n, os.ErrInvalid)
	}
	h := windows.Handle(n)
	for _, std := range []uint32{windows.STD_INPUT_HANDLE, windows.STD_OUTPUT_HANDLE, windows.STD_ERROR_HANDLE} {
		if sh, err := windows.GetStdHandle(std); err == nil && sh == h && h != 0 {
			return nil, fmt.Errorf("handle %d is standard input, output or error, never an exported end: %w", n, os.ErrInvalid)
		}
	}
	t, err := windows.GetFileType(h)
	if err != nil {
		// As for a closed handle, so for one of an object that is no file,
		// such as an event or a process. TestFromEnvRefusesAnEvent.
		return nil, fmt.Errorf("handle %d is not open, or not a file: %w: %w", n, os.NewSyscallError("GetFileType", err), os.ErrInvalid)
	}
	if t != windows.FILE_TYPE_PIPE {
		return nil, fmt.Errorf("handle %d is a %s, not a pipe: %w", n, fileType(t), os.ErrInvalid)
	}
	if err := checkAccess(h); err != nil {
		return nil, fmt.Errorf("handle %d %w: %w", n, err, os.ErrInvalid)
	}
	// A socket is FILE_TYPE_PIPE too; GetNamedPipeInfo tells them apart, as
	// anonymous pipes are named pipes underneath:
	// https://learn.microsoft.com/windows/win32/ipc/anonymous-pipes
	var flags uint32
	if err := windows.GetNamedPipeInfo(h, &flags, nil, nil, nil); err != nil {
		return nil, fmt.Errorf("handle %d is not a pipe (a socket?): GetNamedPipeInfo: %v: %w", n, err, os.ErrInvalid)
	}
	// In no-wait mode ReadFile on an empty pipe and WriteFile on a full one
	// return at once: nothing could wait for a token.
	var state uint32
	if err := windows.GetNamedPipeHandleState(h, &state, nil, nil, nil, nil, 0); err == nil && state&windows.PIPE_NOWAIT != 0 {
		return nil, fmt.Errorf("handle %d is a pipe in no-wait mode (PIPE_NOWAIT), in which no read can wait for a token: %w", n, os.ErrInvalid)
	}
	if err := checkSynchronous(h); err != nil {
		return nil, fmt.Errorf("handle %d %w: %w", n, err, os.ErrInvalid)
	}
	if err := windows.SetHandleInformation(h, windows.HANDLE_FLAG_INHERIT, 0); err != nil {
		return nil, fmt.Errorf("handle %d: %w: %w", n, os.NewSyscallError("SetHandleInformation", err), os.ErrInvalid)
	}
	return newSysFile(h), nil
}

// checkAccess says what access h lacks for importEnd to take it, completing
// "handle N ...", or returns nil.
//
// A handle can be opened, or duplicated, with no access to the pipe's data,
// as with FILE_READ_ATTRIBUTES|SYNCHRONIZE alone (Windows' O_PATH, which
// Linux refuses too): every ReadFile and WriteFile through it fails with
// ERROR_ACCESS_DENIED, so it could never carry a token. And GetNamedPipeInfo
// and GetNamedPipeHandleState, which importEnd needs to tell a pipe from a
// socket and to see its wait mode, need FILE_READ_ATTRIBUTES ("If the client
// must read pipe settings by calling the GetNamedPipeInfo or
// GetNamedPipeHandleState functions, the client must specify GENERIC_WRITE
// and FILE_READ_ATTRIBUTES access":
// https://learn.microsoft.com/windows/win32/api/winbase/nf-winbase-createnamedpipea);
// without it they fail with ERROR_ACCESS_DENIED, which is no sign of a
// socket. Only NtQueryObject tells the access a handle was granted.
// TestFromEnvRefusesHandleWithoutAccess.
func checkAccess(h windows.Handle) error {
	var info objectBasicInformation
	status, _, _ := procNtQueryObject.Call(uintptr(h), objectBasicInformationClass,
		uintptr(unsafe.Pointer(&info)), unsafe.Sizeof(info), 0)
	if s := windows.NTStatus(uint32(status)); s != windows.STATUS_SUCCESS {
		return fmt.Errorf("cannot be checked for access: NtQueryObject: %w", s)
	}
	switch a := info.GrantedAccess; {
	case a&(windows.FILE_READ_DATA|windows.FILE_WRITE_DATA) == 0:
		return fmt.Errorf("has neither FILE_READ_DATA nor FILE_WRITE_DATA access (granted %#x), so no token can be read or written through it", a)
	case a&windows.FILE_READ_ATTRIBUTES == 0:
		return fmt.Errorf("lacks FILE_READ_ATTRIBUTES access (granted %#x), which GetNamedPipeInfo needs to tell a pipe from a socket", a)
	}
	return nil
}

// checkSynchronous says why h is no handle for synchronous I/O, completing
// "handle N ...", or returns nil.
//
// A handle opened for overlapped I/O (FILE_FLAG_OVERLAPPED, as a .NET
// parent's PipeOptions.Asynchronous gives) cannot be read or written without
// an OVERLAPPED: ReadFile "can incorrectly report that the read operation is
// complete" while the read is still queued with our buffer:
// https://learn.microsoft.com/windows/win32/api/fileapi/nf-fileapi-readfile
// Wine returns ERROR_IO_PENDING instead, to the same effect: of two reads
// under way, both woke when one completed, and the other returned while its
// read stayed queued and later took a token into a buffer nobody read.
// Nothing makes such a handle synchronous later, nor the other way round
// ([MS-FSA] 2.1.5.15.7, FileModeInformation), so this check holds for the
// end's life. FILE_MODE_INFORMATION tells which kind h is:
// https://learn.microsoft.com/windows-hardware/drivers/ddi/ntifs/ns-ntifs-_file_mode_information
// TestFromEnvRefusesOverlappedHandle.
func checkSynchronous(h windows.Handle) error {
	var mode uint32 // FILE_MODE_INFORMATION
	var iosb windows.IO_STATUS_BLOCK
	err := windows.NtQueryInformationFile(h, &iosb, (*byte)(unsafe.Pointer(&mode)), uint32(unsafe.Sizeof(mode)), fileModeInformation)
	switch {
	case err != nil:
		return fmt.Errorf("cannot be checked for overlapped I/O: NtQueryInformationFile: %w", err)
	case mode&(windows.FILE_SYNCHRONOUS_IO_ALERT|windows.FILE_SYNCHRONOUS_IO_NONALERT) == 0:
		return errors.New("was opened for overlapped I/O (FILE_FLAG_OVERLAPPED), which ReadFile and WriteFile without an OVERLAPPED cannot use safely")
	}
	return nil
}

// fileModeInformation is FileModeInformation in FILE_INFORMATION_CLASS,
// which x/sys/windows lacks.
const fileModeInformation = 16

// procNtQueryObject is NtQueryObject, which x/sys/windows lacks:
// https://learn.microsoft.com/windows/win32/api/winternl/nf-winternl-ntqueryobject
var procNtQueryObject = windows.NewLazySystemDLL("ntdll.dll").NewProc("NtQueryObject")

// objectBasicInformationClass asks NtQueryObject for an
// objectBasicInformation (ObjectBasicInformation in OBJECT_INFORMATION_CLASS).
const objectBasicInformationClass = 0

// objectBasicInformation is PUBLIC_OBJECT_BASIC_INFORMATION:
// https://learn.microsoft.com/windows-hardware/drivers/ddi/ntifs/ns-ntifs-_public_object_basic_information
type objectBasicInformation struct {
	Attributes    uint32
	GrantedAccess uint32
	HandleCount   uint32
	PointerCount  uint32
	Reserved      [10]uint32
}

func envKeyEqual(a, b string) bool {
	return strings.EqualFold(a, b) // Windows ignores case in names
}

func fileType(t uint32) string {
	switch t {
	case windows.FILE_TYPE_DISK:
		return "disk file"
	case windows.FILE_TYPE_CHAR:
		return "character device"
	case windows.FILE_TYPE_REMOTE:
		return "remote file"
	}
	return "handle of unknown type"
}
