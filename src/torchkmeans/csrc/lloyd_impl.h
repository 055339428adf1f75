/* Template of the per-type kernels: included by lloyd.c with T, SUF(name) and T_EPS defined. */

typedef struct {
    int64_t n, d, k;
    const T *x;
    int64_t ldx;
    const T *w;
    const T *shift;
    const T *c;    /* shifted centers (GEMM identity) */
    const T *craw; /* centers as given (exact distances) */
    const T *csq;
    T csq_max;
    const int64_t *prev;
    const T *gaps;
    const double *lower_in;
    double *lower_out;
    double drift;
    int64_t *labels;
    T *dist;
    double *sums, *weights, *counts, *inertia;
    /* per thread */
    int exact;
    int thread, nthreads;
    int64_t row0, row1;
    int64_t changed;
    /* fused accumulation: rows of global stripe s (rows [s B, (s + 1) B)) are summed into
     * partials + (s - stripe0) * k * (d + 3), each from zero, in row order */
    int64_t base_row, stripe, stripe0;
    double *partials;
} SUF(tk_args);

/* SIMD vectors of T and the matching integer lanes (GCC/Clang vector extensions, lowered to
 * whatever the target has). */
typedef T SUF(vec) __attribute__((vector_size(VBYTES)));
typedef TI SUF(ivec) __attribute__((vector_size(VBYTES)));
enum { SUF(VL) = VBYTES / sizeof(T) };

