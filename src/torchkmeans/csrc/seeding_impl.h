/* The passes over the data outside Lloyd iterations (data moments for the tolerance, the
 * canonical row order and greedy k-means++: tk_moments, tk_order, tk_kpp_all), per
 * type: a template included by lloyd_impl.h after loop_impl.h. */

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

/* Greedy k-means++ (tk_kpp_all). Each row keeps its squared distance to its closest chosen
 * center (closest) and that center's index. A step draws t candidates from the masses
 * w_i closest_i, scores each by the drop of the potential it would bring (its gain) and adds
 * the best as a center. What keeps a step cheap:
 *   - the triangle inequality: a candidate at least twice a row's distance away from the row's
 *     center cannot come closer than that center, so a row is read only when the nearest
 *     candidate to its center is within that reach (one comparison per row);
 *   - the rows read are scored against all t candidates at once by a register-blocked kernel
 *     (the Lloyd pass's layout: the GEMM identity on shifted rows above TK_EXACT_MAX_D
 *     features, exact differences up to it), and each (row, candidate) pair that may capture
 *     the row is flagged, with a margin above the kernel's rounding: adding the winner reads
 *     only the rows it may capture, and computes their distances exactly;
 *   - the masses live in canonical order under a sum tree, so a draw and the update of a
 *     changed row cost O(log n), not a pass over every row.
 * Gains are summed per item of KPP_ITEM rows in row order, then item after item: they do not
 * depend on the number of threads. The type-independent parts come first, once. */
#ifndef TK_KPP_COMMON
#define TK_KPP_COMMON

/* Rows per work item of a step. */
#define KPP_ITEM 4096
/* Masses per leaf of the sum tree (a leaf is summed sequentially). */
#define KPP_LEAF 64
/* Candidates per step that the capture flags can hold (more: the winner's pass checks every
 * row the triangle inequality lets through). */
#define KPP_FLAG_BITS 32

/* Masses by canonical position under a sum tree over leaves of KPP_LEAF positions. */
typedef struct {
    int64_t n, leaves, size; /* size: a power of two >= leaves */
    double *mass;            /* (n) */
    double *node;            /* (2 size): node[size + b] sums leaf b, node[1] is the total */
    unsigned char *dirty;    /* (leaves) changed since the last flush */
} tk_masses;

static void tk_masses_free(tk_masses *s) {
    free(s->mass);
    free(s->node);
    free(s->dirty);
}

static int tk_masses_alloc(tk_masses *s, int64_t n) {
    memset(s, 0, sizeof(*s));
    s->n = n;
    s->leaves = n > 0 ? (n + KPP_LEAF - 1) / KPP_LEAF : 1;
    s->size = 1;
    while (s->size < s->leaves) s->size *= 2;
    s->mass = (double *)calloc((size_t)(n > 0 ? n : 1), sizeof(double));
    s->node = (double *)calloc((size_t)(2 * s->size), sizeof(double));
    s->dirty = (unsigned char *)calloc((size_t)s->leaves, 1);
    if (!s->mass || !s->node || !s->dirty) {
        tk_masses_free(s);
        return -1;
    }
    return 0;
}

static double tk_leaf_sum(const tk_masses *s, int64_t b) {
    const int64_t p1 = (b + 1) * KPP_LEAF < s->n ? (b + 1) * KPP_LEAF : s->n;
    double t = 0;
    for (int64_t p = b * KPP_LEAF; p < p1; p++) t += s->mass[p];
    return t;
}

/* Every sum, from the masses. */
static void tk_masses_build(tk_masses *s) {
    for (int64_t b = 0; b < s->size; b++)
        s->node[s->size + b] = b < s->leaves ? tk_leaf_sum(s, b) : 0;
    for (int64_t j = s->size - 1; j >= 1; j--) s->node[j] = s->node[2 * j] + s->node[2 * j + 1];
    memset(s->dirty, 0, (size_t)s->leaves);
}

/* Set a mass (threads may set different positions at once). */
static inline void tk_masses_set(tk_masses *s, int64_t p, double v) {
    s->mass[p] = v;
    __atomic_store_n(&s->dirty[p / KPP_LEAF], 1, __ATOMIC_RELAXED);
}

