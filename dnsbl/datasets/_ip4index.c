/* The lookup of an IPv4 dataset (datasets/ip4.py) in C, for the compiled
 * fast path (dnsbl/_fastpath.c), which calls it through a capsule with no
 * Python call and no attribute lookup per query.
 *
 * An Index holds what IP4Dataset's Python lookup reads: the sorted single
 * addresses (array('I')), their value numbers, the table of where each block
 * of addresses sharing their top bits starts, the values list. Its arrays are
 * held as buffers for its lifetime, so they cannot be resized under it.
 *
 * The blocks (CIDRs), which the Python lookup finds in a Patricia trie, are
 * flattened here into sorted disjoint ranges, each with the value number of
 * the longest prefix covering it: a lookup is then one short bisect in a flat
 * array, with its own top-bits table, instead of a walk down a tree of
 * pointers (a cache miss per level). tests/test_ip4index.py holds the two
 * lookups to the same values on random data.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_ip4index.h"

/* No block covers the range: the lookup's None. */
#define NO_BLOCK UINT32_MAX

typedef struct {
    PyObject_HEAD
    Py_buffer keys, starts, numbers; /* held while the Index lives */
    PyObject *values;                /* list */
    const uint32_t *key, *start, *number;
    Py_ssize_t nkeys;
    int shift;
    /* The blocks: bound[i] is where range i starts (bound[0] == 0), which runs
     * up to bound[i + 1]; its value number is bound_number[i] (NO_BLOCK: none).
     * bound_table[b]: the first range starting at or after b << bound_shift. */
    uint32_t *bound, *bound_number, *bound_table;
    Py_ssize_t nbounds;
    int bound_shift;
    Py_ssize_t blocks;
} Index;

/* The number of top bits a table goes by: as IP4Dataset's _index_bits. */
static int
table_bits(Py_ssize_t count)
{
    int bits = 0;
    while (count > 0) {
        bits++;
        count >>= 1;
    }
    bits -= 5;
    return bits < 8 ? 8 : bits > 16 ? 16 : bits;
}

/* An array('I') of 4-byte items held in view, or -1 with a TypeError. */
static int
uint32_array(PyObject *obj, Py_buffer *view, const char *what)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    if (view->itemsize != 4 || view->format == NULL || strcmp(view->format, "I") != 0) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_TypeError, "%s must be an array('I')", what);
        return -1;
    }
    return 0;
}

typedef struct {
    uint32_t first, last, number, order;
    unsigned char bits;
} Block;

static int
block_order(const void *a, const void *b)
{
    const Block *x = a, *y = b;
    if (x->first != y->first)
        return x->first < y->first ? -1 : 1;
    if (x->bits != y->bits) /* the wider (outer) prefix first */
        return x->bits < y->bits ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Range output under construction: bound/number arrays with room for all. */
typedef struct {
    uint32_t *bound, *number;
    Py_ssize_t count;
} Ranges;

/* From position at (a 33-bit number: 1 << 32 is past the end, nothing to
 * record) on, the value number is number. Positions come in ascending order;
 * a later one at the same position wins (a prefix given twice: the later,
 * as a trie insert), and equal neighbours merge. */
static void
mark(Ranges *r, uint64_t at, uint32_t number)
{
    if (at > UINT32_MAX)
        return;
    if (r->bound[r->count - 1] == (uint32_t)at) {
        r->number[r->count - 1] = number;
        if (r->count > 1 && r->number[r->count - 2] == number)
            r->count--;
    } else if (r->number[r->count - 1] != number) {
        r->bound[r->count] = (uint32_t)at;
        r->number[r->count] = number;
        r->count++;
    }
}

/* Index.blocks from a list of (network, bits, number) tuples: sorted by
 * start, outer prefixes first, then swept with a stack of the prefixes the
 * current position is inside (at most 33 deep: prefixes nest or are apart). */
static int
flatten(Index *self, PyObject *blocks)
{
    PyObject *seq = PySequence_Fast(blocks, "blocks must be a sequence");
    if (seq == NULL)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    Block *list = PyMem_Malloc(sizeof(Block) * (size_t)(n ? n : 1));
    if (list == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned long network;
        int bits;
        unsigned int number;
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyTuple_Check(item)
            || !PyArg_ParseTuple(item, "kiI;blocks are (network, bits, number)", &network,
                                 &bits, &number)) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "blocks are (network, bits, number)");
            goto fail;
        }
        if (network > UINT32_MAX || bits < 0 || bits > 32 || number == NO_BLOCK) {
            PyErr_SetString(PyExc_ValueError, "a block out of range");
            goto fail;
        }
        uint32_t mask = bits ? UINT32_MAX << (32 - bits) : 0;
        list[i].first = (uint32_t)network & mask;
        list[i].last = list[i].first | ~mask;
        list[i].bits = (unsigned char)bits;
        list[i].number = number;
        list[i].order = (uint32_t)i;
    }
    Py_CLEAR(seq);
    qsort(list, (size_t)n, sizeof(Block), block_order);

    /* Each prefix starts one range and ends at most one: 2n + 1 at most. */
    Ranges r = {PyMem_Malloc(sizeof(uint32_t) * (size_t)(2 * n + 1)),
                PyMem_Malloc(sizeof(uint32_t) * (size_t)(2 * n + 1)), 1};
    if (r.bound == NULL || r.number == NULL) {
        PyMem_Free(r.bound);
        PyMem_Free(r.number);
        PyErr_NoMemory();
        goto fail;
    }
    r.bound[0] = 0, r.number[0] = NO_BLOCK;
    const Block *stack[33];
    int depth = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        const Block *b = &list[i];
        while (depth && stack[depth - 1]->last < b->first) {
            const Block *done = stack[--depth];
            mark(&r, (uint64_t)done->last + 1, depth ? stack[depth - 1]->number : NO_BLOCK);
        }
        mark(&r, b->first, b->number);
        const Block *top = depth ? stack[depth - 1] : NULL;
        if (top != NULL && top->first == b->first && top->bits == b->bits)
            stack[depth - 1] = b; /* a repeat (after masking): it replaces */
        else
            stack[depth++] = b; /* nested in the top: 33 deep at most */
    }
    while (depth) {
        const Block *done = stack[--depth];
        mark(&r, (uint64_t)done->last + 1, depth ? stack[depth - 1]->number : NO_BLOCK);
    }
    PyMem_Free(list);

    self->bound = r.bound, self->bound_number = r.number, self->nbounds = r.count;
    self->blocks = n;
    int bits = table_bits(r.count);
    self->bound_shift = 32 - bits;
    self->bound_table = PyMem_Malloc(sizeof(uint32_t) * (((size_t)1 << bits) + 1));
    if (self->bound_table == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t at = 0;
    for (uint64_t t = 0; t <= ((uint64_t)1 << bits); t++) {
        uint64_t first = t << self->bound_shift;
        while (at < r.count && r.bound[at] < first)
            at++;
        self->bound_table[t] = (uint32_t)at;
    }
    return 0;
fail:
    Py_XDECREF(seq);
    PyMem_Free(list);
    return -1;
}

