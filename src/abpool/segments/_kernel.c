/*
 * The conditioned segments model's log density and gradient, compiled when abpool is installed.
 *
 * abpool/segments/density.py documents the model, the coordinates and the data buffer; the PyMC model of
 * abpool/segments/model.py is the reference, and tests/test_segments_kernel.py checks this code against
 * PyTensor's automatic differentiation of it. nutpie's Rust sampler calls the two entry points below through
 * C function pointers, whose addresses this module publishes; nothing is compiled when abpool runs.
 *
 * Buffer layout (float64): S, K, nu, location scale, sigma scale, V0, additive constant, then cell logit and
 * precision (S·(K+1) each), slope logit and precision (S·K each), trials and successes (S·(K+1) each), every
 * array arm-major so that the loops over segments read consecutive values.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Nine tenths of the time goes to exp and log, one cell at a time. On x86-64 Linux, glibc's vector maths
 * library (libmvec) has vector versions of both; declaring them lets GCC vectorise the loops over segments,
 * which halves the cost of a gradient. Elsewhere the loops stay scalar and give the same numbers to within
 * rounding. */
#if defined(ABPOOL_LIBMVEC) && defined(__GNUC__) && !defined(__clang__)
#define ABPOOL_VECTOR_MATH 1
#define ABPOOL_SIMD_MATH __attribute__((simd("notinbranch")))
ABPOOL_SIMD_MATH double exp(double);
ABPOOL_SIMD_MATH double log(double);
/* One copy for processors with AVX-512 (eight lanes), one for AVX2 and FMA (four), one for any x86-64 (two);
 * chosen when the module is loaded. */
#define ABPOOL_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define ABPOOL_VECTOR_MATH 0
#define ABPOOL_CLONES
#endif

enum { HEADER = 7, ON_STACK = 256, SCRATCH = 12 };

static int64_t coordinate_count(int64_t segments, int64_t treatments)
{
    return 2 + 2 * treatments + segments * (1 + treatments);
}

/* Whether x is finite, from its bits: the test must hold whatever the compiler assumes of the arithmetic. */
static int is_finite(double x)
{
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    return (bits & 0x7ff0000000000000ULL) != 0x7ff0000000000000ULL;
}

typedef struct {
    int64_t segments, treatments;
    const double *logit, *precision, *slope_logit, *slope_precision, *trials, *successes;
} Data;

static Data unpack(const double *data)
{
    Data d;
    d.segments = (int64_t)data[0];
    d.treatments = (int64_t)data[1];
    int64_t cells = d.segments * (d.treatments + 1);
    int64_t slopes = d.segments * d.treatments;
    d.logit = data + HEADER;
    d.precision = d.logit + cells;
    d.slope_logit = d.precision + cells;
    d.slope_precision = d.slope_logit + slopes;
    d.trials = d.slope_precision + slopes;
    d.successes = d.trials + cells;
    return d;
}

/* One arm's cells, forward: each segment's log-odds eta_s = base_s + mu + sigma·z_s (base 0 for the control arm's
 * intercepts, a_s for a treatment arm's), what the backward pass needs, and the sum of the cells' terms of the log
 * density. The loop is a function of its own so that the compiler knows its arrays apart (restrict) and
 * vectorises it. */
ABPOOL_CLONES static double arm_cells(int64_t S, double mu, double sigma, double sigma2, const double *restrict logit,
                                      const double *restrict precision, const double *restrict trials,
                                      const double *restrict successes, const double *restrict u,
                                      const double *restrict base, double *restrict eta_out, double *restrict est_out,
                                      double *restrict z_out, double *restrict r_out, double *restrict root_out,
                                      double *restrict g_out)
{
    double sum = 0.0;
    for (int64_t s = 0; s < S; s++) {
        const double p = precision[s];
        const double r = 1.0 / (1.0 + sigma2 * p);
        const double root = sqrt(r);
        const double est = logit[s] - base[s];
        const double z = (est - mu) * sigma * p * r + u[s] * root;
        const double eta = base[s] + mu + sigma * z;
        eta_out[s] = eta;
        est_out[s] = est;
        z_out[s] = z;
        r_out[s] = r;
        root_out[s] = root;
        /* One exponential serves the softplus and the logistic function; log(1 + e) rather than log1p(e), and
         * log r rather than -log1p(k), because only exp and log have vector versions; the difference is far
         * below the rounding of the sum (an absolute 1e-16 per cell, times its trials). */
        const double e = exp(-fabs(eta));
        sum += -0.5 * z * z + 0.5 * log(r) + successes[s] * eta - trials[s] * (log(1.0 + e) + (eta > 0.0 ? eta : 0.0));
        g_out[s] = successes[s] - trials[s] * ((eta >= 0.0 ? 1.0 : e) / (1.0 + e));
    }
    return sum;
}