static inline SUF(vec) SUF(vload)(const T *p) {
    SUF(vec) v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* a < b ? a : b, a > b ? a : b and m ? a : b lane by lane: one instruction each on AVX. */
#if defined(__AVX__) && VBYTES == 32
static inline SUF(vec) SUF(vmin)(SUF(vec) a, SUF(vec) b) { return (SUF(vec))AVX_MIN(a, b); }
static inline SUF(vec) SUF(vmax)(SUF(vec) a, SUF(vec) b) { return (SUF(vec))AVX_MAX(a, b); }
static inline SUF(ivec) SUF(iblend)(SUF(ivec) m, SUF(ivec) a, SUF(ivec) b) {
    return (SUF(ivec))AVX_BLEND((AVX_VEC)b, (AVX_VEC)a, (AVX_VEC)m);
}
#else
static inline SUF(vec) SUF(vmin)(SUF(vec) a, SUF(vec) b) {
    const SUF(ivec) m = a < b;
    return (SUF(vec))((m & (SUF(ivec))a) | (~m & (SUF(ivec))b));
}
static inline SUF(vec) SUF(vmax)(SUF(vec) a, SUF(vec) b) {
    const SUF(ivec) m = a > b;
    return (SUF(vec))((m & (SUF(ivec))a) | (~m & (SUF(ivec))b));
}
static inline SUF(ivec) SUF(iblend)(SUF(ivec) m, SUF(ivec) a, SUF(ivec) b) {
    return (m & a) | (~m & b);
}
#endif

static inline SUF(ivec) SUF(iload)(const TI *p) {
    SUF(ivec) v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* Score a group of g rows (g a multiple of VL * RV), held transposed (feature, row) in xt
 * with row stride ld,
 * against centers [k0, k1), updating each row's best score, its center and the second-best
 * score. Rows run along the SIMD lanes; centers are visited in increasing index, CT at a time,
 * and a center replaces the best only when strictly better, so ties keep the lowest index. */
static inline __attribute__((always_inline)) void SUF(score_block)(
    const SUF(tk_args) *a, const T *xt, int64_t ld, int64_t g, int64_t k0, int64_t k1, T *bv,
    TI *bi, T *sv, const int exact, const int64_t d) {
    const T *cen = exact ? a->craw : a->c;
    enum { VL = SUF(VL) };
    typedef SUF(vec) V;
    typedef SUF(ivec) I;
    for (int64_t r0 = 0; r0 < g; r0 += VL * RV) {
        V best[RV], second[RV];
        I idx[RV];
        for (int v = 0; v < RV; v++) {
            best[v] = SUF(vload)(bv + r0 + v * VL);
            second[v] = SUF(vload)(sv + r0 + v * VL);
            idx[v] = SUF(iload)(bi + r0 + v * VL);
        }
        int64_t k = k0;
        for (; k < k1; k += CT) {
            const int ct = k1 - k < CT ? (int)(k1 - k) : CT;
            V acc[CT][RV];
            for (int c = 0; c < CT; c++)
                for (int v = 0; v < RV; v++) acc[c][v] = (V){0};
            const T *cp[CT];
            for (int c = 0; c < CT; c++) cp[c] = cen + (k + (c < ct ? c : 0)) * d;
            for (int64_t j = 0; j < d; j++) {
                V xv[RV];
                for (int v = 0; v < RV; v++) xv[v] = SUF(vload)(xt + j * ld + r0 + v * VL);
                for (int c = 0; c < CT; c++) {
                    const T cj = cp[c][j];
                    for (int v = 0; v < RV; v++) {
                        if (exact) {
                            const V t = xv[v] - cj;
                            acc[c][v] += t * t;
                        } else {
                            acc[c][v] += xv[v] * cj;
                        }
                    }
                }
            }
            for (int c = 0; c < ct; c++) {
                const I kv = (I){0} + (TI)(k + c);
                const T off = exact ? (T)0 : a->csq[k + c];
                for (int v = 0; v < RV; v++) {
                    const V s = exact ? acc[c][v] : off - 2 * acc[c][v];
                    const V b = best[v];
                    /* second = min(second, max(s, best)); best = min(s, best) (strict: an
                     * equal score keeps the earlier center); idx follows best */
                    const I lt = s < b;
                    second[v] = SUF(vmin)(SUF(vmax)(s, b), second[v]);
                    best[v] = SUF(vmin)(s, b);
                    idx[v] = SUF(iblend)(lt, kv, idx[v]);
                }
            }
        }
        for (int v = 0; v < RV; v++) {
            memcpy(bv + r0 + v * VL, &best[v], sizeof(V));
            memcpy(sv + r0 + v * VL, &second[v], sizeof(V));
            memcpy(bi + r0 + v * VL, &idx[v], sizeof(I));
        }
    }
}

/* ||a - b||^2 (or ||a||^2 without b) with SIMD partial sums folded in a fixed order: the value
 * depends only on the vectors, never on where they sit. */
static inline __attribute__((always_inline)) T SUF(sqdiff)(const T *a, const T *b, int64_t d,
                                                           const int with_b) {
    enum { VL = SUF(VL) };
    typedef SUF(vec) V;
    T s = 0;
    int64_t j = 0;
    if (d >= 2 * VL) {
        V acc0 = (V){0}, acc1 = (V){0};
        for (; j + 2 * VL <= d; j += 2 * VL) {
            V t0 = SUF(vload)(a + j), t1 = SUF(vload)(a + j + VL);
            if (with_b) {
                t0 -= SUF(vload)(b + j);
                t1 -= SUF(vload)(b + j + VL);
            }
            acc0 += t0 * t0;
            acc1 += t1 * t1;
        }
        acc0 += acc1;
        T lanes[VL];
        memcpy(lanes, &acc0, sizeof(acc0));
        for (int l = 0; l < VL; l++) s += lanes[l];
    }
    for (; j < d; j++) {
        const T t = with_b ? a[j] - b[j] : a[j];
        s += t * t;
    }
    return s;
}

static inline T SUF(sqdist)(const T *a, const T *b, int64_t d) { return SUF(sqdiff)(a, b, d, 1); }

static inline T SUF(sqnorm)(const T *a, int64_t d) { return SUF(sqdiff)(a, a, d, 0); }

/* Add row i to the statistics s (weight, count, inertia, then d sums of the shifted row). */
static inline __attribute__((always_inline)) void SUF(add_row)(const SUF(tk_args) *a,
                                                               double *restrict s, int64_t i,
                                                               const int64_t d, int with_sums) {
    const T *sh = a->shift;
    const double wi = a->w ? (double)a->w[i] : 1.0;
    s[0] += wi;
    s[1] += wi > 0 ? 1.0 : 0.0;
    s[2] += a->w ? (double)a->dist[i] * wi : (double)a->dist[i];
    if (!with_sums) return;
    const T *restrict src = a->x + i * a->ldx;
    double *restrict sr = s + 3;
    if (a->w && sh) {
        for (int64_t j = 0; j < d; j++) sr[j] += (double)(T)(src[j] - sh[j]) * wi;
    } else if (a->w) {
        for (int64_t j = 0; j < d; j++) sr[j] += (double)src[j] * wi;
    } else if (sh) {
        for (int64_t j = 0; j < d; j++) sr[j] += (double)(T)(src[j] - sh[j]);
    } else {
        for (int64_t j = 0; j < d; j++) sr[j] += (double)src[j];
    }
}

/* Add rows [r0, r1) to their stripes' partial statistics (fused accumulation), in row order. */
static inline __attribute__((always_inline)) void SUF(add_to_stripes)(const SUF(tk_args) *a,
                                                                      int64_t r0, int64_t r1,
                                                                      const int64_t d) {
    const int64_t width = d + 3;
    for (int64_t i = r0; i < r1; i++) {
        const int64_t stripe = (a->base_row + i) / a->stripe - a->stripe0;
        double *restrict s = a->partials + (stripe * a->k + a->labels[i]) * width;
        SUF(add_row)(a, s, i, d, 1);
    }
}

/* The assignment of a thread's rows (inlined with a constant d for small dimensions). */
static inline __attribute__((always_inline)) void SUF(assign_rows)(SUF(tk_args) *a,
                                                                   const int64_t d) {
    enum { STEP = SUF(VL) * RV };
    int64_t gm = GROUP_BYTES / (int64_t)(d * sizeof(T));
    gm = gm / STEP * STEP;
    if (gm < STEP) gm = STEP;
    if (gm > 512) gm = 512;
    /* centers per sweep of a group: their coordinates stay in cache */
    int64_t kblock = CENTER_BYTES / (int64_t)(d * sizeof(T));
    if (kblock < CT) kblock = CT;
    T *xb = (T *)malloc((size_t)(gm * d) * sizeof(T));
    T *xt = (T *)malloc((size_t)(gm * d) * sizeof(T));
    T *bv = (T *)malloc((size_t)gm * sizeof(T));
    T *sv = (T *)malloc((size_t)gm * sizeof(T));
    TI *bi = (TI *)malloc((size_t)gm * sizeof(TI));
    int64_t *rows = (int64_t *)malloc((size_t)gm * sizeof(int64_t));
    if (!xb || !xt || !bv || !sv || !bi || !rows) {
        a->changed = -1;
        goto done;
    }
    const T eps = (T)(T_EPS * 4.0 * (d > 1 ? sqrt((double)d) : 1.0));
    const double up2 = (1.0 + TK_PRUNE_MARGIN) * (1.0 + TK_PRUNE_MARGIN);
    const T zero_shift[1] = {0};
    int64_t changed = 0;
    int64_t i = a->row0;
    while (i < a->row1) {
        /* gather the rows to score, transposed to (feature, row) with stride gm */
        const int64_t group_begin = i;
        int64_t g = 0;
        for (; i < a->row1 && g < gm; i++) {
            const T *src = a->x + i * a->ldx;
            if (a->gaps) {
                const int64_t q = a->prev[i];
                if (q >= 0) {
                    /* Hamerly: keep the label when the distance to the previous center is
                     * below the row's lower bound and the center's half gap */
                    const T e = SUF(sqdist)(src, a->craw + q * d, d);
                    const double lo = a->lower_in[i] - a->drift;
                    const double gp = (double)a->gaps[q];
                    const double m = lo > gp ? lo : gp;
                    if (m > 0 && (double)e * up2 < m * m) {
                        if (a->labels != a->prev) a->labels[i] = q;
                        a->dist[i] = e;
                        continue;
                    }
                }
            }
            /* exact scoring reads rows as given; the GEMM identity reads them shifted */
            const T *sh = a->shift && !a->exact ? a->shift : zero_shift;
            const int64_t shs = a->shift && !a->exact ? 1 : 0;
            for (int64_t j = 0; j < d; j++) xt[j * gm + g] = src[j] - sh[j * shs];
            if (!a->exact)
                for (int64_t j = 0; j < d; j++) xb[g * d + j] = src[j] - sh[j * shs];
            rows[g++] = i;
        }
        if (g == 0) {
            if (a->partials) SUF(add_to_stripes)(a, group_begin, i, d);
            continue;
        }
        const int64_t gp = (g + STEP - 1) / STEP * STEP;
        for (int64_t j = 0; j < d; j++)
            for (int64_t r = g; r < gp; r++) xt[j * gm + r] = xt[j * gm];
        for (int64_t r = 0; r < gp; r++) {
            bv[r] = (T)INFINITY;
            sv[r] = (T)INFINITY;
            bi[r] = 0;
        }
        for (int64_t k0 = 0; k0 < a->k; k0 += kblock) {
            const int64_t k1 = k0 + kblock < a->k ? k0 + kblock : a->k;
            if (a->exact)
                SUF(score_block)(a, xt, gm, gp, k0, k1, bv, bi, sv, 1, d);
            else
                SUF(score_block)(a, xt, gm, gp, k0, k1, bv, bi, sv, 0, d);
        }
        if (a->exact) {
            /* scores are exact distances: the second bounds the others (vectorized roots) */
            for (int64_t r = 0; r < g; r++) sv[r] = (T)sqrt(sv[r]);
            for (int64_t r = 0; r < g; r++) {
                const int64_t row = rows[r];
                int64_t k = (int64_t)bi[r];
                if (k < 0 || k >= a->k) k = 0;
                if (a->prev) changed += a->prev[row] != k;
                a->labels[row] = k;
                /* the distance recomputed by the function the pruned rows use, so a pruned
                 * pass gives the same values, bit for bit, as a full one */
                a->dist[row] = SUF(sqdist)(a->x + row * a->ldx, a->craw + k * d, d);
                if (a->lower_out) a->lower_out[row] = (double)sv[r] * (1.0 - TK_PRUNE_MARGIN) + a->drift;
            }
            if (a->partials) SUF(add_to_stripes)(a, group_begin, i, d);
            continue;
        }
        for (int64_t r = 0; r < g; r++) {
            const T *xs = xb + r * d;
            const int64_t row = rows[r];
            const T *src = a->x + row * a->ldx;
            const T best = bv[r], second = sv[r];
            int64_t k = (int64_t)bi[r];
            if (k < 0 || k >= a->k) k = 0;
            double lower;
            const T x_sq = SUF(sqnorm)(xs, d);
            const T slack = eps * (x_sq + a->csq_max);
            if (second - best <= slack) {
                /* near tie: decide from exact distances, lowest index first */
                T be = (T)INFINITY;
                for (int64_t kk = 0; kk < a->k; kk++) {
                    const T e = SUF(sqdist)(src, a->craw + kk * d, d);
                    if (e < be) {
                        be = e;
                        k = kk;
                    }
                }
                lower = 0.0;
            } else {
                const T low = second + x_sq - 2 * slack;
                lower = low > 0 ? sqrt((double)low) : 0.0;
            }
            if (a->prev) changed += a->prev[row] != k;
            a->labels[row] = k;
            a->dist[row] = SUF(sqdist)(src, a->craw + k * d, d);
            if (a->lower_out) a->lower_out[row] = lower * (1.0 - TK_PRUNE_MARGIN) + a->drift;
        }
        if (a->partials) SUF(add_to_stripes)(a, group_begin, i, d);
    }
    a->changed = changed;
done:
    free(xb);
    free(xt);
    free(bv);
    free(sv);
    free(bi);
    free(rows);
}

static void *SUF(assign_worker)(void *arg) {
    SUF(tk_args) *a = (SUF(tk_args) *)arg;
    switch (a->d) {
    case 1: SUF(assign_rows)(a, 1); break;
    case 2: SUF(assign_rows)(a, 2); break;
    case 3: SUF(assign_rows)(a, 3); break;
    case 4: SUF(assign_rows)(a, 4); break;
    case 8: SUF(assign_rows)(a, 8); break;
    default: SUF(assign_rows)(a, a->d); break;
    }
    return NULL;
}

/* The row loop of accumulate_worker (inlined with a constant d for small dimensions). */
static inline __attribute__((always_inline)) void SUF(accumulate_rows)(
    const SUF(tk_args) *a, double *acc, int64_t k0, int64_t nk, int64_t width, const int64_t d) {
    const int branchless = d <= ACC_SCRATCH_D;
    for (int64_t i = 0; i < a->n; i++) {
        const int64_t q = a->labels[i] - k0;
        const int own = q >= 0 && q < nk;
        if (!own && !branchless) continue;
        double *restrict s = acc + (own ? q : nk) * width;
        SUF(add_row)(a, s, i, d, a->sums != NULL);
    }
}

/* Sums of the rows of the clusters this thread owns (a contiguous range), in row order, kept
 * in a private copy (no cache line shared between threads) that starts from, and is written
 * back to, the running totals, so the order of additions is that of one sequential pass. */
static void *SUF(accumulate_worker)(void *arg) {
    SUF(tk_args) *a = (SUF(tk_args) *)arg;
    const int64_t d = a->d;
    const int64_t k0 = a->k * a->thread / a->nthreads, k1 = a->k * (a->thread + 1) / a->nthreads;
    const int64_t nk = k1 - k0, width = 3 + (a->sums ? d : 0);
    /* one extra slot: rows of other clusters go there when d is small (no branch per row) */
    double *acc = (double *)malloc((size_t)((nk + 1) * width) * sizeof(double));
    if (!acc) {
        a->changed = -1;
        return NULL;
    }
    for (int64_t q = 0; q < nk; q++) {
        double *s = acc + q * width;
        s[0] = a->weights[k0 + q];
        s[1] = a->counts[k0 + q];
        s[2] = a->inertia[k0 + q];
        if (a->sums) memcpy(s + 3, a->sums + (k0 + q) * d, (size_t)d * sizeof(double));
    }
    memset(acc + nk * width, 0, (size_t)width * sizeof(double));
    /* small dimensions: the row loop compiled for each d (unrolled, no per-row loop setup) */
    switch (a->sums ? d : 0) {
    case 1: SUF(accumulate_rows)(a, acc, k0, nk, width, 1); break;
    case 2: SUF(accumulate_rows)(a, acc, k0, nk, width, 2); break;
    case 3: SUF(accumulate_rows)(a, acc, k0, nk, width, 3); break;
    case 4: SUF(accumulate_rows)(a, acc, k0, nk, width, 4); break;
    case 8: SUF(accumulate_rows)(a, acc, k0, nk, width, 8); break;
    default: SUF(accumulate_rows)(a, acc, k0, nk, width, d); break;
    }
    for (int64_t q = 0; q < nk; q++) {
        const double *s = acc + q * width;
        a->weights[k0 + q] = s[0];
        a->counts[k0 + q] = s[1];
        a->inertia[k0 + q] = s[2];
        if (a->sums) memcpy(a->sums + (k0 + q) * d, s + 3, (size_t)d * sizeof(double));
    }
    free(acc);
    return NULL;
}

/* Fold the stripes' partials into the running totals, stripe after stripe, for the clusters
 * this thread owns (a contiguous range). */
static void *SUF(merge_worker)(void *arg) {
    SUF(tk_args) *a = (SUF(tk_args) *)arg;
    const int64_t d = a->d, width = d + 3, nst = a->row1; /* row1: the number of stripes */
    const int64_t k0 = a->k * a->thread / a->nthreads, k1 = a->k * (a->thread + 1) / a->nthreads;
    for (int64_t st = 0; st < nst; st++) {
        for (int64_t q = k0; q < k1; q++) {
            const double *p = a->partials + (st * a->k + q) * width;
            a->weights[q] += p[0];
            a->counts[q] += p[1];
            a->inertia[q] += p[2];
            double *restrict sq = a->sums + q * d;
            for (int64_t j = 0; j < d; j++) sq[j] += p[3 + j];
        }
    }
    return NULL;
}

/* One pass over n rows: labels, exact distances, optional bounds, and per-cluster statistics
 * added to sums (may be NULL), weights, counts and inertia. Returns the number of rows whose
 * label differs from prev (0 without prev), or -1 when memory ran out. */
int64_t SUF(tk_pass)(int64_t n, int64_t d, int64_t k, const T *x, int64_t ldx, const T *w,
                     const T *shift, const T *c, const T *craw, const T *csq, double csq_max, int exact, const int64_t *prev, const T *gaps,
                     double *lower, double drift, int64_t *labels, T *dist, double *sums,
                     double *weights, double *counts, double *inertia, int assign_threads,
                     int sum_threads, int64_t base_row, int64_t stripe) {
    SUF(tk_args) base;
    memset(&base, 0, sizeof(base));
    base.n = n;
    base.d = d;
    base.k = k;
    base.x = x;
    base.ldx = ldx;
    base.w = w;
    base.shift = shift;
    base.c = c;
    base.craw = craw;
    base.csq = csq;
    base.csq_max = (T)csq_max;
    base.exact = exact;
    base.prev = prev;
    base.gaps = gaps;
    base.lower_in = lower;
    base.lower_out = lower;
    base.drift = drift;
    base.labels = labels;
    base.dist = dist;
    base.sums = sums;
    base.weights = weights;
    base.counts = counts;
    base.inertia = inertia;
    int nt = assign_threads < 1 ? 1 : (assign_threads > 64 ? 64 : assign_threads);
    if (n < nt) nt = n > 0 ? (int)n : 1;
    SUF(tk_args) args[64];
    if (sums && stripe > 0 && n > 0) {
        /* fused: statistics are summed per stripe of global rows while the rows are in cache,
         * then folded stripe after stripe: the same order whatever the threads or calls */
        const int64_t s0 = base_row / stripe, s1 = (base_row + n - 1) / stripe;
        const int64_t nst = s1 - s0 + 1;
        double *partials = (double *)calloc((size_t)(nst * k * (d + 3)), sizeof(double));
        if (!partials) return -1;
        if (nst < nt) nt = (int)nst;
        for (int t = 0; t < nt; t++) {
            /* thread t takes whole stripes */
            const int64_t a0 = nst * t / nt, a1 = nst * (t + 1) / nt;
            const int64_t r0 = (s0 + a0) * stripe - base_row, r1 = (s0 + a1) * stripe - base_row;
            args[t] = base;
            args[t].thread = t;
            args[t].nthreads = nt;
            args[t].row0 = r0 < 0 ? 0 : r0;
            args[t].row1 = r1 > n ? n : r1;
            args[t].base_row = base_row;
            args[t].stripe = stripe;
            args[t].stripe0 = s0;
            args[t].partials = partials;
        }
        tk_parallel(SUF(assign_worker), args, sizeof(args[0]), nt);
        int64_t changed = 0;
        int failed = 0;
        for (int t = 0; t < nt; t++) {
            if (args[t].changed < 0) failed = 1;
            changed += args[t].changed;
        }
        int st = sum_threads < 1 ? 1 : (sum_threads > 64 ? 64 : sum_threads);
        if (k < st) st = (int)k;
        for (int t = 0; t < st && !failed; t++) {
            args[t] = base;
            args[t].thread = t;
            args[t].nthreads = st;
            args[t].row1 = nst;
            args[t].partials = partials;
        }
        if (!failed) tk_parallel(SUF(merge_worker), args, sizeof(args[0]), st);
        free(partials);
        return failed ? -1 : changed;
    }
    for (int t = 0; t < nt; t++) {
        args[t] = base;
        args[t].thread = t;
        args[t].nthreads = nt;
        args[t].row0 = n * t / nt;
        args[t].row1 = n * (t + 1) / nt;
    }
    tk_parallel(SUF(assign_worker), args, sizeof(args[0]), nt);
    int64_t changed = 0;
    for (int t = 0; t < nt; t++) {
        if (args[t].changed < 0) return -1;
        changed += args[t].changed;
    }
    int st = sum_threads < 1 ? 1 : (sum_threads > 64 ? 64 : sum_threads);
    if (k < st) st = (int)k;
    for (int t = 0; t < st; t++) {
        args[t] = base;
        args[t].thread = t;
        args[t].nthreads = st;
    }
    tk_parallel(SUF(accumulate_worker), args, sizeof(args[0]), st);
    for (int t = 0; t < st; t++)
        if (args[t].changed < 0) return -1;
    return changed;
}

/* ---- the Lloyd loop --------------------------------------------------------------------- */

/* The layout of centers for a pass: shift = their mean (summed in float64, in center order),
 * c = centers - shift and csq = ||c||^2. Returns the largest csq. */
double SUF(tk_prepare)(int64_t k, int64_t d, const T *centers, T *shift, T *c, T *csq) {
    for (int64_t j = 0; j < d; j++) {
        double s = 0;
        for (int64_t q = 0; q < k; q++) s += (double)centers[q * d + j];
        shift[j] = (T)(s / (double)k);
    }
    double top = 0;
    for (int64_t q = 0; q < k; q++) {
        for (int64_t j = 0; j < d; j++) c[q * d + j] = centers[q * d + j] - shift[j];
        csq[q] = SUF(sqnorm)(c + q * d, d);
        if ((double)csq[q] > top) top = (double)csq[q];
    }
    return top;
}

/* Half the distance from each center to its nearest other center (Hamerly's s), as a bound
 * that never exceeds the true value: one assignment pass with the centers as rows, whose lower
 * bound on the distance to every center but the nearest (the center itself, at distance zero,
 * or a duplicate of it) is the gap. c, csq and csq_max as tk_prepare gives them. Returns 0, or
 * -1 when memory ran out. */
int SUF(tk_gaps)(int64_t k, int64_t d, const T *centers, const T *shift, const T *c,
                 const T *csq, double csq_max, int exact, T *gaps, int nthreads) {
    double *scratch = (double *)malloc((size_t)(4 * k) * sizeof(double));
    int64_t *labels = (int64_t *)malloc((size_t)k * sizeof(int64_t));
    T *dist = (T *)malloc((size_t)k * sizeof(T));
    int status = -1;
    if (scratch && labels && dist) {
        double *lower = scratch, *stats = scratch + k;
        memset(stats, 0, (size_t)(3 * k) * sizeof(double));
        if (SUF(tk_pass)(k, d, k, centers, d, NULL, shift, c, centers, csq, csq_max, exact,
                         NULL, NULL, lower, 0.0, labels, dist, NULL, stats, stats + k,
                         stats + 2 * k, nthreads, 1, 0, 0) >= 0) {
            for (int64_t q = 0; q < k; q++)
                gaps[q] = k > 1 ? (T)(lower[q] * 0.5 * (1.0 - 4.0 * T_EPS)) : (T)INFINITY;
            status = 0;
        }
    }
    free(scratch);
    free(labels);
    free(dist);
    return status;
}

/* The update step: fresh = weighted means of the statistics, shifted back (a cluster without
 * rows or weight, or whose mean is not finite, keeps its center). out[0]: the squared center
 * shift summed over centers, out[1]: the largest squared shift of one center, out[2]: the
 * inertia summed over clusters. */
void SUF(tk_update)(int64_t k, int64_t d, const double *sums, const double *weights,
                    const double *counts, const double *inertia, const T *shift,
                    const T *centers, T *fresh, double *out) {
    double largest = 0, shift2 = 0, total = 0;
    for (int64_t q = 0; q < k; q++) {
        T *nq = fresh + q * d;
        const T *oq = centers + q * d;
        int keep = !(counts[q] > 0 && weights[q] > 0);
        for (int64_t j = 0; j < d && !keep; j++) {
            nq[j] = (T)(sums[q * d + j] / weights[q]) + shift[j];
            if (!isfinite(nq[j])) keep = 1;
        }
        if (keep) memcpy(nq, oq, (size_t)d * sizeof(T));
        double s = 0;
        for (int64_t j = 0; j < d; j++) {
            const double t = (double)(T)(nq[j] - oq[j]);
            s += t * t;
        }
        shift2 += s;
        if (s > largest) largest = s;
    }
    for (int64_t q = 0; q < k; q++) total += inertia[q];
    out[0] = shift2;
    out[1] = largest;
    out[2] = total;
}

static double SUF(seconds)(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Lloyd iterations over n rows held in memory, the whole loop in one call (small problems,
 * where a call per pass would cost more than the pass).
 *
 * mode 0: up to iters iterations from centers (updated in place); mode 1: the same, but the
 * first iteration's pass was done by an earlier call that stopped with status 2 (its
 * statistics are in sums..inertia, its changed count in given_changed, and given_relocated
 * clusters were refilled since); mode 2: one assignment pass, no update (weights, counts,
 * inertia and labels only). An iteration is: the pass (pruned with Hamerly's bounds when lower
 * is given and *bounds_valid), the weighted means (a cluster without rows or weight, or with a
 * mean that is not finite, keeps its center), the drift of the bounds, and the stop rule:
 * no label changed and nothing refilled, or squared center shift <= tol. hist gets 5 values
 * per completed iteration: inertia, center shift, changed, relocated, seconds.
 *
 * *status: 0 iters iterations done; 1 stopped by the rule; 2 the pass of the next iteration left
 * a cluster empty (statistics, labels and distances of that pass kept, centers unchanged, the
 * changed count in hist of that iteration). Returns the iterations completed, -1 when memory
 * ran out. */
int64_t SUF(tk_lloyd)(int64_t n, int64_t d, int64_t k, const T *x, int64_t ldx, const T *w,
                      T *centers, int64_t *labels, T *dist, double *lower, double *drift,
                      int64_t *bounds_valid, int exact, int assign_threads, int sum_threads,
                      int64_t stripe, int mode, int64_t iters, double tol, int64_t given_changed,
                      int64_t given_relocated, double *sums, double *weights, double *counts,
                      double *inertia, double *hist, int64_t *status) {
    T *buf = (T *)malloc((size_t)(d + 2 * k * d + 2 * k) * sizeof(T));
    if (!buf) return -1;
    T *shift = buf, *c = shift + d, *fresh = c + k * d, *csq = fresh + k * d, *gaps = csq + k;
    int64_t done = 0;
    *status = TK_STATUS_RAN;
    if (mode == TK_MODE_ASSIGN) iters = 1;
    while (done < iters) {
        const double t0 = SUF(seconds)();
        const double csq_max = SUF(tk_prepare)(k, d, centers, shift, c, csq);
        /* (finishing: the pass was done, no gaps needed) */
        const int prune = lower && *bounds_valid && mode != TK_MODE_FINISH;
        if (prune && SUF(tk_gaps)(k, d, centers, shift, c, csq, csq_max, exact, gaps, 1) != 0) {
            done = -1;
            break;
        }
        int64_t changed = given_changed, relocated = given_relocated;
        if (mode != TK_MODE_FINISH) {
            memset(weights, 0, (size_t)k * sizeof(double));
            memset(counts, 0, (size_t)k * sizeof(double));
            memset(inertia, 0, (size_t)k * sizeof(double));
            if (mode == TK_MODE_ITERATE) memset(sums, 0, (size_t)(k * d) * sizeof(double));
            changed = SUF(tk_pass)(n, d, k, x, ldx, w, shift, c, centers, csq, csq_max, exact,
                                   labels, prune ? gaps : NULL, lower, *drift, labels, dist,
                                   mode == TK_MODE_ITERATE ? sums : NULL, weights, counts, inertia,
                                   assign_threads, sum_threads, 0, mode == TK_MODE_ITERATE ? stripe : 0);
            if (changed < 0) {
                done = -1;
                break;
            }
            if (lower) *bounds_valid = 1;
            if (!w) memcpy(counts, weights, (size_t)k * sizeof(double));
            if (mode == TK_MODE_ASSIGN) {
                hist[2] = (double)changed;
                break;
            }
            relocated = 0;
            int64_t empty = 0;
            for (int64_t q = 0; q < k; q++) empty += counts[q] == 0;
            if (empty) {
                hist[TK_HISTORY_FIELDS * done + 2] = (double)changed;
                *status = TK_STATUS_EMPTY;
                break;
            }
        }
        mode = TK_MODE_ITERATE;
        double out[3];
        SUF(tk_update)(k, d, sums, weights, counts, inertia, shift, centers, fresh, out);
        if (lower) *drift += sqrt(out[1]) * (1.0 + TK_PRUNE_MARGIN);
        memcpy(centers, fresh, (size_t)(k * d) * sizeof(T));
        double *h = hist + TK_HISTORY_FIELDS * done;
        h[0] = out[2];
        h[1] = out[0];
        h[2] = (double)changed;
        h[3] = (double)relocated;
        h[4] = SUF(seconds)() - t0;
        done++;
        given_changed = given_relocated = 0;
        if ((changed == 0 && relocated == 0) || out[0] <= tol) {
            *status = TK_STATUS_STOPPED;
            break;
        }
    }
    free(buf);
    return done;
}

/* ---- data moments ---------------------------------------------------------------------- */

/* Weighted sums about the point first, in float64 and in row order: total += w,
 * s1 += w (x - first), s2 += w (x - first)^2 (w = 1 without weights). Added to the running
 * values, so calls over consecutive blocks make one sequential pass. */
void SUF(tk_moments)(int64_t n, int64_t d, const T *x, int64_t ldx, const T *w,
                     const double *first, double *s1, double *s2, double *total) {
    double t = *total;
    for (int64_t i = 0; i < n; i++) {
        const T *row = x + i * ldx;
        if (w) {
            const double wi = (double)w[i];
            t += wi;
            for (int64_t j = 0; j < d; j++) {
                const double y = (double)row[j] - first[j];
                s1[j] += y * wi;
                s2[j] += y * y * wi;
            }
        } else {
            t += 1.0;
            for (int64_t j = 0; j < d; j++) {
                const double y = (double)row[j] - first[j];
                s1[j] += y;
                s2[j] += y * y;
            }
        }
    }
    *total = t;
}

/* ---- canonical order --------------------------------------------------------------------- */

/* The canonical order of the rows (see _init.py): sorted by their dot product with dir
 * (float64, features in order), ties by index, by a stable LSD radix sort of the keys' bit
 * patterns (mapped so that unsigned order is numeric order; -0.0 counts as 0.0). Returns 0, or
 * -1 when memory ran out. */
int SUF(tk_order)(int64_t n, int64_t d, const T *x, int64_t ldx, const double *dir,
                  int64_t *order) {
    if (n <= 0) return 0;
    uint64_t *key = (uint64_t *)malloc((size_t)n * sizeof(uint64_t));
    uint64_t *key2 = (uint64_t *)malloc((size_t)n * sizeof(uint64_t));
    int64_t *order2 = (int64_t *)malloc((size_t)n * sizeof(int64_t));
    int status = -1;
    if (!key || !key2 || !order2) goto done;
    for (int64_t i = 0; i < n; i++) {
        const T *row = x + i * ldx;
        double s = 0;
        for (int64_t j = 0; j < d; j++) s += (double)row[j] * dir[j];
        if (s == 0) s = 0.0;
        uint64_t b;
        memcpy(&b, &s, sizeof(b));
        key[i] = (b >> 63) ? ~b : (b | 0x8000000000000000ULL);
        order[i] = i;
    }
    int64_t *src_order = order, *dst_order = order2;
    for (int shift = 0; shift < 64; shift += 8) {
        int64_t count[256];
        memset(count, 0, sizeof(count));
        for (int64_t i = 0; i < n; i++) count[(key[i] >> shift) & 255]++;
        if (n > 0 && count[(key[0] >> shift) & 255] == n) continue; /* one digit: no move */
        int64_t at = 0;
        for (int b = 0; b < 256; b++) {
            const int64_t c = count[b];
            count[b] = at;
            at += c;
        }
        for (int64_t i = 0; i < n; i++) {
            const int64_t p = count[(key[i] >> shift) & 255]++;
            key2[p] = key[i];
            dst_order[p] = src_order[i];
        }
        uint64_t *tk = key;
        key = key2;
        key2 = tk;
        int64_t *to = src_order;
        src_order = dst_order;
        dst_order = to;
    }
    if (src_order != order) memcpy(order, src_order, (size_t)n * sizeof(int64_t));
    status = 0;
done:
    free(key);
    free(key2);
    free(order2); /* (the pointers were swapped, the buffers stay ours and the caller's) */
    return status;
}

/* ---- k-means++ ------------------------------------------------------------------------- */

typedef struct {
    int64_t d, m, kc, new_id;
    const T *x;
    int64_t ldx;
    const T *w;
    const T *cand;
    const double *cc; /* (m, kc) squared distances candidate -> chosen center, with margin */
    double *closest;
    int64_t *assign;
    int mode;
    int64_t row0, row1;
    double *gain; /* (stripes, m): gains of each stripe of TK_STRIPE_ROWS rows */
    const int64_t *pos; /* with mass: each row's canonical position */
    double *mass;       /* w_i closest_i by canonical position, kept up to date (or NULL) */
} SUF(kpp_args);

/* Row i's closest distance changed to cl: its mass at its canonical position follows. */
static inline void SUF(kpp_mass)(const SUF(kpp_args) *a, int64_t i, double cl) {
    if (a->mass) a->mass[a->pos[i]] = a->w ? cl * (double)a->w[i] : cl;
}

static void *SUF(kpp_worker)(void *arg) {
    SUF(kpp_args) *a = (SUF(kpp_args) *)arg;
    const int64_t d = a->d, m = a->m, kc = a->kc;
    for (int64_t i = a->row0; i < a->row1; i++) {
        const T *xr = a->x + i * a->ldx;
        if (a->mode == 2) {
            a->closest[i] = (double)SUF(sqdist)(xr, a->cand, d);
            a->assign[i] = a->new_id;
            SUF(kpp_mass)(a, i, a->closest[i]);
            continue;
        }
        const double cl = a->closest[i];
        const double *cc = a->cc + a->assign[i];
        if (a->mode == 1) {
            if (cc[0] >= cl) continue;
            const double dd = (double)SUF(sqdist)(xr, a->cand, d);
            if (dd < cl) {
                a->closest[i] = dd;
                a->assign[i] = a->new_id;
                SUF(kpp_mass)(a, i, dd);
            }
            continue;
        }
        const double wi = a->w ? (double)a->w[i] : 1.0;
        for (int64_t j = 0; j < m; j++) {
            /* triangle inequality: a candidate at least 2 sqrt(cl) from the row's center is
             * at least sqrt(cl) from the row */
            if (cc[j * kc] >= cl) continue;
            const double dd = (double)SUF(sqdist)(xr, a->cand + j * d, d);
            if (dd < cl) a->gain[(i / TK_STRIPE_ROWS) * m + j] += wi * (cl - dd);
        }
    }
    return NULL;
}

/* One step of greedy k-means++ over n rows, given each row's squared distance to its closest
 * chosen center (closest) and that center's index (assign):
 *   mode 0: gain[j] = sum_i w_i max(0, closest_i - ||x_i - cand_j||^2) for the m candidates;
 *   mode 1: add cand (one row) as center new_id: closest and assign updated in place;
 *   mode 2: the first center: closest_i = ||x_i - cand||^2, assign_i = new_id.
 * centers (kc rows) are the chosen centers, for the triangle-inequality pruning. With pos and
 * mass, mass[pos[i]] = w_i closest_i follows every change of closest. Returns 0, or -1 when
 * memory ran out. */
static int SUF(kpp_step)(int64_t n, int64_t d, const T *x, int64_t ldx, const T *w,
                         const T *cand, int64_t m, const T *centers, int64_t kc, double *closest,
                         int64_t *assign, int64_t new_id, int mode, double *gain, int nthreads,
                         const int64_t *pos, double *mass) {
    double *cc = NULL;
    if (mode != 2) {
        cc = (double *)malloc((size_t)(m * kc) * sizeof(double));
        if (!cc) return -1;
        /* skip threshold: 4 (1 + margin) ||cand - center||^2 >= closest, margin for rounding */
        for (int64_t j = 0; j < m; j++)
            for (int64_t q = 0; q < kc; q++)
                cc[j * kc + q] =
                    (double)SUF(sqdist)(cand + j * d, centers + q * d, d) * 0.25 * (1.0 - 1e-3);
    }
    /* gains are summed per stripe of rows, then stripe after stripe: the same value whatever
     * the number of threads; threads take whole stripes */
    const int64_t nst = n > 0 ? (n + TK_STRIPE_ROWS - 1) / TK_STRIPE_ROWS : 1;
    int nt = nthreads < 1 ? 1 : (nthreads > 64 ? 64 : nthreads);
    if (nst < nt) nt = (int)nst;
    double *gains = (double *)calloc((size_t)(nst * (m > 0 ? m : 1)), sizeof(double));
    if (!gains) {
        free(cc);
        return -1;
    }
    const SUF(kpp_args) base = {.d = d, .m = m, .kc = kc, .new_id = new_id, .x = x, .ldx = ldx,
                                .w = w, .cand = cand, .cc = cc, .closest = closest,
                                .assign = assign, .mode = mode, .gain = gains, .pos = pos,
                                .mass = mass};
    SUF(kpp_args) args[64];
    for (int t = 0; t < nt; t++) {
        const int64_t r0 = nst * t / nt * TK_STRIPE_ROWS, r1 = nst * (t + 1) / nt * TK_STRIPE_ROWS;
        args[t] = base;
        args[t].row0 = r0 < n ? r0 : n;
        args[t].row1 = r1 < n ? r1 : n;
    }
    tk_parallel(SUF(kpp_worker), args, sizeof(args[0]), nt);
    if (mode == 0)
        for (int64_t j = 0; j < m; j++) {
            double s = 0;
            for (int64_t st = 0; st < nst; st++) s += gains[st * m + j];
            gain[j] = s;
        }
    free(gains);
    free(cc);
    return 0;
}

int SUF(tk_kpp)(int64_t n, int64_t d, const T *x, int64_t ldx, const T *w, const T *cand,
                int64_t m, const T *centers, int64_t kc, double *closest, int64_t *assign,
                int64_t new_id, int mode, double *gain, int nthreads) {
    return SUF(kpp_step)(n, d, x, ldx, w, cand, m, centers, kc, closest, assign, new_id, mode,
                         gain, nthreads, NULL, NULL);
}

/* Inverse-CDF draw: the first index whose cumulative mass exceeds u * total (the last index
 * when rounding puts the target at the total). */
static int64_t SUF(draw)(const double *cumulative, int64_t n, double u) {
    const double target = u * cumulative[n - 1];
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (cumulative[mid] > target)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo < n ? lo : n - 1;
}

/* Cumulative weights in canonical order (1, 2, 3, ... without weights). */
static void SUF(by_weight)(int64_t n, const T *w, const int64_t *order, double *cumulative) {
    double total = 0;
    for (int64_t i = 0; i < n; i++) {
        total += w ? (double)w[order[i]] : 1.0;
        cumulative[i] = w ? total : (double)(i + 1);
    }
}

/* Greedy k-means++ in one call: the steps of tk_kpp driven by the draws of the Python loop it
 * replaces (_init.py). order is the canonical order of the rows (cumulative masses run over
 * it), u holds the 1 + (k - 1) t uniform draws in [0, 1) in the order they are used. A center
 * is the candidate of lowest potential, the first drawn within a relative rtol of it. When
 * every row of positive weight sits on a center, candidates are drawn by weight alone.
 * Writes k centers and their row indices. Returns 0, or -1 when memory ran out. */
int SUF(tk_kpp_all)(int64_t n, int64_t d, const T *x, int64_t ldx, const T *w,
                    const int64_t *order, const double *u, int64_t k, int64_t t, T *centers,
                    int64_t *indices, double rtol, int nthreads, int64_t thread_work) {
    double *closest = (double *)malloc((size_t)n * sizeof(double));
    double *cumulative = (double *)malloc((size_t)n * sizeof(double));
    double *mass = (double *)malloc((size_t)n * sizeof(double));
    int64_t *pos = (int64_t *)malloc((size_t)n * sizeof(int64_t));
    int64_t *assign = (int64_t *)malloc((size_t)n * sizeof(int64_t));
    double *gain = (double *)malloc((size_t)(t > 0 ? t : 1) * sizeof(double));
    T *cand = (T *)malloc((size_t)((t > 0 ? t : 1) * d) * sizeof(T));
    int64_t *cand_index = (int64_t *)malloc((size_t)(t > 0 ? t : 1) * sizeof(int64_t));
    int status = -1;
    if (!closest || !cumulative || !mass || !pos || !assign || !gain || !cand || !cand_index)
        goto done;
    /* the masses w_i closest_i are kept by canonical position (pos: the inverse of order), so
     * the cumulative sums read them in sequence; a step rewrites only the rows it changes */
    for (int64_t i = 0; i < n; i++) pos[order[i]] = i;
    const int one = 1;
    SUF(by_weight)(n, w, order, cumulative);
    int64_t first = order[SUF(draw)(cumulative, n, u[0])];
    memcpy(centers, x + first * ldx, (size_t)d * sizeof(T));
    indices[0] = first;
    int many = n * d >= thread_work ? nthreads : one;
    if (SUF(kpp_step)(n, d, x, ldx, w, centers, 1, centers, 0, closest, assign, 0, 2, gain, many,
                      pos, mass))
        goto done;
    for (int64_t c = 1; c < k; c++) {
        double total = 0;
        for (int64_t i = 0; i < n; i++) {
            total += mass[i];
            cumulative[i] = total;
        }
        const double *draws = u + 1 + (c - 1) * t;
        /* every row of positive weight on a center: draw by weight alone */
        if (!(total > 0)) SUF(by_weight)(n, w, order, cumulative);
        const double *cdf = cumulative;
        for (int64_t j = 0; j < t; j++) {
            cand_index[j] = order[SUF(draw)(cdf, n, draws[j])];
            memcpy(cand + j * d, x + cand_index[j] * ldx, (size_t)d * sizeof(T));
        }
        many = n * d * t >= thread_work ? nthreads : one;
        if (SUF(kpp_step)(n, d, x, ldx, w, cand, t, centers, c, closest, assign, 0, 0, gain, many,
                          NULL, NULL))
            goto done;
        double low = INFINITY;
        for (int64_t j = 0; j < t; j++)
            if (total - gain[j] < low) low = total - gain[j];
        int64_t best = 0;
        while (best < t - 1 && !(total - gain[best] <= low + rtol * fabs(low))) best++;
        many = n * d >= thread_work ? nthreads : one;
        if (SUF(kpp_step)(n, d, x, ldx, w, cand + best * d, 1, centers, c, closest, assign, c, 1,
                          gain, many, pos, mass))
            goto done;
        memcpy(centers + c * d, cand + best * d, (size_t)d * sizeof(T));
        indices[c] = cand_index[best];
    }
    status = 0;
done:
    free(closest);
    free(cumulative);
    free(mass);
    free(pos);
    free(assign);
    free(gain);
    free(cand);
    free(cand_index);
    return status;
}

/* the template's parameters, for the next inclusion */
#undef T
#undef SUF
#undef T_EPS
#undef TI
#undef AVX_VEC
#undef AVX_MIN
#undef AVX_MAX
#undef AVX_BLEND
