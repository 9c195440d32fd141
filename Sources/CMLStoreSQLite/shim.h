#ifndef CMLSTORE_SQLITE_SHIM_H
#define CMLSTORE_SQLITE_SHIM_H
#include <sqlite3.h>

// SQLITE_TRANSIENT is a macro casting -1 to a function pointer; Swift cannot import it.
static inline void *CMLStoreSQLite_transient(void) { return (void *)-1; }
#endif
