#ifndef CMLSTORE_SYS_SHIM_H
#define CMLSTORE_SYS_SHIM_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>

// Linux-only calls that glibc declares under _GNU_SOURCE only.
static inline int CMLStoreSys_startWriteBack(int fd, long long offset, long long length) {
#ifdef __linux__
    return sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE);
#else
    return 0;
#endif
}
#endif
