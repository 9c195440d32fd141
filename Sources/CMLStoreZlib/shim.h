#ifndef CMLSTORE_ZLIB_SHIM_H
#define CMLSTORE_ZLIB_SHIM_H
#include <zlib.h>

// deflateInit/inflateInit are macros Swift cannot import; expose them as functions.
static inline int CMLStoreZlib_deflateInit(z_streamp strm, int level) {
    return deflateInit(strm, level);
}
static inline int CMLStoreZlib_inflateInit(z_streamp strm) {
    return inflateInit(strm);
}
#endif