/* The sums over the leaves changed since the last flush: a node is always the sum of its two
 * children, recomputed, never adjusted by a difference. */
static void tk_masses_flush(tk_masses *s) {
    for (int64_t b = 0; b < s->leaves; b++) {
        if (!s->dirty[b]) continue;
        s->dirty[b] = 0;
        s->node[s->size + b] = tk_leaf_sum(s, b);
        for (int64_t j = (s->size + b) / 2; j >= 1; j /= 2)
            s->node[j] = s->node[2 * j] + s->node[2 * j + 1];
    }
}

/* Inverse-CDF draw: the position where the running sum of the masses first exceeds u times the
 * total, found by descending the tree; never a position of zero mass. Needs a positive total. */
static int64_t tk_masses_draw(const tk_masses *s, double u) {
    double t = u * s->node[1];
    int64_t j = 1;
    while (j < s->size) {
        const double left = s->node[2 * j], right = s->node[2 * j + 1];
        if (t < left || !(right > 0)) {
            j = 2 * j;
        } else {
            t -= left;
            j = 2 * j + 1;
        }
    }
    const int64_t p0 = (j - s->size) * KPP_LEAF;
    const int64_t p1 = p0 + KPP_LEAF < s->n ? p0 + KPP_LEAF : s->n;
    int64_t last = p0;
    for (int64_t p = p0; p < p1; p++) {
        const double v = s->mass[p];
        if (v > 0) {
            last = p;
            if (t < v) return p;
            t -= v;
        }
    }
    return last; /* rounding left the target at the leaf's end: its last row of mass */
}

/* Four float64 lanes and their comparison results. */
typedef double tk_v4d __attribute__((vector_size(32)));
typedef int64_t tk_v4l __attribute__((vector_size(32)));

#endif /* TK_KPP_COMMON */

typedef struct {
    int64_t n, d, m;
    const T *x;
    int64_t ldx;
    const T *w;
    const T *cand;      /* (m, d) candidates as given; mode 1: the winner; mode 2: the first */
    const T *cand_t;    /* the candidates by vector block, feature, lane (see cand_scores),
                         * shifted for the identity */
    const T *csq;       /* (m) their squared norms */
    const T *shift;     /* (d) */
    const double *reach; /* per center: a row is read when closest > reach[its center] */
    double *closest;
    int32_t *assign;
    uint32_t *flags; /* (n) or NULL: bit j, candidate j may capture the row */
    const int64_t *pos;
    tk_masses *masses;
    double *gain; /* (items, m) */
    int64_t *next, items;
    int32_t new_id;
    int mode, exact, best, failed;
} SUF(kpp_args);

/* Rows scored together by the gains kernel, and candidate vectors per register block. */
#define KPP_ROWS 8
#define KPP_NB 2

/* Scores of the KPP_ROWS rows of a panel against candidate vectors [v0, v0 + nb). The panel
 * holds the rows' features in blocks of 4 (pan[(f / 4) 4 KPP_ROWS + 4 r + f % 4], dp features,
 * zero beyond d); ct holds the candidates by vector block, feature, lane (ct[(v dp + f) VL + l],
 * candidate v VL + l). out + (r nv + v) VL gets ||x - c||^2 lane by lane (exact), or x.c.
 * Candidates run along the SIMD lanes and each feature of a row is broadcast; every address in
 * the loop is a fixed offset from two pointers. */
