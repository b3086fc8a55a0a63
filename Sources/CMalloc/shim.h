#ifndef CMALLOC_SHIM_H
#define CMALLOC_SHIM_H
// glibc's malloc tuning (mallopt, M_ARENA_MAX), which Swift's Glibc module does not export. Part of libc: nothing
// to link.
#include <malloc.h>
#endif
