/* Reading IPv4 lists in C: the common lines of a file, and the sort of the
 * single addresses.
 *
 * scan() reads the lines nearly every big list is made of (a bare address, a
 * CIDR block, an exclusion, an address with a value text already seen) and
 * stops at the first line it does not take whole: the Python reader
 * (datasets/ip4.py, base.py) reads that one, with its warnings, and is the
 * reference. So a line scan() takes must read exactly as the Python reader
 * reads it; anything unusual (a leading zero, a short prefix, a range, a tab
 * or a byte outside printable ASCII inside the line, a special, a default
 * line, a value text not seen yet) is left to Python.
 *
 * resolve() sorts the single addresses (stably, so file order decides among
 * repeats) and applies the rules of repeats, as ip4._Singles.resolve does.
 *
 * Written against the plain C API: building it needs nothing but a compiler
 * and the Python headers; where it is not built, the Python reader serves.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A growable array of uint32. */
typedef struct {
    uint32_t *items;
    Py_ssize_t len, cap;
} u32s;

static int
push(u32s *a, uint32_t value)
{
    if (a->len == a->cap) {
        Py_ssize_t cap = a->cap ? a->cap * 2 : 4096;
        uint32_t *items = PyMem_Realloc(a->items, (size_t)cap * sizeof(uint32_t));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        a->items = items;
        a->cap = cap;
    }
    a->items[a->len++] = value;
    return 0;
}

static PyObject *
as_bytes(u32s *a)
{
    return PyBytes_FromStringAndSize((const char *)a->items,
                                     a->len * (Py_ssize_t)sizeof(uint32_t));
}

/* A dotted quad written as inet_pton takes it (1 to 3 digits an octet, no
 * leading zero, at most 255) at s[*i], up to e. 0 if it is not one. */
static int
quad(const unsigned char *s, Py_ssize_t *i, Py_ssize_t e, uint32_t *out)
{
    Py_ssize_t at = *i;
    uint32_t address = 0;
    for (int octet = 0; octet < 4; octet++) {
        if (octet) {
            if (at >= e || s[at] != '.')
                return 0;
            at++;
        }
        Py_ssize_t start = at;
        unsigned value = 0;
        while (at < e && s[at] >= '0' && s[at] <= '9' && at - start < 4)
            value = value * 10 + (s[at++] - '0');
        Py_ssize_t digits = at - start;
        if (digits == 0 || digits > 3 || value > 255 || (digits > 1 && s[start] == '0'))
            return 0;
        address = address << 8 | value;
    }
    *i = at;
    *out = address;
    return 1;
}

/* A prefix length as ip4.py's _BITS has it: 1 to 32, no leading zero. */
static int
prefix_bits(const unsigned char *s, Py_ssize_t *i, Py_ssize_t e, int *out)
{
    Py_ssize_t at = *i;
    int value = 0;
    while (at < e && s[at] >= '0' && s[at] <= '9' && at - *i < 3)
        value = value * 10 + (s[at++] - '0');
    Py_ssize_t digits = at - *i;
    if (digits == 0 || digits > 2 || s[*i] == '0' || value > 32)
        return 0;
    *i = at;
    *out = value;
    return 1;
}

#define BLANK(c) ((c) == ' ' || (c) == '\t')

/* What scan() does with one line. */
enum { TAKEN, SKIPPED, LEFT, UNKNOWN_TEXT };

typedef struct {
    PyObject *texts;       /* value text (bytes) -> value number */
    uint32_t default_number;
    unsigned long long maxrange;
    int tset;
    u32s keys, numbers, starts, lines;
    PyObject *blocks;      /* list of (address, bits, number, line) */
    long prev_line;
    PyObject *text;        /* the unknown value text that stopped the scan */
} scanner;