static void
index_dealloc(Index *self)
{
    if (self->key != NULL)
        PyBuffer_Release(&self->keys);
    if (self->start != NULL)
        PyBuffer_Release(&self->starts);
    if (self->number != NULL)
        PyBuffer_Release(&self->numbers);
    Py_XDECREF(self->values);
    PyMem_Free(self->bound);
    PyMem_Free(self->bound_number);
    PyMem_Free(self->bound_table);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
index_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *keys, *starts, *numbers, *values, *blocks;
    int shift;
    static char *names[] = {"keys", "starts", "numbers", "values", "shift", "blocks", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOO!iO:Index", names, &keys, &starts,
                                     &numbers, &PyList_Type, &values, &shift, &blocks))
        return NULL;
    if (shift < 16 || shift > 24) {
        PyErr_SetString(PyExc_ValueError, "shift must be 16 to 24");
        return NULL;
    }
    Index *self = (Index *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->values = Py_NewRef(values);
    self->shift = shift;
    if (uint32_array(keys, &self->keys, "keys") < 0)
        goto fail;
    self->key = self->keys.buf;
    if (uint32_array(starts, &self->starts, "starts") < 0)
        goto fail;
    self->start = self->starts.buf;
    if (uint32_array(numbers, &self->numbers, "numbers") < 0)
        goto fail;
    self->number = self->numbers.buf;
    self->nkeys = self->keys.len / 4;
    /* Checked once here, so a lookup reads within bounds without checks. */
    Py_ssize_t nstarts = self->starts.len / 4;
    if (self->numbers.len / 4 != self->nkeys || nstarts != ((Py_ssize_t)1 << (32 - shift)) + 1
        || self->start[nstarts - 1] != (uint32_t)self->nkeys) {
        PyErr_SetString(PyExc_ValueError, "keys, numbers and starts do not agree");
        goto fail;
    }
    for (Py_ssize_t i = 1; i < nstarts; i++)
        if (self->start[i] < self->start[i - 1]) {
            PyErr_SetString(PyExc_ValueError, "starts must not go down");
            goto fail;
        }
    if (flatten(self, blocks) < 0)
        goto fail;
    return (PyObject *)self;
fail:
    Py_DECREF(self);
    return NULL;
}

/* The value of the address key (a new reference; None where it is not
 * listed), or NULL with an exception. */