/* The log density at x, its gradient written to grad; scratch holds SCRATCH values per segment. */
ABPOOL_CLONES static double log_density(const double *restrict x, const double *restrict data,
                                        double *restrict grad, double *restrict scratch)
{
    const Data d = unpack(data);
    const int64_t S = d.segments, K = d.treatments;
    const double nu = data[2], location_scale = data[3], scale = data[4], variance = data[5];
    const double t_scale = nu * location_scale * location_scale;
    const double inv_scale2 = 1.0 / (scale * scale);
    const double u_mu_a = x[1 + K];
    const int64_t first_a = 2 + 2 * K, first_b = first_a + S;
    const int64_t dim = coordinate_count(S, K);
    double *restrict a = scratch, *restrict root_r = scratch + S, *restrict z_a = scratch + 2 * S;
    double *restrict r_a = scratch + 3 * S, *restrict g_a = scratch + 4 * S;
    double *restrict z_k = scratch + 5 * S, *restrict r_k = scratch + 6 * S, *restrict root_k = scratch + 7 * S;
    double *restrict e_k = scratch + 8 * S, *restrict g_b = scratch + 9 * S;
    double *restrict zeros = scratch + 10 * S, *restrict unused = scratch + 11 * S;

    for (int64_t i = 0; i < dim; i++)
        grad[i] = 0.0;
    double logp = data[6];

    /* ---------------------------------------------------------------- intercepts, forward */
    const double sigma_a = exp(x[0]);
    const double sigma2_a = sigma_a * sigma_a;
    double total_a = 1.0 / variance, moment_a = 0.0, weight2_a = 0.0, weight2_est_a = 0.0;
    for (int64_t s = 0; s < S; s++) {
        const double p0 = d.precision[s];
        const double w = p0 / (1.0 + sigma2_a * p0);
        total_a += w;
        moment_a += w * d.logit[s];
        weight2_a += w * w;
        weight2_est_a += w * w * d.logit[s];
    }
    const double root_a = sqrt(total_a);
    const double mu_a = moment_a / total_a + u_mu_a / root_a;
    logp += -0.5 * log(total_a);
    logp += -0.5 * (nu + 1.0) * log1p(mu_a * mu_a / t_scale);
    logp += -0.5 * sigma2_a * inv_scale2 + x[0];

    for (int64_t s = 0; s < S; s++)
        zeros[s] = 0.0;
    logp += arm_cells(S, mu_a, sigma_a, sigma2_a, d.logit, d.precision, d.trials, d.successes, x + first_a, zeros, a,
                      unused, z_a, r_a, root_r, g_a);

    /* ---------------------------------------------------------------- each treatment arm, forward and back */
    for (int64_t t = 0; t < K; t++) {
        const double sigma = exp(x[1 + t]);
        const double sigma2 = sigma * sigma;
        const double u_mu = x[2 + K + t];
        const int64_t arm = (t + 1) * S, slope = t * S;
        double total = 1.0 / variance, moment = 0.0, weight2 = 0.0, weight2_est = 0.0;
        for (int64_t s = 0; s < S; s++) {
            const double q = d.slope_precision[slope + s];
            const double w = q / (1.0 + sigma2 * q);
            total += w;
            moment += w * d.slope_logit[slope + s];
            weight2 += w * w;
            weight2_est += w * w * d.slope_logit[slope + s];
        }
        const double root = sqrt(total);
        const double mu = moment / total + u_mu / root;
        logp += -0.5 * log(total);
        logp += -0.5 * (nu + 1.0) * log1p(mu * mu / t_scale);
        logp += -0.5 * sigma2 * inv_scale2 + x[1 + t];
        logp += arm_cells(S, mu, sigma, sigma2, d.logit + arm, d.precision + arm, d.trials + arm, d.successes + arm,
                          x + first_b + slope, a, unused, e_k, z_k, r_k, root_k, g_b);
        /* back through b = mu + sigma·z and z(e, mu, sigma, u), e = logit − a */
        double g_mu = -(nu + 1.0) * mu / (t_scale + mu * mu);
        double g_sigma = 0.0;
        for (int64_t s = 0; s < S; s++) {
            const double p = d.precision[arm + s];
            const double k = sigma2 * p;
            const double r = r_k[s];
            const double g_z = g_b[s] * sigma - z_k[s];
            g_mu += g_b[s] - g_z * sigma * p * r;
            const double u_b = x[first_b + slope + s];
            const double dz_dsigma = (e_k[s] - mu) * p * r * r * (1.0 - k) - u_b * sigma * p * r * root_k[s];
            g_sigma += g_b[s] * z_k[s] + g_z * dz_dsigma - sigma * p * r;
            grad[first_b + slope + s] = g_z * root_k[s];
            g_a[s] += g_b[s] - g_z * sigma * p * r;
        }
        /* back through mu = M/T + u/√T, the log T term, and T(sigma), M(sigma) */
        grad[2 + K + t] = g_mu / root;
        const double g_total = g_mu * (-moment / (total * total) - 0.5 * u_mu / (total * root)) - 0.5 / total;
        const double g_moment = g_mu / total;
        g_sigma += g_total * (-2.0 * sigma * weight2) + g_moment * (-2.0 * sigma * weight2_est);
        grad[1 + t] = g_sigma * sigma - sigma2 * inv_scale2 + 1.0;
    }

    /* ---------------------------------------------------------------- intercepts, back */
    double g_mu_a = -(nu + 1.0) * mu_a / (t_scale + mu_a * mu_a);
    double g_sigma_a = 0.0;
    for (int64_t s = 0; s < S; s++) {
        const double p0 = d.precision[s];
        const double k = sigma2_a * p0;
        const double r = r_a[s];
        const double g_z = g_a[s] * sigma_a - z_a[s];
        g_mu_a += g_a[s] - g_z * sigma_a * p0 * r;
        const double dz_dsigma =
            (d.logit[s] - mu_a) * p0 * r * r * (1.0 - k) - x[first_a + s] * sigma_a * p0 * r * root_r[s];
        g_sigma_a += g_a[s] * z_a[s] + g_z * dz_dsigma - sigma_a * p0 * r;
        grad[first_a + s] = g_z * root_r[s];
    }
    grad[1 + K] = g_mu_a / root_a;
    const double g_total = g_mu_a * (-moment_a / (total_a * total_a) - 0.5 * u_mu_a / (total_a * root_a)) -
                           0.5 / total_a;
    const double g_moment = g_mu_a / total_a;
    g_sigma_a += g_total * (-2.0 * sigma_a * weight2_a) + g_moment * (-2.0 * sigma_a * weight2_est_a);
    grad[0] = g_sigma_a * sigma_a - sigma2_a * inv_scale2 + 1.0;
    return logp;
}

