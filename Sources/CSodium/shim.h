#ifndef CSODIUM_SHIM_H
#define CSODIUM_SHIM_H
// libsodium (Debian libsodium-dev): NaCl crypto_box for Proca's encrypted personal data.
#include <sodium.h>
#endif
