#ifndef CSQLITETUNING_SHIM_H
#define CSQLITETUNING_SHIM_H
// Process-wide SQLite settings, which only sqlite3_config sets. sqlite3_config is variadic, which Swift cannot
// call: each setting gets a static inline wrapper here. They must run before SQLite initializes (the first
// connection opened); after that they return SQLITE_MISUSE and change nothing.
#include <sqlite3.h>

// Turns off SQLite's memory statistics (sqlite3_memory_used and friends, which nothing here reads). While they are
// on, every allocation SQLite makes takes a process-wide mutex to count it, and Debian's SQLite is built without
// the lookaside allocator, so every small allocation goes to malloc through that mutex.
static inline int crm_sqlite_disable_memory_statistics(void) {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}
#endif