static int
line(scanner *sc, const unsigned char *s, Py_ssize_t b, Py_ssize_t e, long lineno)
{
    /* What Python's str.strip() takes off that may appear here: blanks, and
     * the \r of a CRLF file at the end. */
    while (e > b && (BLANK(s[e - 1]) || s[e - 1] == '\r'))
        e--;
    while (b < e && BLANK(s[b]))
        b++;
    if (b == e)
        return SKIPPED;
    for (Py_ssize_t i = b; i < e; i++)
        if ((s[i] < 0x20 && s[i] != '\t') || s[i] > 0x7e)
            return LEFT; /* Python strips or keeps these by Unicode's rules */
    unsigned char first = s[b];
    if (first == '#' || first == ';')
        return (e - b > 1 && s[b + 1] == '$') ? LEFT : SKIPPED; /* #$ is a special */
    int excluded = first == '!';
    if (excluded) {
        if (sc->tset)
            return LEFT;
        b++;
        while (b < e && BLANK(s[b]))
            b++;
    }
    uint32_t address;
    int bits = 32;
    Py_ssize_t i = b;
    if (!quad(s, &i, e, &address))
        return LEFT;
    if (i < e && s[i] == '/') {
        if (sc->tset)
            return LEFT;
        i++;
        if (!prefix_bits(s, &i, e, &bits))
            return LEFT;
        if (bits < 32 && (address & (0xFFFFFFFFu >> bits)))
            return LEFT; /* a host part: Python warns */
    }
    if (i < e && !BLANK(s[i]))
        return LEFT;
    if (sc->maxrange && (1ULL << (32 - bits)) > sc->maxrange)
        return LEFT;
    uint32_t number = sc->default_number;
    if (excluded)
        number = 0;
    else if (!sc->tset) {
        while (i < e && BLANK(s[i]))
            i++;
        if (i < e && s[i] != '#' && s[i] != ';') {
            PyObject *text = PyBytes_FromStringAndSize((const char *)s + i, e - i);
            if (text == NULL)
                return -1;
            PyObject *found = PyDict_GetItemWithError(sc->texts, text);
            if (found == NULL) {
                if (PyErr_Occurred()) {
                    Py_DECREF(text);
                    return -1;
                }
                sc->text = text;
                return UNKNOWN_TEXT;
            }
            Py_DECREF(text);
            unsigned long value = PyLong_AsUnsignedLong(found);
            if (value == (unsigned long)-1 && PyErr_Occurred())
                return -1;
            number = (uint32_t)value;
        }
    }
    if (bits == 32) {
        if (lineno != sc->prev_line + 1 || sc->keys.len == 0)
            if (push(&sc->starts, (uint32_t)sc->keys.len) < 0 ||
                push(&sc->lines, (uint32_t)lineno) < 0)
                return -1;
        sc->prev_line = lineno;
        if (push(&sc->keys, address) < 0 || push(&sc->numbers, number) < 0)
            return -1;
        return TAKEN;
    }
    PyObject *block = Py_BuildValue("(kiIl)", (unsigned long)address, bits, number, lineno);
    if (block == NULL)
        return -1;
    int failed = PyList_Append(sc->blocks, block);
    Py_DECREF(block);
    return failed ? -1 : TAKEN;
}

static PyObject *
scan(PyObject *self, PyObject *args)
{
    Py_buffer data;
    Py_ssize_t pos;
    long lineno;
    PyObject *texts;
    unsigned int default_number;
    unsigned long long maxrange;
    int tset;
    if (!PyArg_ParseTuple(args, "y*nlO!IKp", &data, &pos, &lineno, &PyDict_Type, &texts,
                          &default_number, &maxrange, &tset))
        return NULL;
    scanner sc = {texts, default_number, maxrange, tset, {0}, {0}, {0}, {0}, NULL, 0, NULL};
    PyObject *result = NULL;
    const unsigned char *s = data.buf;
    Py_ssize_t n = data.len;
    int stopped = 0;
    if (pos < 0 || pos > n) {
        PyErr_SetString(PyExc_ValueError, "pos out of range");
        goto done;
    }
    sc.blocks = PyList_New(0);
    if (sc.blocks == NULL)
        goto done;
    while (pos < n) {
        const unsigned char *nl = memchr(s + pos, '\n', (size_t)(n - pos));
        Py_ssize_t e = nl ? nl - s : n;
        int what = line(&sc, s, pos, e, lineno);
        if (what < 0)
            goto done;
        if (what == LEFT || what == UNKNOWN_TEXT) {
            stopped = 1;
            break;
        }
        pos = nl ? e + 1 : n;
        lineno++;
    }
    result = Py_BuildValue("(nlOOO&O&O&O&O)", pos, lineno, stopped ? Py_True : Py_False,
                           sc.text ? sc.text : Py_None, as_bytes, &sc.keys, as_bytes,
                           &sc.numbers, as_bytes, &sc.starts, as_bytes, &sc.lines, sc.blocks);
done:
    PyBuffer_Release(&data);
    Py_XDECREF(sc.blocks);
    Py_XDECREF(sc.text);
    PyMem_Free(sc.keys.items);
    PyMem_Free(sc.numbers.items);
    PyMem_Free(sc.starts.items);
    PyMem_Free(sc.lines.items);
    return result;
}

/* Sort in place by radix, a byte at a time from the top (American flag
 * sort: no second array), from the byte at ``shift`` down; short stretches
 * by insertion. Each value is (address << 32 | index in file order): all
 * distinct, so the order is the one a stable sort of the addresses gives,
 * and it costs 8 bytes an entry, not the 16 of a sort into a second array. */