static inline __attribute__((always_inline)) void SUF(cand_scores)(const T *pan, const T *ct,
                                                                  int64_t nv, int64_t v0,
                                                                  const int nb, T *out,
                                                                  const int exact,
                                                                  const int64_t dp) {
    enum { VL = SUF(VL) };
    typedef SUF(vec) V;
    V acc[KPP_ROWS][KPP_NB];
    for (int r = 0; r < KPP_ROWS; r++)
        for (int b = 0; b < nb; b++) acc[r][b] = (V){0};
    const T *cp = ct + v0 * dp * VL;
    for (int64_t fb = 0; fb < dp; fb += 4, pan += 4 * KPP_ROWS, cp += 4 * VL) {
        for (int u = 0; u < 4; u++) {
            V cv[KPP_NB];
            for (int b = 0; b < nb; b++) cv[b] = SUF(vload)(cp + (b * dp + u) * VL);
            for (int r = 0; r < KPP_ROWS; r++) {
                const T xf = pan[4 * r + u];
                for (int b = 0; b < nb; b++) {
                    if (exact) {
                        const V e = cv[b] - xf;
                        acc[r][b] += e * e;
                    } else {
                        acc[r][b] += cv[b] * xf;
                    }
                }
            }
        }
    }
    for (int r = 0; r < KPP_ROWS; r++)
        for (int b = 0; b < nb; b++)
            memcpy(out + (r * nv + v0 + b) * VL, &acc[r][b], sizeof(V));
}

/* Lane i of a 4-lane comparison result, as bit i. */
static inline uint32_t SUF(mask4)(tk_v4l m) {
#if defined(__AVX__)
    return (uint32_t)_mm256_movemask_pd((__m256d)m);
#else
    return (uint32_t)((m[0] & 1) | (m[1] & 2) | (m[2] & 4) | (m[3] & 8));
#endif
}

/* Mode 0 over rows [r0, r1): the gains of the m candidates (g, from zero; each the sum over
 * the rows in order) and the capture flags. */
static inline __attribute__((always_inline)) void SUF(kpp_gains)(const SUF(kpp_args) *a,
                                                                int64_t r0, int64_t r1,
                                                                double *g, T *pan, T *sc,
                                                                tk_v4d *gacc, const int exact,
                                                                const int64_t d) {
    enum { VL = SUF(VL), Q = SUF(VL) / 4 };
    typedef SUF(vec) V;
    const int64_t m = a->m, nv = (m + VL - 1) / VL;
    const int64_t dp = (d + 3) / 4 * 4;
    for (int64_t q = 0; q < nv * Q; q++) gacc[q] = (tk_v4d){0};
    /* a flag's margin: the kernel's rounding (either way) relative to the sizes involved */
    const double rel = 2.0 * (double)(d + 4) * T_EPS;
    const uint32_t valid = m >= 32 ? 0xffffffffu : ((uint32_t)1 << m) - 1;
    int64_t rows[KPP_ROWS];
    T xsq[KPP_ROWS];
    const T zero4[1] = {0};
    int64_t i = r0;
    while (i < r1) {
        int n = 0;
        for (; i < r1 && n < KPP_ROWS; i++) {
            if (!(a->closest[i] > a->reach[a->assign[i]])) {
                if (a->flags) a->flags[i] = 0;
                continue;
            }
            /* into the panel: as given (exact), or shifted with its squared norm */
            const T *src = a->x + i * a->ldx;
            const T *sh = exact ? zero4 : a->shift;
            const int64_t shs = exact ? 0 : 1;
            T *dst = pan + 4 * n;
            int64_t f = 0;
            for (; f + 4 <= d; f += 4, dst += 4 * KPP_ROWS)
                for (int u = 0; u < 4; u++) dst[u] = src[f + u] - sh[(f + u) * shs];
            for (int u = 0; f + u < d; u++) dst[u] = src[f + u] - sh[(f + u) * shs];
            if (!exact) xsq[n] = SUF(sqdist)(src, a->shift, d);
            rows[n++] = i;
        }
        if (n == 0) continue;
        int64_t v = 0;
        for (; v + KPP_NB <= nv; v += KPP_NB)
            SUF(cand_scores)(pan, a->cand_t, nv, v, KPP_NB, sc, exact, dp);
        for (; v < nv; v++) SUF(cand_scores)(pan, a->cand_t, nv, v, 1, sc, exact, dp);
        for (int r = 0; r < n; r++) {
            const int64_t row = rows[r];
            const double c = a->closest[row];
            const tk_v4d cv = (tk_v4d){0} + c;
            const tk_v4d wv = (tk_v4d){0} + (a->w ? (double)a->w[row] : 1.0);
            uint32_t f = 0;
            for (int64_t v2 = 0; v2 < nv; v2++) {
                V e = SUF(vload)(sc + (r * nv + v2) * VL);
                if (!exact) e = SUF(vload)(a->csq + v2 * VL) + xsq[r] - 2 * e;
                e = SUF(vmax)(e, (V){0});
                T es[VL];
                memcpy(es, &e, sizeof(V));
                for (int h = 0; h < Q; h++) {
                    const tk_v4d dd = {es[4 * h], es[4 * h + 1], es[4 * h + 2], es[4 * h + 3]};
                    const tk_v4l lt = dd < cv;
                    gacc[v2 * Q + h] += (tk_v4d)((tk_v4l)(wv * (cv - dd)) & lt);
                    if (!a->flags) continue; /* (more candidates than the flags hold) */
                    tk_v4d room;
                    if (exact) {
                        room = cv * rel;
                    } else {
                        const T *cs = a->csq + v2 * VL + 4 * h;
                        room = ((tk_v4d){cs[0], cs[1], cs[2], cs[3]} + (double)xsq[r]) * rel;
                    }
                    f |= SUF(mask4)(dd < cv + room) << (v2 * VL + 4 * h);
                }
            }
            if (a->flags) a->flags[row] = f & valid;
        }
    }
    for (int64_t j = 0; j < m; j++) g[j] = gacc[j / 4][j % 4];
}

