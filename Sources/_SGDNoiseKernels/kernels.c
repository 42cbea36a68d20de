// SGDNoise's memory-bound kernels, with a run-time choice of instruction set.
//
// What: the one-vector products of the noise operator, G_c x and G_cᵀ u with G_c = G − 1ḡᵀ the
// centred N × D gradients (NoiseOperator.apply, CentredGradients.swift), and the chunk moments of
// the accumulator: column sums and sums of squares, and the centring of rows before each SYRK
// (NoiseAccumulator.swift, GradientMoments.swift). Gradients may be float or double; float entries
// are widened to double as they are loaded and every product and sum is in double, exactly as in
// the Swift code these kernels replace (never a float accumulation).
//
// Why: Swift compiles for the baseline x86-64 target, SSE2: two doubles per instruction and no FMA.
// G_c x then G_cᵀ u on float32 gradients took about 1.3 times two float32 numpy matrix-vector
// products (the same bytes read, by OpenBLAS's AVX2 kernels): widening and multiplying two doubles
// per instruction could not keep up with memory. Compiled for AVX2 + FMA, the same text converts
// and multiplies four doubles per instruction (with one rounding per product and sum). Shapes: G_c x takes four rows per sweep (four dot products sharing each
// load of x, two accumulators each); G_cᵀ u eight rows per sweep (eight scaled rows added into each
// load of w, kept in registers for four columns); both prefetch every row SGN_PREFETCH_BYTES ahead
// and work on tiles of SGN_KERNELS_TILE_COLUMNS columns. The order of every sum is fixed by the
// sizes alone (never by threads): callers split columns (or rows) into fixed ranges.
//
// Dispatch rule: once per process, at the first call of sgn_kernels_active(): the AVX2 + FMA
// implementation when CPUID reports AVX, AVX2 and FMA and the operating system saves the YMM
// registers (OSXSAVE, XCR0 bits 1 and 2); the baseline one otherwise, on other architectures, or
// when the environment variable SGDNOISE_KERNELS is "baseline" (read at that first call; any other
// value means "the best available"). Both give the same results up to rounding (the FMA rounds
// once where the baseline rounds twice, and the partial sums are grouped alike): the Swift tests
// check them against each other on awkward sizes.
//
// The Lanczos steps' fused vector kernels (krylov_body.h) are compiled and dispatched the same way.
//
// Every symbol is hidden (SGN_KERNELS_HIDDEN): libsgdnoise.so exports only the functions of
// include/sgdnoise.h.
#include "sgdnoise_kernels.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define SGN_HAVE_X86 1
#endif

#pragma STDC FP_CONTRACT ON

// Bytes ahead of the current column that every row is prefetched (software prefetch keeps up to
// eight row streams in flight, more than the hardware prefetchers follow at once). Measured on a
// 2-core Zen 3 (N = 512, P = 10⁶, float): 512 bytes beat 1, 2 and 4 KiB, whose lines (eight rows,
// two threads) were partly evicted from the 32 KiB L1 before use.
#ifndef SGN_PREFETCH_BYTES
#define SGN_PREFETCH_BYTES 512
#endif
#ifndef SGN_PREFETCH
#define SGN_PREFETCH(p) __builtin_prefetch(p)
#endif

// Vectors of four doubles (one AVX register, two SSE2 ones), and unaligned, aliasing views of
// memory as such vectors. The helpers are macros, not functions: a function taking or returning a
// v4d would have a different calling convention in the two targets.
typedef double v4d __attribute__((vector_size(32)));
typedef double v4d_unaligned __attribute__((vector_size(32), aligned(sizeof(double)), may_alias));
typedef float v4f_unaligned __attribute__((vector_size(16), aligned(sizeof(float)), may_alias));

