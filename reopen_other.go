//go:build unix && !linux

package tokenpipe

// reopen never can here: /dev/fd on the BSDs and darwin duplicates a
// descriptor rather than opening the pipe afresh, so the end shares its
// description.
func reopen(fd, flags int) bool { return false }
