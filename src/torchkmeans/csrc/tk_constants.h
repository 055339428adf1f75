/* Constants shared by the native kernels and their Python side.
 *
 * This header is the one place they are written: the C sources include it, and
 * torchkmeans/_engines/_constants.py reads its "#define TK_..." lines when the package is
 * imported (it ships with the package), so the two can never disagree. Keep every definition
 * on one line, as "#define TK_NAME <integer or decimal literal>".
 */
#ifndef TK_CONSTANTS_H
#define TK_CONSTANTS_H

/* Version of the calling convention; the loader refuses a library that reports another. */
#define TK_ABI_VERSION 8
/* Relative safety margin of the pruning tests (rounding in the distances and bounds). */
#define TK_PRUNE_MARGIN 1e-5
/* Up to this many features, rows are scored by exact differences ||x - c||^2; above, by the
 * GEMM identity ||c||^2 - 2 x.c with near ties re-decided exactly. */
#define TK_EXACT_MAX_D 16
/* Rows per stripe of the fused (per-stripe) accumulation and of the k-means++ gains. */
#define TK_STRIPE_ROWS 8192
/* Values per iteration in the history buffer of tk_lloyd: inertia, center shift, changed,
 * relocated, seconds. */
#define TK_HISTORY_FIELDS 5
/* tk_lloyd modes: a full iteration; finish an iteration whose pass is done (after a
 * relocation); one assignment pass without an update. */
#define TK_MODE_ITERATE 0
#define TK_MODE_FINISH 1
#define TK_MODE_ASSIGN 2
/* tk_lloyd statuses: the iterations asked for were done; the stop rule held; the pass of the
 * next iteration left a cluster empty (relocation is Python's). */
#define TK_STATUS_RAN 0
#define TK_STATUS_STOPPED 1
#define TK_STATUS_EMPTY 2
/* Iterations per tk_lloyd call at most (the history buffer of a call stays small). */
#define TK_LOOP_CALL 1024
/* tk_fit_many, per problem: fitted; a pass left a cluster empty (its state is kept: the caller
 * refills the cluster and resumes the problem); memory ran out. */
#define TK_BATCH_DONE 0
#define TK_BATCH_REFILL 1
#define TK_BATCH_NO_MEMORY -1
/* Instruction-set bits reported by tk_cpu_features and tk_compiled_features. */
#define TK_ISA_AVX2_FMA 1

#endif
