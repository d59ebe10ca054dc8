/* Compiled kernels of the text metrics' normalisation (see vlmhyperbench/metrics/fast.py).
 *
 * Both map each string through ``table``: 65536 native uint16 values built by
 * vlmhyperbench.metrics.fast._table, the normalised code unit of every BMP code point (case
 * folding, ё → е, punctuation and whitespace → space already applied), or 0xFFFF where one
 * character cannot be normalised on its own (a multi-character case fold, a character NFKC may
 * change, ...). Whitespace runs are collapsed and the ends stripped when asked.
 *
 * match(predictions, references, table, collapse_spaces, nested) -> bytes, one status a sample:
 *     0 = no reference matches, 1 = a reference matches, 2 = this sample needs the Python path.
 *     References are a list (or tuple) of strings per sample when ``nested``, else one string.
 * normalize(strings, table, collapse_spaces) -> list: the normalised strings, None where a
 *     string needs the Python path.
 *
 * A 0xFFFF value, a non-BMP character, an item that is not a str or a sample without references
 * sends its sample to Python, which normalises it in full (and raises the error for bad input),
 * so the kernels never have to be right about anything hard.
 *
 * Why C: the numpy/Arrow paths have to join and encode the strings before they can vectorise,
 * and split the result again, which costs more than these whole kernels
 * (benchmarks/metrics_throughput.py measures both).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define SPECIAL 0xFFFF
#define SPACE 0x20

typedef struct {
    uint16_t *data;
    Py_ssize_t capacity;
} Buffer;

static int
reserve(Buffer *buffer, Py_ssize_t size)
{
    if (size <= buffer->capacity && buffer->data != NULL) {
        return 0;
    }
    Py_ssize_t capacity = size < 256 ? 256 : size * 2;
    uint16_t *data = PyMem_Realloc(buffer->data, (size_t)capacity * sizeof(uint16_t));
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    buffer->data = data;
    buffer->capacity = capacity;
    return 0;
}

#define MAP_UNITS(TYPE)                                                      \
    do {                                                                     \
        const TYPE *units = (const TYPE *)PyUnicode_DATA(text);              \
        for (Py_ssize_t i = 0; i < length; i++) {                            \
            Py_UCS4 unit = units[i];                                         \
            if (unit > 0xFFFF) {                                             \
                return -2;                                                   \
            }                                                                \
            uint16_t mapped = table[unit];                                   \
            if (mapped == SPECIAL) {                                         \
                return -2;                                                   \
            }                                                                \
            changed |= mapped != unit;                                       \
            if (collapse && mapped == SPACE) {                               \
                pending = size > 0;                                          \
                continue;                                                    \
            }                                                                \
            if (pending) {                                                   \
                out[size++] = SPACE;                                         \
                pending = 0;                                                 \
            }                                                                \
            maxchar |= mapped;                                               \
            out[size++] = mapped;                                            \
        }                                                                    \
    } while (0)

/* The normalised form of ``text`` in ``buffer``: its length, -2 for "needs Python", -1 on error.
 * ``identical`` (optional) tells whether it equals ``text``; ``wide``, whether it needs 2 bytes
 * per character. */
static Py_ssize_t
normalise(PyObject *text, const uint16_t *table, int collapse, Buffer *buffer, int *identical,
          int *wide)
{
    if (!PyUnicode_Check(text)) {
        return -2;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(text) < 0) { /* a legacy string built by the old C API */
        return -1;
    }
#endif
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    if (reserve(buffer, length) < 0) {
        return -1;
    }
    uint16_t *out = buffer->data;
    Py_ssize_t size = 0;
    int pending = 0, changed = 0;
    unsigned int maxchar = 0;
    switch (PyUnicode_KIND(text)) {
    case PyUnicode_1BYTE_KIND:
        MAP_UNITS(Py_UCS1);
        break;
    case PyUnicode_2BYTE_KIND:
        MAP_UNITS(Py_UCS2);
        break;
    default:
        MAP_UNITS(Py_UCS4);
        break;
    }
    if (identical != NULL) {
        *identical = !changed && size == length;
        *wide = maxchar > 0xFF;
    }
    return size;
}

