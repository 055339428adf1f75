/* Many independent problems of d features (rows[p] rows each: one shape or ragged), each fitted
 * exactly as one problem is (included by lloyd_impl.h once per type, after the kernels it
 * drives). Problem p's rows are xs[p] (contiguous, rows[p] x d); its per-row arrays (weights,
 * labels, distances, bounds) start at offsets[p] in flat arrays of all problems' rows.
 *
 *   tk_moments_many: the data moments of every problem (tk_moments over its rows, shifted by
 *                    its first row), for the caller to turn into each problem's tolerance.
 *   tk_fit_many:     for every problem, what the single-problem fit does on the CPU: k-means++
 *                    (tk_order, then tk_kpp_all with that problem's uniform draws) unless its
 *                    initial centers are given, Lloyd iterations (tk_lloyd, with Hamerly's
 *                    bounds when asked, in calls of at most TK_LOOP_CALL iterations) and the
 *                    final assignment pass (the caller computes in the output dtype, so the
 *                    single-problem fit's rounding of the centers changes nothing).
 *
 * Problems are handed to threads one at a time (an atomic counter); each runs on one thread, and
 * every kernel it calls gives the same result whatever the thread count, so a problem's result
 * is the single-problem fit's, bit for bit, and does not depend on the threads or on B. A
 * problem whose pass leaves a cluster empty stops with status TK_BATCH_REFILL, its state kept
 * (labels, distances, bounds, the statistics of that pass, the iterations done): the caller
 * refills the empty clusters, as the single-problem fit does between two tk_lloyd calls, and
 * resumes those problems (resume = 1, which = their indices), which finish that iteration.
 */

typedef struct {
    int64_t count, d, k, max_rows;
    const T *const *xs;
    const int64_t *rows, *offsets;
    const T *w;
    T *centers;
    const double *u;
    int64_t draws, trials;
    const double *dir;
    const double *tol;
    int64_t max_iter;
    const int64_t *bounds, *stripe; /* per problem: the single fit's decisions for its size */
    int exact;
    int64_t thread_work;
    double rtol;
    /* each problem's state, kept between calls */
    int64_t *labels;
    T *dist;
    double *lower, *drift;
    int64_t *valid;
    double *sums, *weights, *counts, *inertia;
    int64_t *changed;
    const int64_t *relocated;
    int64_t *n_iter, *status;
    /* the problems of this call: which[0..runs) (NULL: 0..count); resume: finish the
     * iteration whose pass left a cluster empty */
    const int64_t *which;
    int64_t runs;
    int resume;
    int64_t next; /* the next problem to take (atomic) */
} SUF(batch_args);

/* Per-thread buffers of one problem's seeding and loop. */
typedef struct {
    double *hist;
    int64_t *order, *indices;
} SUF(batch_buffers);

static int SUF(batch_alloc)(SUF(batch_buffers) * b, int64_t n, int64_t k) {
    b->hist = (double *)malloc((size_t)(TK_HISTORY_FIELDS * TK_LOOP_CALL) * sizeof(double));
    b->order = (int64_t *)malloc((size_t)n * sizeof(int64_t));
    b->indices = (int64_t *)malloc((size_t)k * sizeof(int64_t));
    return b->hist && b->order && b->indices;
}

static void SUF(batch_free)(SUF(batch_buffers) * b) {
    free(b->hist);
    free(b->order);
    free(b->indices);
}

/* One problem, as _core.fit runs it with n_init = 1 (_lloyd_native's loop of tk_lloyd calls,
 * then the final pass); returns its status. */
static int64_t SUF(fit_one)(const SUF(batch_args) * a, int64_t p, SUF(batch_buffers) * buf) {
    const int64_t n = a->rows[p], d = a->d, k = a->k, at = a->offsets[p];
    const T *x = a->xs[p];
    const T *w = a->w ? a->w + at : NULL;
    T *centers = a->centers + p * k * d;
    int64_t *labels = a->labels + at;
    T *dist = a->dist + at;
    double *lower = a->bounds[p] ? a->lower + at : NULL;
    const int64_t stripe = a->stripe[p];
    double *sums = a->sums + p * k * d, *weights = a->weights + p * k;
    double *counts = a->counts + p * k, *inertia = a->inertia + p * k;
    int mode = TK_MODE_ITERATE;
    int64_t given_changed = 0, given_relocated = 0, status = TK_STATUS_RAN;
    if (a->resume) {
        mode = TK_MODE_FINISH;
        given_changed = a->changed[p];
        given_relocated = a->relocated[p];
    } else {
        if (a->u) {
            if (SUF(tk_order)(n, d, x, d, a->dir, buf->order) != 0) return TK_BATCH_NO_MEMORY;
            if (SUF(tk_kpp_all)(n, d, x, d, w, buf->order, a->u + p * a->draws, k, a->trials,
                                centers, buf->indices, a->rtol, 1, a->thread_work) != 0)
                return TK_BATCH_NO_MEMORY;
        }
        if (lower) memset(lower, 0, (size_t)n * sizeof(double));
        a->drift[p] = 0;
        a->valid[p] = 0;
        a->n_iter[p] = 0;
        for (int64_t i = 0; i < n; i++) labels[i] = -1;
    }
    int64_t it = a->n_iter[p];
    while (it < a->max_iter) {
        const int64_t steps =
            a->max_iter - it < TK_LOOP_CALL ? a->max_iter - it : (int64_t)TK_LOOP_CALL;
        const int64_t done = SUF(tk_lloyd)(
            n, d, k, x, d, w, centers, labels, dist, lower, &a->drift[p], &a->valid[p],
            a->exact, 1, 1, stripe, mode, steps, a->tol[p], given_changed, given_relocated,
            sums, weights, counts, inertia, buf->hist, &status);
        if (done < 0) return TK_BATCH_NO_MEMORY;
        mode = TK_MODE_ITERATE;
        given_changed = given_relocated = 0;
        it += done;
        a->n_iter[p] = it;
        if (status == TK_STATUS_STOPPED) break;
        if (status == TK_STATUS_EMPTY) { /* the pass of iteration it + 1: the caller refills */
            a->changed[p] = (int64_t)buf->hist[TK_HISTORY_FIELDS * done + 2];
            return TK_BATCH_REFILL;
        }
    }
    /* (the centers are already of the output dtype: the caller computes in it) */
    const int64_t done = SUF(tk_lloyd)(
        n, d, k, x, d, w, centers, labels, dist, lower, &a->drift[p], &a->valid[p], a->exact,
        1, 1, stripe, TK_MODE_ASSIGN, 1, 0.0, 0, 0, sums, weights, counts, inertia,
        buf->hist, &status);
    return done < 0 ? TK_BATCH_NO_MEMORY : TK_BATCH_DONE;
}