/* The model's parameters at x, in order sigma_a, sigma_b[K], mu_a, mu_b[K], a[S], b[S, K] (segment-major): the
 * forward pass of log_density, and the arithmetic of abpool.segments.model.complete_draws. */
ABPOOL_CLONES static void model_parameters(const double *restrict x, const double *restrict data,
                                           double *restrict out)
{
    const Data d = unpack(data);
    const int64_t S = d.segments, K = d.treatments;
    const double variance = data[5];
    const int64_t first_a = 2 + 2 * K, first_b = first_a + S;

    const double sigma_a = exp(x[0]);
    const double sigma2_a = sigma_a * sigma_a;
    double total_a = 1.0 / variance, moment_a = 0.0;
    for (int64_t s = 0; s < S; s++) {
        const double w = d.precision[s] / (1.0 + sigma2_a * d.precision[s]);
        total_a += w;
        moment_a += w * d.logit[s];
    }
    const double mu_a = moment_a / total_a + x[1 + K] / sqrt(total_a);
    out[0] = sigma_a;
    out[1 + K] = mu_a;
    for (int64_t s = 0; s < S; s++) {
        const double p0 = d.precision[s];
        const double r = 1.0 / (1.0 + sigma2_a * p0);
        const double z = (d.logit[s] - mu_a) * sigma_a * p0 * r + x[first_a + s] * sqrt(r);
        out[first_a + s] = mu_a + sigma_a * z;
    }
    for (int64_t t = 0; t < K; t++) {
        const double sigma = exp(x[1 + t]);
        const double sigma2 = sigma * sigma;
        const int64_t arm = (t + 1) * S, slope = t * S;
        double total = 1.0 / variance, moment = 0.0;
        for (int64_t s = 0; s < S; s++) {
            const double q = d.slope_precision[slope + s];
            const double w = q / (1.0 + sigma2 * q);
            total += w;
            moment += w * d.slope_logit[slope + s];
        }
        const double mu = moment / total + x[2 + K + t] / sqrt(total);
        out[1 + t] = sigma;
        out[2 + K + t] = mu;
        for (int64_t s = 0; s < S; s++) {
            const double p = d.precision[arm + s];
            const double r = 1.0 / (1.0 + sigma2 * p);
            const double z =
                (d.logit[arm + s] - out[first_a + s] - mu) * sigma * p * r + x[first_b + slope + s] * sqrt(r);
            out[first_b + s * K + t] = mu + sigma * z;
        }
    }
}