static void *SUF(kpp_worker)(void *arg) {
    SUF(kpp_args) *a = (SUF(kpp_args) *)arg;
    enum { VL = SUF(VL) };
    const int64_t d = a->d, nv = (a->m + VL - 1) / VL;
    /* mode 0's buffers, once per thread: a panel of rows, their scores, the gain sums */
    T *pan = NULL, *sc = NULL;
    tk_v4d *gacc = NULL;
    if (a->mode == 0) {
        pan = (T *)calloc((size_t)(KPP_ROWS * ((d + 3) / 4 * 4)), sizeof(T));
        sc = (T *)malloc((size_t)(KPP_ROWS * nv * VL) * sizeof(T));
        gacc = (tk_v4d *)aligned_alloc(sizeof(tk_v4d), (size_t)(nv * VL / 4) * sizeof(tk_v4d));
        if (!pan || !sc || !gacc) {
            a->failed = 1;
            goto done;
        }
    }
    for (;;) {
        const int64_t it = __atomic_fetch_add(a->next, 1, __ATOMIC_RELAXED);
        if (it >= a->items) break;
        const int64_t r0 = it * KPP_ITEM, r1 = r0 + KPP_ITEM < a->n ? r0 + KPP_ITEM : a->n;
        if (a->mode == 0) {
            double *g = a->gain + it * a->m;
            if (a->exact)
                SUF(kpp_gains)(a, r0, r1, g, pan, sc, gacc, 1, d);
            else
                SUF(kpp_gains)(a, r0, r1, g, pan, sc, gacc, 0, d);
            continue;
        }
        if (a->mode == 2) {
            for (int64_t i = r0; i < r1; i++) {
                const double e = a->w && !(a->w[i] > 0)
                                     ? 0.0
                                     : (double)SUF(sqdist)(a->x + i * a->ldx, a->cand, d);
                a->closest[i] = e;
                a->assign[i] = 0;
                a->masses->mass[a->pos[i]] = a->w ? e * (double)a->w[i] : e;
            }
            continue;
        }
        /* mode 1: the rows the winner may capture (flagged in mode 0, or let through by the
         * triangle inequality), their distances exact */
        const T *restrict x = a->x;
        const T *restrict win = a->cand;
        const T *restrict w = a->w;
        double *restrict closest = a->closest;
        int32_t *restrict assign = a->assign;
        const uint32_t *restrict flags = a->flags;
        const double *restrict reach = a->reach;
        const uint32_t bit = flags ? (uint32_t)1 << a->best : 0;
        for (int64_t i = r0; i < r1; i++) {
            const double c = closest[i];
            if (flags ? !(flags[i] & bit) : !(c > reach[assign[i]])) continue;
            const double e = (double)SUF(sqdist)(x + i * a->ldx, win, d);
            if (!(e < c)) continue;
            closest[i] = e;
            assign[i] = a->new_id;
            tk_masses_set(a->masses, a->pos[i], w ? e * (double)w[i] : e);
        }
    }
done:
    free(pan);
    free(sc);
    free(gacc);
    return NULL;
}

