/* CPython binding of _pdq_core.c: buffers in, buffers out, the GIL released while the core
 * runs. Arrays are passed through the buffer protocol, so the build needs no numpy headers;
 * blindmatch/fingerprint/_pdq_c.py allocates the outputs and guarantees dtypes and C order.
 * Every length is checked here against the sizes passed, and the core checks the geometry,
 * so no call can read or write outside its buffers. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_pdq_core.h"

static int check_length(const Py_buffer *buffer, Py_ssize_t count, Py_ssize_t itemsize,
                        const char *what) {
    if (count < 0 || (itemsize > 0 && count > PY_SSIZE_T_MAX / itemsize) ||
        buffer->len != count * itemsize) {
        PyErr_Format(PyExc_ValueError, "%s has the wrong size", what);
        return -1;
    }
    return 0;
}

static Py_ssize_t area(Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t channels) {
    if (rows < 1 || cols < 1 || channels < 1 || rows > PY_SSIZE_T_MAX / cols ||
        rows * cols > PY_SSIZE_T_MAX / channels)
        return -1;
    return rows * cols * channels;
}

static PyObject *status_error(int status) {
    if (status == PDQ_NO_MEMORY) return PyErr_NoMemory();
    PyErr_SetString(PyExc_ValueError, "PDQ geometry out of range");
    return NULL;
}

PyDoc_STRVAR(samples_from_rgb_doc,
             "samples_from_rgb(rgb, rows, cols, channels, row_window, col_window, row_idx, "
             "col_idx, passes, out)\n--\n\n"
             "Luma, Jarosz passes and 64x64 decimation of C-ordered uint8 RGB(A) bytes into "
             "`out` (4096 float32).");

static PyObject *samples_from_rgb(PyObject *self, PyObject *args) {
    Py_buffer rgb, row_idx, col_idx, out;
    Py_ssize_t rows, cols, channels, row_window, col_window;
    int passes, status = PDQ_OK;
    PyObject *result = NULL;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*nnnnny*y*iw*", &rgb, &rows, &cols, &channels, &row_window,
                          &col_window, &row_idx, &col_idx, &passes, &out))
        return NULL;
    if (check_length(&rgb, area(rows, cols, channels), 1, "rgb") == 0 &&
        check_length(&row_idx, PDQ_SAMPLES, sizeof(ptrdiff_t), "row_idx") == 0 &&
        check_length(&col_idx, PDQ_SAMPLES, sizeof(ptrdiff_t), "col_idx") == 0 &&
        check_length(&out, PDQ_SAMPLES * PDQ_SAMPLES, sizeof(float), "out") == 0) {
        if (row_window < 1 || col_window < 1) {
            PyErr_SetString(PyExc_ValueError, "PDQ windows must be >= 1");
        } else {
            Py_BEGIN_ALLOW_THREADS status = pdq_samples_from_rgb(
                (const uint8_t *)rgb.buf, (size_t)rows, (size_t)cols, (size_t)channels,
                (size_t)row_window, (size_t)col_window, (const ptrdiff_t *)row_idx.buf,
                (const ptrdiff_t *)col_idx.buf, passes, (float *)out.buf);
            Py_END_ALLOW_THREADS
            if (status == PDQ_OK) {
                result = Py_NewRef(Py_None);
            } else {
                status_error(status);
            }
        }
    }
    PyBuffer_Release(&rgb);
    PyBuffer_Release(&row_idx);
    PyBuffer_Release(&col_idx);
    PyBuffer_Release(&out);
    return result;
}

PyDoc_STRVAR(samples_from_luma_doc,
             "samples_from_luma(luma, rows, cols, row_window, col_window, row_idx, col_idx, "
             "passes, out)\n--\n\n"
             "Jarosz passes and 64x64 decimation of a C-ordered float32 luma plane into `out`.");

static PyObject *samples_from_luma(PyObject *self, PyObject *args) {
    Py_buffer luma, row_idx, col_idx, out;
    Py_ssize_t rows, cols, row_window, col_window;
    int passes, status = PDQ_OK;
    PyObject *result = NULL;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*nnnny*y*iw*", &luma, &rows, &cols, &row_window, &col_window,
                          &row_idx, &col_idx, &passes, &out))
        return NULL;
    if (check_length(&luma, area(rows, cols, 1), sizeof(float), "luma") == 0 &&
        check_length(&row_idx, PDQ_SAMPLES, sizeof(ptrdiff_t), "row_idx") == 0 &&
        check_length(&col_idx, PDQ_SAMPLES, sizeof(ptrdiff_t), "col_idx") == 0 &&
        check_length(&out, PDQ_SAMPLES * PDQ_SAMPLES, sizeof(float), "out") == 0) {
        if (row_window < 1 || col_window < 1) {
            PyErr_SetString(PyExc_ValueError, "PDQ windows must be >= 1");
        } else {
            Py_BEGIN_ALLOW_THREADS status = pdq_samples_from_luma(
                (const float *)luma.buf, (size_t)rows, (size_t)cols, (size_t)row_window,
                (size_t)col_window, (const ptrdiff_t *)row_idx.buf,
                (const ptrdiff_t *)col_idx.buf, passes, (float *)out.buf);
            Py_END_ALLOW_THREADS
            if (status == PDQ_OK) {
                result = Py_NewRef(Py_None);
            } else {
                status_error(status);
            }
        }
    }
    PyBuffer_Release(&luma);
    PyBuffer_Release(&row_idx);
    PyBuffer_Release(&col_idx);
    PyBuffer_Release(&out);
    return result;
}

PyDoc_STRVAR(dct16_doc,
             "dct16(samples, matrix, block)\n--\n\n"
             "block (16x16 float32) = (D @ A) @ D.T for samples A (64x64) and matrix D (16x64), "
             "summed in the reference's order.");

static PyObject *dct16(PyObject *self, PyObject *args) {
    Py_buffer samples, matrix, block;
    PyObject *result = NULL;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*w*", &samples, &matrix, &block)) return NULL;
    if (check_length(&samples, PDQ_SAMPLES * PDQ_SAMPLES, sizeof(float), "samples") == 0 &&
        check_length(&matrix, PDQ_DCT_ROWS * PDQ_SAMPLES, sizeof(float), "matrix") == 0 &&
        check_length(&block, PDQ_DCT_ROWS * PDQ_DCT_ROWS, sizeof(float), "block") == 0) {
        pdq_dct16((const float *)samples.buf, (const float *)matrix.buf, (float *)block.buf);
        result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&samples);
    PyBuffer_Release(&matrix);
    PyBuffer_Release(&block);
    return result;
}

static PyMethodDef methods[] = {
    {"samples_from_rgb", samples_from_rgb, METH_VARARGS, samples_from_rgb_doc},
    {"samples_from_luma", samples_from_luma, METH_VARARGS, samples_from_luma_doc},
    {"dct16", dct16, METH_VARARGS, dct16_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "_pdq_cext",
    "The PDQ core in C (see _pdq_core.c); use blindmatch.fingerprint._pdq_c.",
    0,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__pdq_cext(void) { return PyModuleDef_Init(&module); }
