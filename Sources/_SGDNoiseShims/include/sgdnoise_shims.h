// Thread-local storage for the C ABI's last-error state. Swift has no thread-local variables on
// Linux, C11 has. Implementation detail of SGDNoise: no stable API.
#ifndef SGDNOISE_SHIMS_H
#define SGDNOISE_SHIMS_H

#include <stddef.h>

#define SGDNOISE_SHIM_HIDDEN __attribute__((visibility("hidden")))

/// Stores a copy of `message` (truncated to the buffer) and `critical_lr` for the calling thread.
SGDNOISE_SHIM_HIDDEN void sgdnoise_shim_set_error(const char *message, double critical_lr);
/// The calling thread's last message ("" when none).
SGDNOISE_SHIM_HIDDEN const char *sgdnoise_shim_error_message(void);
/// The calling thread's last critical learning rate (NaN when unknown).
SGDNOISE_SHIM_HIDDEN double sgdnoise_shim_error_critical_lr(void);

#endif
