/* Native CPU kernels of torchkmeans: one Lloyd pass (assignment and accumulation) and the
 * steps of greedy k-means++.
 *
 * Compiled when the package is built (setup.py: a generic build and, on x86-64, an AVX2/FMA
 * build of this same file; C99 with GCC/Clang vector extensions, pthreads, no Python or torch
 * headers), loaded by torchkmeans/_engines/_library.py and called through ctypes, which
 * releases the GIL. The float and double versions come from lloyd_impl.h, included once per
 * type; constants shared with Python live in tk_constants.h.
 *
 * Assignment. Rows are gathered in groups and transposed to (feature, row), so that a SIMD
 * vector holds one feature of VL rows; a register tile of RV vectors x CT centers accumulates
 * with one FMA per feature, center and vector (the layout of a GEMM micro-kernel), and each row
 * keeps its best score, that center's index and its second-best score in its lane: no
 * horizontal reduction, and centers are visited in increasing index with a strict comparison,
 * so ties keep the lowest index. Two scorings exist:
 *   - exact:    ||x - c||^2 from differences of the values as given (small dimensions);
 *   - identity: ||c||^2 - 2 x.c on rows and centers shifted near the data; rows whose two best
 *               scores are within the identity's rounding error are re-decided from exact
 *               distances over all centers.
 * The distance returned for the chosen center is always recomputed from exact differences.
 *
 * Pruning (Hamerly). With the previous labels, each row's lower bound on its distance to every
 * other center, and each center's half gap to its nearest neighbour, a row whose exact distance
 * to its previous center is below both keeps its label without being scored.
 *
 * Accumulation. Per-cluster sums are float64 and added in row order, so they do not depend on
 * how rows are split into calls or threads: each thread owns a range of clusters and walks all
 * the labels, adding only the rows of its clusters.
 */
#include <math.h>
#if defined(__AVX__)
#include <immintrin.h>
#endif
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tk_constants.h"

/* Row vectors and centers per register tile. */
#define RV 2
#define CT 6
/* Bytes per SIMD vector (AVX2; narrower targets split them). */
#define VBYTES 32
/* Bytes of center coordinates scored per sweep of a row group (kept within L2). */
#define CENTER_BYTES (64 * 1024)
/* Bytes of shifted rows per group (kept within L1). */
#define GROUP_BYTES (16 * 1024)
/* Up to this many features, accumulation adds foreign rows to a scratch slot, branch-free. */
#define ACC_SCRATCH_D 16

int tk_abi_version(void) { return TK_ABI_VERSION; }

/* The instruction sets this build was compiled for (TK_ISA_* bits). */
int tk_compiled_features(void) {
#if defined(__AVX2__) && defined(__FMA__)
    return TK_ISA_AVX2_FMA;
#else
    return 0;
#endif
}

/* The instruction sets this processor (and its operating system) can run: the generic build
 * answers it, so the loader knows whether the AVX2/FMA build may be loaded. */
int tk_cpu_features(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? TK_ISA_AVX2_FMA : 0;
#else
    return 0;
#endif
}

typedef void *(*tk_worker)(void *);

/* Run fn(arg + i * size) for i in [0, n) on n threads (the calling thread runs the first). */
static int tk_parallel(tk_worker fn, void *args, size_t size, int n) {
    pthread_t threads[64];
    int started = 0;
    if (n > 64) n = 64;
    for (int i = 1; i < n; i++) {
        if (pthread_create(&threads[i], NULL, fn, (char *)args + (size_t)i * size) != 0) break;
        started = i;
    }
    fn(args);
    for (int i = 1; i <= started; i++) pthread_join(threads[i], NULL);
    /* threads that could not be started: run their share here */
    for (int i = started + 1; i < n; i++) fn((char *)args + (size_t)i * size);
    return 0;
}

#define T float
#define SUF(name) name##_f32
#define T_EPS 1.1920928955078125e-07
#define TI int32_t
#define AVX_VEC __m256
#define AVX_MIN _mm256_min_ps
#define AVX_MAX _mm256_max_ps
#define AVX_BLEND _mm256_blendv_ps
#include "lloyd_impl.h" /* (it undefines the parameters) */

#define T double
#define SUF(name) name##_f64
#define T_EPS 2.220446049250313e-16
#define TI int64_t
#define AVX_VEC __m256d
#define AVX_MIN _mm256_min_pd
#define AVX_MAX _mm256_max_pd
#define AVX_BLEND _mm256_blendv_pd
#include "lloyd_impl.h" /* (it undefines the parameters) */
