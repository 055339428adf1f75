/* Template of the per-type kernels: included by lloyd.c once per type, with T, SUF(name), T_EPS,
 * TI and the AVX_* names defined; it undefines them at the end. */

#include "pass_impl.h"    /* the Lloyd pass: tk_pass */
#include "loop_impl.h"    /* the loop around it: tk_prepare, tk_gaps, tk_update, tk_lloyd */
#include "seeding_impl.h" /* moments, canonical order, k-means++ */
#include "sparse_impl.h"  /* sparse rows: products with the centers, per-cluster sums */
#include "batch_impl.h"   /* many problems of one shape, each fitted as one problem is */

#undef T
#undef SUF
#undef T_EPS
#undef TI
#undef AVX_VEC
#undef AVX_MIN
#undef AVX_MAX
#undef AVX_BLEND