static void *SUF(batch_worker)(void *arg) {
    SUF(batch_args) *a = (SUF(batch_args) *)arg;
    SUF(batch_buffers) buf;
    const int ok = SUF(batch_alloc)(&buf, a->max_rows, a->k);
    for (;;) {
        const int64_t i = __atomic_fetch_add(&a->next, 1, __ATOMIC_RELAXED);
        if (i >= a->runs) break;
        const int64_t p = a->which ? a->which[i] : i;
        a->status[p] = ok ? SUF(fit_one)(a, p, &buf) : TK_BATCH_NO_MEMORY;
    }
    SUF(batch_free)(&buf);
    return NULL;
}

static void *SUF(batch_pointer_worker)(void *p) { return SUF(batch_worker)(*(void **)p); }

/* The data moments of each of count problems (xs, rows, offsets as for tk_fit_many): s1, s2
 * (count, d) and total (count) start at zero; first (count, d) gets each problem's first row
 * in float64. */
void SUF(tk_moments_many)(int64_t count, int64_t d, const T *const *xs, const int64_t *rows,
                          const int64_t *offsets, const T *w, double *first, double *s1,
                          double *s2, double *total) {
    for (int64_t p = 0; p < count; p++) {
        const T *xp = xs[p];
        for (int64_t j = 0; j < d; j++) first[p * d + j] = (double)xp[j];
        SUF(tk_moments)(rows[p], d, xp, d, w ? w + offsets[p] : NULL, first + p * d, s1 + p * d,
                        s2 + p * d, total + p);
    }
}

/* Fit count problems (see the header) on up to nthreads threads. xs, rows, offsets: the
 * problems' rows (max_rows at most); w: their weights (flat, or NULL); centers (count, k, d)
 * hold the initial centers when u is NULL and receive the fitted ones; u (count, draws) are
 * the uniform draws of k-means++ with trials local trials; tol (count) the absolute
 * tolerances; bounds and stripe (count) the single fit's decisions for each problem's size.
 * State per problem, kept between calls: labels and dist (flat), lower (flat; used where
 * bounds[p]), drift, valid, the statistics sums (count, k, d), weights, counts and inertia
 * (count, k) (after the final pass: its weights, counts and inertia per cluster), changed
 * (count: out, the changed count of a pass that left a cluster empty), relocated (count: in,
 * clusters refilled since), n_iter and status (count). which (runs indices, or NULL: every
 * problem) says which problems run; resume = 1 finishes their interrupted iteration. */
void SUF(tk_fit_many)(int64_t count, int64_t d, int64_t k, const T *const *xs,
                      const int64_t *rows, const int64_t *offsets, int64_t max_rows, const T *w,
                      T *centers, const double *u, int64_t draws, int64_t trials,
                      const double *dir, const double *tol, int64_t max_iter,
                      const int64_t *bounds, int exact, const int64_t *stripe,
                      int64_t thread_work, double rtol, int64_t *labels, T *dist, double *lower,
                      double *drift, int64_t *valid, double *sums, double *weights,
                      double *counts, double *inertia, int64_t *changed,
                      const int64_t *relocated, int64_t *n_iter, int64_t *status,
                      const int64_t *which, int64_t runs, int resume, int nthreads) {
    SUF(batch_args) shared = {
        count,  d,       k,       max_rows, xs,       rows,      offsets, w,       centers,
        u,      draws,   trials,  dir,      tol,      max_iter,  bounds,  stripe,  exact,
        thread_work, rtol, labels, dist,    lower,    drift,     valid,   sums,    weights,
        counts, inertia, changed, relocated, n_iter,  status,    which,   which ? runs : count,
        resume, 0};
    SUF(batch_args) *args[64];
    if (nthreads < 1) nthreads = 1;
    if (nthreads > 64) nthreads = 64;
    if (nthreads > shared.runs) nthreads = (int)(shared.runs > 0 ? shared.runs : 1);
    for (int t = 0; t < nthreads; t++) args[t] = &shared;
    tk_parallel(SUF(batch_pointer_worker), args, sizeof(args[0]), nthreads);
}