/* ------------------------------------------------------------------------------------------- nutpie's C ABI */

/* The log density for nutpie: 0 on success, 3/4 for a non-finite gradient/density, -1 for a wrong dimension,
 * -2 when memory runs out. */
static int64_t abpool_log_density(uint64_t dim, const double *x, double *grad, double *logp, void *user_data)
{
    const double *data = (const double *)user_data;
    const int64_t segments = (int64_t)data[0], treatments = (int64_t)data[1];
    if ((int64_t)dim != coordinate_count(segments, treatments))
        return -1;
    double on_stack[SCRATCH * ON_STACK];
    double *scratch = segments <= ON_STACK ? on_stack : malloc(sizeof(double) * SCRATCH * (size_t)segments);
    if (scratch == NULL)
        return -2;
    const double value = log_density(x, data, grad, scratch);
    if (scratch != on_stack)
        free(scratch);
    *logp = value;
    for (uint64_t i = 0; i < dim; i++)
        if (!is_finite(grad[i]))
            return 3;
    if (!is_finite(value))
        return 4;
    return 0;
}

/* The draws nutpie keeps: the model's parameters (model_parameters). */
static int64_t abpool_expand(uint64_t dim, uint64_t expanded, const double *x, double *out, void *user_data)
{
    const double *data = (const double *)user_data;
    if (expanded != dim || (int64_t)dim != coordinate_count((int64_t)data[0], (int64_t)data[1]))
        return -1;
    model_parameters(x, data, out);
    return 0;
}

/* ------------------------------------------------------------------------------------------- Python module */

static struct PyModuleDef kernel_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "abpool.segments._kernel",
    .m_doc = "The conditioned segments model's log density and gradient as C functions for nutpie "
             "(see abpool.segments.density).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__kernel(void)
{
    PyObject *module = PyModule_Create(&kernel_module);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObject(module, "log_density_address", PyLong_FromVoidPtr((void *)&abpool_log_density)) < 0 ||
        PyModule_AddObject(module, "expand_address", PyLong_FromVoidPtr((void *)&abpool_expand)) < 0 ||
        PyModule_AddIntConstant(module, "HEADER", HEADER) < 0 ||
        PyModule_AddIntConstant(module, "VECTOR_MATH", ABPOOL_VECTOR_MATH) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