static PyObject *
index_lookup(PyObject *obj, uint32_t key)
{
    Index *self = (Index *)obj;
    uint32_t number = NO_BLOCK;
    uint32_t block = key >> self->shift;
    Py_ssize_t lo = self->start[block], hi = self->start[block + 1];
    const uint32_t *k = self->key;
    Py_ssize_t end = hi;
    while (lo < hi) { /* bisect_left */
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (k[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < end && k[lo] == key) {
        number = self->number[lo];
    } else if (self->blocks) {
        /* The last range starting at or before key: within key's table block,
         * else the one before it (bound[0] == 0 always starts one). */
        uint32_t t = key >> self->bound_shift;
        const uint32_t *b = self->bound;
        lo = self->bound_table[t], hi = self->bound_table[t + 1];
        while (lo < hi) { /* bisect_right */
            Py_ssize_t mid = lo + (hi - lo) / 2;
            if (key < b[mid])
                hi = mid;
            else
                lo = mid + 1;
        }
        number = self->bound_number[lo - 1];
    }
    if (number == NO_BLOCK)
        Py_RETURN_NONE;
    if ((Py_ssize_t)number >= PyList_GET_SIZE(self->values)) {
        PyErr_SetString(PyExc_IndexError, "a value number past the values");
        return NULL;
    }
    return Py_NewRef(PyList_GET_ITEM(self->values, number));
}

/* Brings what looking key up will read into the cache, without waiting for
 * it: stage 0 the table entry, stage 1 (once that has come) the keys and
 * value numbers of key's table block, or the ranges. Called for each query of
 * a batch in turn, stage by stage, the memory reads of the batch's lookups
 * overlap rather than follow one another. Reads nothing stage 0 has not
 * asked for; never faults. */
static void
index_prefetch(PyObject *obj, uint32_t key, int stage)
{
    Index *self = (Index *)obj;
    uint32_t block = key >> self->shift;
    if (stage == 0) {
        __builtin_prefetch(&self->start[block]);
        __builtin_prefetch(&self->start[block + 1]);
        return;
    }
    Py_ssize_t lo = self->start[block], hi = self->start[block + 1];
    if (lo < hi) {
        __builtin_prefetch(&self->key[lo]);
        __builtin_prefetch(&self->key[hi - 1]);
        __builtin_prefetch(&self->number[lo]);
        __builtin_prefetch(&self->number[hi - 1]);
    }
    if (self->blocks) {
        uint32_t t = key >> self->bound_shift;
        Py_ssize_t first = self->bound_table[t], last = self->bound_table[t + 1];
        __builtin_prefetch(&self->bound[first + (last - first) / 2]);
    }
}

static PyObject *
index_call(PyObject *self, PyObject *args, PyObject *kwargs)
{
    const char *ip;
    Py_ssize_t len;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "Index(ip) takes no keywords");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y#:Index", &ip, &len))
        return NULL;
    if (len != 4) {
        PyErr_SetString(PyExc_ValueError, "an IPv4 address is 4 bytes");
        return NULL;
    }
    const unsigned char *u = (const unsigned char *)ip;
    return index_lookup(self, (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16
                                  | (uint32_t)u[2] << 8 | u[3]);
}

static PyObject *
index_ranges(Index *self, PyObject *unused)
{
    PyObject *list = PyList_New(self->nbounds);
    if (list == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < self->nbounds; i++) {
        PyObject *pair = self->bound_number[i] == NO_BLOCK
                             ? Py_BuildValue("(kO)", (unsigned long)self->bound[i], Py_None)
                             : Py_BuildValue("(kk)", (unsigned long)self->bound[i],
                                             (unsigned long)self->bound_number[i]);
        if (pair == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, pair);
    }
    return list;
}

static PyMethodDef index_methods[] = {
    {"ranges", (PyCFunction)index_ranges, METH_NOARGS,
     "ranges() -> [(first address, value number or None)]: the blocks flattened."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject IndexType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "dnsbl.datasets._ip4index.Index",
    .tp_basicsize = sizeof(Index),
    .tp_dealloc = (destructor)index_dealloc,
    .tp_call = index_call,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Index(keys, starts, numbers, values, shift, blocks): an IPv4 dataset's "
              "lookup; index(ip) -> value or None.",
    .tp_methods = index_methods,
    .tp_new = index_new,
};

static int
is_index(PyObject *obj)
{
    return Py_IS_TYPE(obj, &IndexType);
}

static IP4IndexAPI api = {is_index, index_lookup, index_prefetch};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "dnsbl.datasets._ip4index",
    "An IPv4 dataset's lookup, compiled (see datasets.ip4.IP4Dataset).", -1, NULL,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__ip4index(void)
{
    if (PyType_Ready(&IndexType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    PyObject *capsule = PyCapsule_New(&api, IP4INDEX_CAPSULE, NULL);
    if (capsule == NULL || PyModule_AddObject(module, "_API", capsule) < 0) {
        Py_XDECREF(capsule);
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&IndexType);
    if (PyModule_AddObject(module, "Index", (PyObject *)&IndexType) < 0) {
        Py_DECREF(&IndexType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
