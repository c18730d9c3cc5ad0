//go:build unix && !linux

package tokenpipe

// reopenPrivate makes fd, an inherited pipe end opened with the access mode
// in flags, refer to an open file description of its own, non-blocking and
// close-on-exec, and reports whether it did. When it cannot, fd is as it was.
//
// Here it never can: /dev/fd on the BSDs and darwin duplicates a descriptor
// rather than opening the pipe afresh, so the end shares its description.
func reopenPrivate(fd, flags int) bool {
	return false
}
