/* Standard Ribbon solve (banding + back substitution) in C: the same algorithm, in the same
 * order, as blindmatch/psi/_ribbon.py's pure-Python `solve`, so both give the same rows
 * bit for bit (a test checks it). Buffers in, one buffer out, the GIL released while it
 * runs. The caller (_ribbon.py) passes C-contiguous int64/uint64 arrays; every length and
 * start is checked here, so no call reads or writes outside its buffers. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>

#define WIDTH 128

static int ctz64(uint64_t x) { return __builtin_ctzll(x); }

/* 0 solved, 1 no solution, -1 out of memory. */
static int solve_core(const int64_t *starts, const uint64_t *low, const uint64_t *high,
                      const uint64_t *fingerprints, Py_ssize_t count, Py_ssize_t slots,
                      uint64_t *solution) {
    uint64_t *rows_low = calloc((size_t)slots, sizeof(uint64_t));
    uint64_t *rows_high = calloc((size_t)slots, sizeof(uint64_t));
    uint64_t *rhs = calloc((size_t)slots, sizeof(uint64_t));
    int status = 0;
    if (rows_low == NULL || rows_high == NULL || rhs == NULL) {
        status = -1;
        goto done;
    }
    for (Py_ssize_t k = 0; k < count; k++) {
        Py_ssize_t i = (Py_ssize_t)starts[k];
        uint64_t lo = low[k], hi = high[k], b = fingerprints[k];
        for (;;) {
            if (rows_low[i] == 0 && rows_high[i] == 0) {
                rows_low[i] = lo;
                rows_high[i] = hi;
                rhs[i] = b;
                break;
            }
            lo ^= rows_low[i];
            hi ^= rows_high[i];
            b ^= rhs[i];
            if (lo == 0 && hi == 0) {
                if (b != 0) status = 1;
                break;
            }
            int shift = lo ? ctz64(lo) : 64 + ctz64(hi);
            i += shift;
            if (shift >= 64) {
                lo = hi >> (shift - 64);
                hi = 0;
            } else if (shift > 0) {
                lo = (lo >> shift) | (hi << (64 - shift));
                hi >>= shift;
            }
        }
        if (status) goto done;
    }
    for (Py_ssize_t i = slots - 1; i >= 0; i--) {
        uint64_t lo = rows_low[i] & ~(uint64_t)1, hi = rows_high[i];
        if (rows_low[i] == 0 && hi == 0) {
            solution[i] = 0;
            continue;
        }
        uint64_t value = rhs[i];
        while (lo) {
            value ^= solution[i + ctz64(lo)];
            lo &= lo - 1;
        }
        while (hi) {
            value ^= solution[i + 64 + ctz64(hi)];
            hi &= hi - 1;
        }
        solution[i] = value;
    }
done:
    free(rows_low);
    free(rows_high);
    free(rhs);
    return status;
}

PyDoc_STRVAR(solve_doc,
             "solve(starts, low, high, fingerprints, slots, out)\n--\n\n"
             "Band and back-substitute one standard Ribbon of `slots` rows: starts int64, the "
             "coefficients' low and high 64 bits and the fingerprints uint64 (one per key), "
             "`out` uint64 (slots). Returns True when solved, False when the system has no "
             "solution.");

static PyObject *solve(PyObject *self, PyObject *args) {
    Py_buffer starts, low, high, fingerprints, out;
    Py_ssize_t slots;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*y*y*nw*", &starts, &low, &high, &fingerprints, &slots,
                          &out))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t count = starts.len / 8;
    int status = 0;
    if (slots < WIDTH || starts.len % 8 || low.len != starts.len || high.len != starts.len ||
        fingerprints.len != starts.len || out.len != slots * 8) {
        PyErr_SetString(PyExc_ValueError, "ribbon buffers have the wrong sizes");
        goto release;
    }
    const int64_t *start_values = (const int64_t *)starts.buf;
    const uint64_t *low_values = (const uint64_t *)low.buf;
    for (Py_ssize_t k = 0; k < count; k++) {
        if (start_values[k] < 0 || start_values[k] > slots - WIDTH) {
            PyErr_SetString(PyExc_ValueError, "a ribbon start is out of range");
            goto release;
        }
        /* Every coefficient starts with a 1 (its start row): without it, elimination
         * against a stored row could toggle forever instead of moving on. */
        if ((low_values[k] & 1) == 0) {
            PyErr_SetString(PyExc_ValueError, "a ribbon coefficient does not start with 1");
            goto release;
        }
    }
    Py_BEGIN_ALLOW_THREADS;
    status = solve_core(start_values, (const uint64_t *)low.buf, (const uint64_t *)high.buf,
                        (const uint64_t *)fingerprints.buf, count, slots, (uint64_t *)out.buf);
    Py_END_ALLOW_THREADS;
    if (status < 0) {
        PyErr_NoMemory();
        goto release;
    }
    result = PyBool_FromLong(status == 0);
release:
    PyBuffer_Release(&starts);
    PyBuffer_Release(&low);
    PyBuffer_Release(&high);
    PyBuffer_Release(&fingerprints);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"solve", solve, METH_VARARGS, solve_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "_ribbon_cext",
    "Standard Ribbon solve in C; use blindmatch.psi._ribbon.",
    0,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__ribbon_cext(void) { return PyModuleDef_Init(&module); }