#define sgn_load4(p) (*(const v4d_unaligned *)(p))
#define sgn_store4(p, v) (*(v4d_unaligned *)(p) = (v))
#define sgn_widen4f(p) __builtin_convertvector(*(const v4f_unaligned *)(p), v4d)
#define sgn_splat4(x) ((v4d){0, 0, 0, 0} + (x))
#define sgn_sum4(v) __extension__({ const v4d s_ = (v); (s_[0] + s_[1]) + (s_[2] + s_[3]); })

// The baseline implementation: the compiler's default target (SSE2 on x86-64).
#define SGN_T float
#define SGN_TAG f32_baseline
#define SGN_WIDEN4(p) sgn_widen4f(p)
#include "kernels_body.h"
#undef SGN_T
#undef SGN_TAG
#undef SGN_WIDEN4

#define SGN_T double
#define SGN_TAG f64_baseline
#define SGN_WIDEN4(p) sgn_load4(p)
#include "kernels_body.h"
#undef SGN_T
#undef SGN_TAG
#undef SGN_WIDEN4

#define SGN_KTAG baseline
#include "krylov_body.h"
#undef SGN_KTAG

static const sgn_kernels baseline = {
    "baseline",
    centred_dot_f32_baseline, centred_dot_f64_baseline,
    centred_axpy_f32_baseline, centred_axpy_f64_baseline,
    column_moments_f32_baseline, column_moments_f64_baseline,
    centre_rows_f32_baseline, centre_rows_f64_baseline,
    lanczos_dots_baseline, combine_project_baseline, subtract_scale_baseline, project_rows_baseline,
    combine_rows_baseline,
};

const sgn_kernels *sgn_kernels_baseline(void) { return &baseline; }

#ifdef SGN_HAVE_X86
// The AVX2 + FMA implementation: the same text, every function of it compiled for that target.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

#define SGN_T float
#define SGN_TAG f32_avx2
#define SGN_WIDEN4(p) sgn_widen4f(p)
#include "kernels_body.h"
#undef SGN_T
#undef SGN_TAG
#undef SGN_WIDEN4

#define SGN_T double
#define SGN_TAG f64_avx2
#define SGN_WIDEN4(p) sgn_load4(p)
#include "kernels_body.h"
#undef SGN_T
#undef SGN_TAG
#undef SGN_WIDEN4

#define SGN_KTAG avx2
#include "krylov_body.h"
#undef SGN_KTAG

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

static const sgn_kernels avx2 = {
    "avx2",
    centred_dot_f32_avx2, centred_dot_f64_avx2,
    centred_axpy_f32_avx2, centred_axpy_f64_avx2,
    column_moments_f32_avx2, column_moments_f64_avx2,
    centre_rows_f32_avx2, centre_rows_f64_avx2,
    lanczos_dots_avx2, combine_project_avx2, subtract_scale_avx2, project_rows_avx2,
    combine_rows_avx2,
};

// AVX, AVX2 and FMA in CPUID, and the YMM state enabled by the operating system.
static int cpu_has_avx2_fma(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!(c & bit_FMA) || !(c & bit_AVX) || !(c & bit_OSXSAVE)) return 0;
    unsigned xcr0_lo, xcr0_hi;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    if ((xcr0_lo & 6) != 6) return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (b & bit_AVX2) != 0;
}

const sgn_kernels *sgn_kernels_avx2(void) { return cpu_has_avx2_fma() ? &avx2 : NULL; }
#else
const sgn_kernels *sgn_kernels_avx2(void) { return NULL; }
#endif

static _Atomic(const sgn_kernels *) active = NULL;

const sgn_kernels *sgn_kernels_active(void) {
    const sgn_kernels *k = atomic_load_explicit(&active, memory_order_acquire);
    if (k) return k;
    // Racing first calls all choose the same implementation; any one of them may publish it.
    const char *choice = getenv("SGDNOISE_KERNELS");
    k = choice && strcmp(choice, "baseline") == 0 ? NULL : sgn_kernels_avx2();
    if (!k) k = &baseline;
    atomic_store_explicit(&active, k, memory_order_release);
    return k;
}
