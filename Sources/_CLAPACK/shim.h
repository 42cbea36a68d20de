// BLAS (CBLAS interface) and LAPACK (LAPACKE interface) from Debian's libopenblas-dev and
// liblapacke-dev. Implementation detail of SGDNoise: no stable API.
#ifndef SGDNOISE_CLAPACK_SHIM_H
#define SGDNOISE_CLAPACK_SHIM_H
#include <cblas.h>
#include <lapacke.h>
#endif