static void
flag_sort(uint64_t *a, Py_ssize_t n, int shift)
{
    if (n < 32) {
        for (Py_ssize_t i = 1; i < n; i++) {
            uint64_t v = a[i];
            Py_ssize_t j = i;
            for (; j > 0 && a[j - 1] > v; j--)
                a[j] = a[j - 1];
            a[j] = v;
        }
        return;
    }
    Py_ssize_t count[256] = {0}, next[256], end[256];
    for (Py_ssize_t i = 0; i < n; i++)
        count[(a[i] >> shift) & 255]++;
    Py_ssize_t at = 0;
    for (int b = 0; b < 256; b++) {
        next[b] = at;
        at += count[b];
        end[b] = at;
    }
    for (int b = 0; b < 256; b++) {
        while (next[b] < end[b]) { /* carry each value to its bucket, swapping */
            uint64_t v = a[next[b]];
            int d = (int)((v >> shift) & 255);
            while (d != b) {
                uint64_t w = a[next[d]];
                a[next[d]++] = v;
                v = w;
                d = (int)((v >> shift) & 255);
            }
            a[next[b]++] = v;
        }
    }
    if (shift == 0)
        return;
    for (int b = 0; b < 256; b++) {
        Py_ssize_t first = end[b] - count[b];
        if (count[b] > 1)
            flag_sort(a + first, count[b], shift - 8);
    }
}

static PyObject *
resolve(PyObject *self, PyObject *args)
{
    Py_buffer kb, nb;
    if (!PyArg_ParseTuple(args, "w*w*", &kb, &nb))
        return NULL;
    PyObject *result = NULL;
    uint64_t *sorted = NULL;
    u32s found_origins = {0}, found_keys = {0};
    Py_ssize_t n = kb.len / (Py_ssize_t)sizeof(uint32_t), kept = n, exclusions = 0;
    uint32_t *keys = kb.buf, *numbers = nb.buf;
    if (kb.itemsize != 4 || nb.itemsize != 4 || nb.len != kb.len) {
        PyErr_SetString(PyExc_ValueError, "two array('I') of the same length expected");
        goto done;
    }
    Py_ssize_t i = 1;
    while (i < n && keys[i - 1] < keys[i])
        i++;
    if (i < n) { /* not sorted, or repeats: sort, then walk the repeats */
        sorted = PyMem_Malloc((size_t)n * sizeof(uint64_t));
        if (sorted == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t j = 0; j < n; j++)
            sorted[j] = (uint64_t)keys[j] << 32 | (uint64_t)j;
        flag_sort(sorted, n, 56);
        Py_END_ALLOW_THREADS
        /* Entry j repeats the one before it, later in the files: it decides;
         * both listed is a warning; an exclusion of exactly this address wins.
         * What is kept goes to keys[w] and the low half of sorted[w] (read
         * already), as numbers is read in file order until the end. */
        Py_ssize_t w = 0;
        for (Py_ssize_t j = 0; j < n; j++) {
            uint32_t key = (uint32_t)(sorted[j] >> 32);
            uint32_t number = numbers[(uint32_t)sorted[j]];
            while (j + 1 < n && (uint32_t)(sorted[j + 1] >> 32) == key) {
                j++;
                uint32_t origin = (uint32_t)sorted[j], later = numbers[origin];
                if (later && number) {
                    if (push(&found_origins, origin) < 0 || push(&found_keys, key) < 0)
                        goto done;
                    number = later;
                }
                else if (number)
                    number = later; /* a later exclusion */
            }
            keys[w] = key;
            sorted[w] = number;
            w++;
        }
        for (Py_ssize_t j = 0; j < w; j++)
            numbers[j] = (uint32_t)sorted[j];
        kept = w;
    }
    for (Py_ssize_t j = 0; j < kept; j++)
        exclusions += numbers[j] == 0;
    result = Py_BuildValue("(nnO&O&)", kept, exclusions, as_bytes, &found_origins, as_bytes,
                           &found_keys);
done:
    PyBuffer_Release(&kb);
    PyBuffer_Release(&nb);
    PyMem_Free(sorted);
    PyMem_Free(found_origins.items);
    PyMem_Free(found_keys.items);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(data, pos, lineno, texts, default_number, maxrange, tset) -> (pos, lineno, "
     "stopped, text, keys, numbers, starts, lines, blocks): the lines of data from pos "
     "up to the first one left to Python."},
    {"resolve", resolve, METH_VARARGS,
     "resolve(keys, numbers) -> (kept, exclusions, found_origins, found_keys): sort the "
     "single addresses in place and fold their repeats."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "dnsbl.datasets._ip4scan",
    "Reading IPv4 lists, compiled (see datasets/ip4.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__ip4scan(void)
{
    return PyModule_Create(&module_def);
}