/* Run a step's items on up to nthreads threads (one when the work is below thread_work).
 * Returns 0, or -1 when memory ran out. */
static int SUF(kpp_run)(const SUF(kpp_args) *base, int64_t work, int nthreads,
                        int64_t thread_work) {
    int nt = work >= thread_work ? nthreads : 1;
    if (nt > 64) nt = 64;
    if (nt > base->items) nt = (int)base->items;
    if (nt < 1) nt = 1;
    int64_t next = 0;
    SUF(kpp_args) args[64];
    for (int i = 0; i < nt; i++) {
        args[i] = *base;
        args[i].next = &next;
        args[i].failed = 0;
    }
    tk_parallel(SUF(kpp_worker), args, sizeof(args[0]), nt);
    for (int i = 0; i < nt; i++)
        if (args[i].failed) return -1;
    return 0;
}

/* Draw a row by weight alone (w, or 1 without weights), in canonical order. */
static int64_t SUF(draw_by_weight)(int64_t n, const T *w, const int64_t *order, double u) {
    double total = 0;
    for (int64_t i = 0; i < n; i++) total += w ? (double)w[order[i]] : 1.0;
    const double target = u * total;
    double run = 0;
    int64_t last = n - 1;
    for (int64_t i = 0; i < n; i++) {
        const double wi = w ? (double)w[order[i]] : 1.0;
        if (!(wi > 0)) continue;
        last = i;
        run += wi;
        if (run > target) return order[i];
    }
    return order[last];
}

/* Greedy k-means++ in one call, driven by the draws of the Python loop it replaces (_init.py):
 * order is the canonical order of the rows (the masses run over it), u holds the
 * 1 + (k - 1) t uniform draws in [0, 1) in the order they are used. A center is the candidate
 * of lowest potential, the first drawn within a relative rtol of it. When every row of positive
 * weight sits on a center, candidates are drawn by weight alone. Writes k centers and their row
 * indices; the result does not depend on nthreads. Returns 0, or -1 when memory ran out. */
