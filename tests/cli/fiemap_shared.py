#!/usr/bin/env python3
"""Print "shared" if any extent of FILE is shared with another file, else "unshared".

Asks the kernel through the FS_IOC_FIEMAP ioctl (with FIEMAP_FLAG_SYNC, so delayed allocation is
flushed first) and looks for FIEMAP_EXTENT_SHARED, which XFS and btrfs set on reflinked extents.
Exit status 0 on either answer, 2 when the file cannot be mapped (e.g. the file system has no
FIEMAP). The tests use it to tell a reflinked file from a copy without trusting treesnap's report.
"""
import errno
import fcntl
import os
import stat
import struct
import sys

FS_IOC_FIEMAP = 0xC020660B
FIEMAP_FLAG_SYNC = 0x1
FIEMAP_EXTENT_LAST = 0x1
FIEMAP_EXTENT_SHARED = 0x2000

HEADER = struct.Struct("=QQIIII")        # fm_start, fm_length, fm_flags, mapped, count, reserved
EXTENT = struct.Struct("=QQQQQIIII")     # logical, physical, length, reserved64[2], flags, reserved[3]
BATCH = 64                               # extents asked for per ioctl


def extents(fd):
    """Yields (logical, length, flags) of every extent, in order."""
    start = 0
    while True:
        request = bytearray(HEADER.pack(start, 2**64 - 1 - start, FIEMAP_FLAG_SYNC, 0, BATCH, 0))
        request += bytes(EXTENT.size * BATCH)
        fcntl.ioctl(fd, FS_IOC_FIEMAP, request, True)
        mapped = HEADER.unpack_from(request, 0)[3]
        if mapped == 0:
            return
        for i in range(mapped):
            logical, _, length, _, _, flags, *_ = EXTENT.unpack_from(request, HEADER.size + i * EXTENT.size)
            yield logical, length, flags
            if flags & FIEMAP_EXTENT_LAST:
                return
        start = logical + length


def main():
    if len(sys.argv) != 2:
        print("usage: fiemap_shared.py FILE", file=sys.stderr)
        return 2
    try:
        # O_NONBLOCK and the check keep a FIFO given by mistake from hanging the test.
        fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, "not a regular file")
            shared = any(flags & FIEMAP_EXTENT_SHARED for _, _, flags in extents(fd))
        finally:
            os.close(fd)
    except OSError as error:
        print(f"fiemap_shared.py: {sys.argv[1]}: {error}", file=sys.stderr)
        return 2
    print("shared" if shared else "unshared")
    return 0


if __name__ == "__main__":
    sys.exit(main())
