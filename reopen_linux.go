//go:build linux

package tokenpipe

import (
	"strconv"

	"golang.org/x/sys/unix"
)

// reopen makes fd, an inherited pipe end opened with the access mode
// in flags, refer to an open file description of its own, non-blocking and
// close-on-exec, and reports whether it did. When it cannot, fd is as it was.
//
// An inherited descriptor shares its open file description, and with it
// O_NONBLOCK, with every other holder, the parent that exported it among
// them; a private one is changed by nobody else, so nothing can make it
// blocking under a read. Linux opens a pipe named in /proc/self/fd afresh
// (proc(5): the links "behave like" the files they point to; fifo(7)),
// which gives a new description of the same pipe, and dup3 puts it in fd's
// place in one step. It fails where /proc is not mounted, where the pipe's
// owner is another user (a daemon that dropped privileges), for the write
// end of a FIFO whose readers are gone (ENXIO; an anonymous pipe reopens),
// and where the inherited status flags cannot be set on the new
// description: then the end shares its description as before.
func reopen(fd, flags int) bool {
	mode := flags & unix.O_ACCMODE
	if flags&unix.O_PATH != 0 || (mode != unix.O_RDONLY && mode != unix.O_WRONLY) {
		return false // nothing to read or write through: importEnd refuses it
	}
	fresh, err := unix.Open("/proc/self/fd/"+strconv.Itoa(fd), mode|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fresh)
	var before, after unix.Stat_t
	if unix.Fstat(fd, &before) != nil || unix.Fstat(fresh, &after) != nil ||
		before.Dev != after.Dev || before.Ino != after.Ino {
		return false // not the same pipe (fd changed under us): leave fd alone
	}
	// open(2) takes only some status flags, and refuses O_DIRECT on a pipe
	// (EINVAL): give the new description those of the inherited one, as the
	// shared end keeps them, so that the peer sees the same pipe. O_DIRECT
	// is packet mode (pipe(7)): a parent that asked for it reads each write
	// of ours as one packet.
	if _, err := unix.FcntlInt(uintptr(fresh), unix.F_SETFL, flags|unix.O_NONBLOCK); err != nil {
		return false
	}
	return unix.Dup3(fresh, fd, unix.O_CLOEXEC) == nil
}