int SUF(tk_kpp_all)(int64_t n, int64_t d, const T *x, int64_t ldx, const T *w,
                    const int64_t *order, const double *u, int64_t k, int64_t t, T *centers,
                    int64_t *indices, double rtol, int nthreads, int64_t thread_work) {
    if (k > INT32_MAX || t < 1) return -1;
    const int64_t m = t, items = n > 0 ? (n + KPP_ITEM - 1) / KPP_ITEM : 1;
    tk_masses masses;
    if (tk_masses_alloc(&masses, n)) return -1;
    double *closest = (double *)malloc((size_t)n * sizeof(double));
    int32_t *assign = (int32_t *)malloc((size_t)n * sizeof(int32_t));
    uint32_t *flags = m <= KPP_FLAG_BITS ? (uint32_t *)malloc((size_t)n * sizeof(uint32_t)) : NULL;
    int64_t *pos = (int64_t *)malloc((size_t)n * sizeof(int64_t));
    double *cc = (double *)malloc((size_t)(k * m) * sizeof(double));
    double *reach = (double *)malloc((size_t)k * sizeof(double));
    double *gain = (double *)malloc((size_t)(items * m) * sizeof(double));
    double *pot = (double *)malloc((size_t)m * sizeof(double));
    T *cand = (T *)malloc((size_t)(m * d) * sizeof(T));
    const int64_t nvl = (m + SUF(VL) - 1) / SUF(VL) * SUF(VL), dp = (d + 3) / 4 * 4;
    T *cand_t = (T *)calloc((size_t)(nvl * dp), sizeof(T));
    T *csq = (T *)malloc((size_t)nvl * sizeof(T));
    int64_t *cand_index = (int64_t *)malloc((size_t)m * sizeof(int64_t));
    int status = -1;
    if (csq)
        for (int64_t j = m; j < nvl; j++) csq[j] = (T)INFINITY; /* padding: never captures */
    if (!closest || !assign || (m <= KPP_FLAG_BITS && !flags) || !pos || !cc || !reach ||
        !gain || !pot || !cand || !cand_t || !csq || !cand_index)
        goto done;
    for (int64_t p = 0; p < n; p++) {
        pos[order[p]] = p;
        masses.mass[p] = w ? (double)w[order[p]] : 1.0;
    }
    tk_masses_build(&masses);

    /* the first center, by weight; it is also the shift of the GEMM identity */
    const int64_t first = order[tk_masses_draw(&masses, u[0])];
    memcpy(centers, x + first * ldx, (size_t)d * sizeof(T));
    indices[0] = first;
    const int exact = d <= TK_EXACT_MAX_D;
    SUF(kpp_args) base = {.n = n, .d = d, .m = m, .x = x, .ldx = ldx, .w = w, .cand = centers,
                          .cand_t = cand_t, .csq = csq, .shift = centers, .reach = reach,
                          .closest = closest, .assign = assign, .flags = flags, .pos = pos,
                          .masses = &masses, .gain = gain, .items = items, .new_id = 0,
                          .mode = 2, .exact = exact};
    if (SUF(kpp_run)(&base, n * d, nthreads, thread_work)) goto done;
    tk_masses_build(&masses);

    for (int64_t c = 1; c < k; c++) {
        const double total = masses.node[1];
        const double *draws = u + 1 + (c - 1) * t;
        for (int64_t j = 0; j < t; j++) {
            /* every row of positive weight on a center: draw by weight alone */
            cand_index[j] = total > 0 ? order[tk_masses_draw(&masses, draws[j])]
                                      : SUF(draw_by_weight)(n, w, order, draws[j]);
            memcpy(cand + j * d, x + cand_index[j] * ldx, (size_t)d * sizeof(T));
            T *ct = cand_t + (j / SUF(VL)) * dp * SUF(VL) + j % SUF(VL);
            for (int64_t f = 0; f < d; f++)
                ct[f * SUF(VL)] = exact ? cand[j * d + f] : cand[j * d + f] - centers[f];
            csq[j] = SUF(sqdist)(cand + j * d, centers, d);
        }
        /* cc = ||cand - center||^2 / 4, less a margin for rounding: a candidate with cc at
         * least a row's distance to that center cannot capture the row */
        for (int64_t q = 0; q < c; q++) {
            double low = INFINITY;
            for (int64_t j = 0; j < t; j++) {
                const double e = (double)SUF(sqdist)(cand + j * d, centers + q * d, d);
                cc[q * m + j] = e * 0.25 * (1.0 - 1e-3);
                if (cc[q * m + j] < low) low = cc[q * m + j];
            }
            reach[q] = low;
        }
        base.cand = cand;
        base.mode = 0;
        if (SUF(kpp_run)(&base, n * d * t, nthreads, thread_work)) goto done;
        double low = INFINITY;
        for (int64_t j = 0; j < t; j++) {
            double g = 0;
            for (int64_t it = 0; it < items; it++) g += gain[it * m + j];
            pot[j] = total - g;
            if (pot[j] < low) low = pot[j];
        }
        int64_t best = 0;
        while (best < t - 1 && !(pot[best] <= low + rtol * fabs(low))) best++;
        memcpy(centers + c * d, cand + best * d, (size_t)d * sizeof(T));
        indices[c] = cand_index[best];

        /* the winner's captures: the rows it may capture, their distances exact */
        for (int64_t q = 0; q < c; q++) reach[q] = cc[q * m + best];
        base.cand = centers + c * d;
        base.mode = 1;
        base.best = (int)best;
        base.new_id = (int32_t)c;
        if (SUF(kpp_run)(&base, n * d, nthreads, thread_work)) goto done;
        tk_masses_flush(&masses);
    }
    status = 0;
done:
    tk_masses_free(&masses);
    free(closest);
    free(assign);
    free(flags);
    free(pos);
    free(cc);
    free(reach);
    free(gain);
    free(pot);
    free(cand);
    free(cand_t);
    free(csq);
    free(cand_index);
    return status;
}

/* the template's parameters, for the next inclusion */