/* Status of one sample: 0, 1 or 2 as in the module docstring, -1 on error. */
static int
match_sample(PyObject *prediction, PyObject *references, int nested, const uint16_t *table,
             int collapse, Buffer *predicted, Buffer *expected)
{
    Py_ssize_t size = normalise(prediction, table, collapse, predicted, NULL, NULL);
    if (size < 0) {
        return size == -1 ? -1 : 2;
    }
    if (!nested) {
        Py_ssize_t other = normalise(references, table, collapse, expected, NULL, NULL);
        if (other < 0) {
            return other == -1 ? -1 : 2;
        }
        return other == size && memcmp(predicted->data, expected->data, size * 2) == 0;
    }
    if (!PyList_Check(references) && !PyTuple_Check(references)) {
        return 2; /* a bare string, a generator, ...: Python says what is wrong */
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(references);
    if (count == 0) {
        return 2;
    }
    PyObject **items = PySequence_Fast_ITEMS(references);
    int status = 0;
    for (Py_ssize_t j = 0; j < count; j++) {
        Py_ssize_t other = normalise(items[j], table, collapse, expected, NULL, NULL);
        if (other == -1) {
            return -1;
        }
        if (other == -2) {
            status = 2; /* Python decides, unless a later reference matches */
        }
        else if (other == size && memcmp(predicted->data, expected->data, size * 2) == 0) {
            return 1;
        }
    }
    return status;
}

static PyObject *
match(PyObject *module, PyObject *args)
{
    PyObject *predictions, *references;
    Py_buffer table;
    int collapse, nested;
    if (!PyArg_ParseTuple(args, "OOy*pp:match", &predictions, &references, &table, &collapse,
                          &nested)) {
        return NULL;
    }
    PyObject *result = NULL, *left = NULL, *right = NULL;
    Buffer predicted = {NULL, 0}, expected = {NULL, 0};
    if (table.len != 0x10000 * (Py_ssize_t)sizeof(uint16_t)) {
        PyErr_SetString(PyExc_ValueError, "table must hold 65536 uint16 values");
        goto done;
    }
    left = PySequence_Fast(predictions, "predictions must be a sequence");
    right = left == NULL ? NULL : PySequence_Fast(references, "references must be a sequence");
    if (right == NULL) {
        goto done;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(left);
    if (PySequence_Fast_GET_SIZE(right) != n) {
        PyErr_Format(PyExc_ValueError, "%zd predictions but %zd references", n,
                     PySequence_Fast_GET_SIZE(right));
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, n);
    if (result == NULL) {
        goto done;
    }
    char *status = PyBytes_AS_STRING(result);
    PyObject **preds = PySequence_Fast_ITEMS(left), **refs = PySequence_Fast_ITEMS(right);
    for (Py_ssize_t i = 0; i < n; i++) {
        int one = match_sample(preds[i], refs[i], nested, (const uint16_t *)table.buf, collapse,
                               &predicted, &expected);
        if (one < 0) {
            Py_CLEAR(result);
            goto done;
        }
        status[i] = (char)one;
    }
done:
    PyMem_Free(predicted.data);
    PyMem_Free(expected.data);
    Py_XDECREF(left);
    Py_XDECREF(right);
    PyBuffer_Release(&table);
    return result;
}

/* A new str holding the ``size`` code units of ``units``. */
static PyObject *
from_units(const uint16_t *units, Py_ssize_t size, int wide)
{
    PyObject *text = PyUnicode_New(size, wide ? 0xFFFF : 0xFF);
    if (text == NULL) {
        return NULL;
    }
    if (wide) {
        memcpy(PyUnicode_DATA(text), units, size * sizeof(uint16_t));
    }
    else {
        Py_UCS1 *out = PyUnicode_1BYTE_DATA(text);
        for (Py_ssize_t i = 0; i < size; i++) {
            out[i] = (Py_UCS1)units[i];
        }
    }
    return text;
}

static PyObject *
normalize(PyObject *module, PyObject *args)
{
    PyObject *strings;
    Py_buffer table;
    int collapse;
    if (!PyArg_ParseTuple(args, "Oy*p:normalize", &strings, &table, &collapse)) {
        return NULL;
    }
    PyObject *result = NULL, *items = NULL;
    Buffer buffer = {NULL, 0};
    if (table.len != 0x10000 * (Py_ssize_t)sizeof(uint16_t)) {
        PyErr_SetString(PyExc_ValueError, "table must hold 65536 uint16 values");
        goto done;
    }
    items = PySequence_Fast(strings, "strings must be a sequence");
    if (items == NULL) {
        goto done;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(items);
    result = PyList_New(n);
    if (result == NULL) {
        goto done;
    }
    PyObject **texts = PySequence_Fast_ITEMS(items);
    for (Py_ssize_t i = 0; i < n; i++) {
        int identical, wide;
        Py_ssize_t size = normalise(texts[i], (const uint16_t *)table.buf, collapse, &buffer,
                                    &identical, &wide);
        PyObject *out;
        if (size == -1) {
            Py_CLEAR(result);
            goto done;
        }
        if (size == -2) {
            out = Py_NewRef(Py_None);
        }
        else if (identical) {
            out = Py_NewRef(texts[i]); /* nothing to change: no new object */
        }
        else {
            out = from_units(buffer.data, size, wide);
            if (out == NULL) {
                Py_CLEAR(result);
                goto done;
            }
        }
        PyList_SET_ITEM(result, i, out);
    }
done:
    PyMem_Free(buffer.data);
    Py_XDECREF(items);
    PyBuffer_Release(&table);
    return result;
}

static PyMethodDef methods[] = {
    {"match", match, METH_VARARGS,
     "match(predictions, references, table, collapse_spaces, nested) -> bytes of statuses"},
    {"normalize", normalize, METH_VARARGS,
     "normalize(strings, table, collapse_spaces) -> list of str, None where Python must"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "_kernels",
    .m_doc = "Compiled kernels of the text metrics' normalisation (see _kernels.c).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__kernels(void)
{
    return PyModule_Create(&module);
}
