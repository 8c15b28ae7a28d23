/* The fast path of answer.py in C: d.c.b.a.<zone> IN A/TXT/ANY answered from
 * a zone whose only data is one IPv4 dataset.
 *
 * It is answer._fast_python line for line: the same checks in the same order,
 * None (hand the datagram to the general path) in exactly the same cases, the
 * same bytes otherwise, and the same counters bumped (by the end of each call
 * or round: see Round). Every read of the datagram is bounds-checked against
 * its length first: the bytes come from the network. The address is looked
 * up by datasets/_ip4index.c where it was built, else by the dataset's
 * Python lookup.
 *
 * Written against the plain C API so that building it needs nothing but a
 * compiler and the Python headers; where it cannot be built, answer.py serves
 * with the Python version.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE /* struct mmsghdr */
#include <Python.h>
#include <stdint.h>

#include "datasets/_ip4index.h"
#include <string.h>
#ifdef __linux__
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#endif

#define QR 0x80
#define AA 0x04
#define RD 0x01
#define CD 0x10
#define NOERROR 0
#define NXDOMAIN 3
#define MAX_UDP_PLAIN 512
#define HEADER_LEN 12
#define MAX_BATCH 1024 /* UIO_MAXIOV: the most recvmmsg takes */
#define ZONE_NAME_MAX 255 /* in wire form, its root label included */

/* Counter indexes, given by answer.py from stats.py (configure()). */
static Py_ssize_t index_a = -1, index_txt = -1, index_any = -1, tcp_offset = -1;

static PyObject *s_fast_lookup, *s_servfail, *s_stats, *s_requests, *s_lookups, *s_rcodes,
    *s_a_rr, *s_txt_rr, *s_txt, *s_txt_head, *s_neg_soa_tail, *s_opt, *s_opt_do, *s_payload,
    *s_join, *s_index;

/* One decimal label at data[pos]: 1 to 3 ASCII digits after their length byte.
 * Its value (0..999) and the position after it, or -1. */
static int
decimal_label(const unsigned char *data, Py_ssize_t n, Py_ssize_t *pos)
{
    Py_ssize_t at = *pos;
    if (at >= n)
        return -1;
    unsigned char len = data[at];
    if (len < 1 || len > 3 || at + 1 + len > n)
        return -1;
    int value = 0;
    for (Py_ssize_t i = at + 1; i <= at + len; i++) {
        if (data[i] < '0' || data[i] > '9')
            return -1;
        value = value * 10 + (data[i] - '0');
    }
    *pos = at + 1 + len;
    return value;
}

/* counters[index] += count, for a list of ints (or any sequence). */
static int
add(PyObject *owner, PyObject *name, Py_ssize_t index, Py_ssize_t count)
{
    PyObject *counters = PyObject_GetAttr(owner, name);
    if (counters == NULL)
        return -1;
    /* stats.py's lists of ints: no generic sequence and number calls. */
    if (PyList_CheckExact(counters) && index >= 0 && index < PyList_GET_SIZE(counters)
        && PyLong_CheckExact(PyList_GET_ITEM(counters, index))) {
        Py_ssize_t old = PyLong_AsSsize_t(PyList_GET_ITEM(counters, index));
        if (old >= 0 && old <= PY_SSIZE_T_MAX - count) {
            PyObject *new = PyLong_FromSsize_t(old + count);
            int rc = new == NULL ? -1 : PyList_SetItem(counters, index, new); /* steals new */
            Py_DECREF(counters);
            return rc;
        }
        PyErr_Clear(); /* too large for a Py_ssize_t: the generic way below */
    }
    PyObject *old = PySequence_GetItem(counters, index);
    if (old == NULL) {
        Py_DECREF(counters);
        return -1;
    }
    PyObject *by = PyLong_FromSsize_t(count);
    PyObject *new = by == NULL ? NULL : PyNumber_Add(old, by);
    Py_XDECREF(by);
    Py_DECREF(old);
    int rc = new == NULL ? -1 : PySequence_SetItem(counters, index, new);
    Py_XDECREF(new);
    Py_DECREF(counters);
    return rc;
}

/* The lookup of datasets/_ip4index.c, or NULL where it was not built. */
static IP4IndexAPI *ip4index;

/* The TXT record of a value whose text has "$" in it, for the address: the
 * text with the address in, cut at 255 bytes, after value.txt_head. None
 * where the value has no text; NULL with an exception. */
static PyObject *
dollar_txt(PyObject *value, const unsigned char address[4])
{
    PyObject *parts = PyObject_GetAttr(value, s_txt);
    if (parts == NULL || parts == Py_None)
        return parts;
    PyObject *dollar = PyBytes_FromFormat("%d.%d.%d.%d", address[0], address[1], address[2],
                                          address[3]);
    PyObject *text = dollar == NULL ? NULL : PyObject_CallMethodOneArg(dollar, s_join, parts);
    Py_XDECREF(dollar);
    Py_DECREF(parts);
    if (text == NULL)
        return NULL;
    PyObject *head = NULL, *built = NULL;
    if (!PyBytes_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "txt join is not bytes");
        goto out;
    }
    head = PyObject_GetAttr(value, s_txt_head);
    if (head == NULL)
        goto out;
    if (!PyBytes_Check(head)) {
        PyErr_SetString(PyExc_TypeError, "txt_head is not bytes");
        goto out;
    }
    Py_ssize_t size = PyBytes_GET_SIZE(text), head_len = PyBytes_GET_SIZE(head);
    if (size > 255)
        size = 255;
    built = PyBytes_FromStringAndSize(NULL, head_len + 3 + size);
    if (built == NULL)
        goto out;
    char *at = PyBytes_AS_STRING(built);
    memcpy(at, PyBytes_AS_STRING(head), (size_t)head_len);
    at[head_len] = (char)((size + 1) >> 8);
    at[head_len + 1] = (char)((size + 1) & 0xFF);
    at[head_len + 2] = (char)size;
    memcpy(at + head_len + 3, PyBytes_AS_STRING(text), (size_t)size);
out:
    Py_XDECREF(head);
    Py_DECREF(text);
    return built;
}

/* The question of a datagram as the fast path takes it, or -1 (the general
 * path's): the regex of the Python version, four decimal labels from offset
 * 12, then the zone's name up to the first zero byte, then 4 more bytes; a
 * query with one question and nothing else but an OPT, and a zone's name no
 * longer than a name can be. */
typedef struct {
    int label[4];
    Py_ssize_t zone_start, qtype_at;
} Question;

static int
question(const unsigned char *data, Py_ssize_t n, Question *q)
{
    Py_ssize_t pos = HEADER_LEN;
    for (int i = 0; i < 4; i++) {
        q->label[i] = decimal_label(data, n, &pos);
        if (q->label[i] < 0)
            return -1;
    }
    q->zone_start = pos;
    const unsigned char *zero = pos < n ? memchr(data + pos, 0, (size_t)(n - pos)) : NULL;
    if (zero == NULL)
        return -1;
    q->qtype_at = (zero - data) + 1;
    if (q->qtype_at + 4 > n)
        return -1;
    /* A response, another opcode, or counts other than one question. */
    if (data[2] & 0xF8 || memcmp(data + 4, "\x00\x01\x00\x00\x00\x00", 6) != 0)
        return -1;
    if (q->qtype_at - q->zone_start > ZONE_NAME_MAX)
        return -1; /* no zone has a name that long */
    return 0;
}

/* The zone's name in the question, lowercase, into out; its length. */
static Py_ssize_t
lower_name(const unsigned char *data, const Question *q, unsigned char out[ZONE_NAME_MAX])
{
    Py_ssize_t len = q->qtype_at - q->zone_start;
    for (Py_ssize_t i = 0; i < len; i++) {
        unsigned char c = data[q->zone_start + i];
        out[i] = (unsigned char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    return len;
}

/* What one call of fast(), or one round of drain(), keeps from query to
 * query, so that the common run of queries for one zone costs no attribute
 * lookup, no dictionary lookup and no counter update each: the last zone
 * looked up with what the fast path reads of it, the counts it has not yet
 * added to that zone's counters, the last value's records and the EDNS
 * settings. Every object is held (a strong reference); round_end adds the
 * counts and lets go. Nothing a query could change is kept: the zones, their
 * data and their settings change only between calls (a reload swaps them on
 * the event loop, which is the caller). */
typedef struct {
    PyObject *zone; /* NULL: none held yet */
    Py_ssize_t name_len;
    unsigned char name[ZONE_NAME_MAX]; /* the zone's name as looked up (lowercase) */
    PyObject *lookup, *index, *stats, *neg_soa_tail; /* index NULL: call lookup */
    int servfail;
    /* Not yet added: requests by [qtype kind + 3 * over TCP], lookups by
     * [listed, not listed], rcodes by [NOERROR, NXDOMAIN]. */
    Py_ssize_t requests[6], lookups[2], rcodes[2];
    PyObject *value, *a_rr, *txt_rr; /* the last value answered with */
    PyObject *edns, *opt, *opt_do;   /* edns's, read on first use */
    long payload;
} Round;

#define ROUND_INIT {NULL}

/* Adds the zone's counts held back; 0, or -1 with an exception (the counts
 * are dropped either way: they are never added twice). */
static int
round_flush(Round *r)
{
    if (r->zone == NULL)
        return 0;
    static const Py_ssize_t *kinds[3] = {&index_a, &index_txt, &index_any};
    int rc = 0;
    for (int i = 0; i < 6; i++) {
        if (r->requests[i] && rc == 0)
            rc = add(r->stats, s_requests, *kinds[i % 3] + (i >= 3 ? tcp_offset : 0),
                     r->requests[i]);
        r->requests[i] = 0;
    }
    for (int i = 0; i < 2; i++) {
        if (r->lookups[i] && rc == 0)
            rc = add(r->stats, s_lookups, i, r->lookups[i]);
        if (r->rcodes[i] && rc == 0)
            rc = add(r->stats, s_rcodes, i ? NXDOMAIN : NOERROR, r->rcodes[i]);
        r->lookups[i] = r->rcodes[i] = 0;
    }
    return rc;
}

static void
round_forget_zone(Round *r)
{
    Py_CLEAR(r->zone);
    Py_CLEAR(r->lookup);
    Py_CLEAR(r->index);
    Py_CLEAR(r->stats);
    Py_CLEAR(r->neg_soa_tail);
}

/* The end of a call: the counts added, everything let go. With an exception
 * already set, it is kept (a failed flush is then not reported). */
static int
round_end(Round *r)
{
    int rc;
    if (PyErr_Occurred()) {
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        if (round_flush(r) < 0)
            PyErr_Clear();
        PyErr_Restore(type, value, traceback);
        rc = -1;
    } else {
        rc = round_flush(r);
    }
    round_forget_zone(r);
    Py_CLEAR(r->value);
    Py_CLEAR(r->a_rr);
    Py_CLEAR(r->txt_rr);
    Py_CLEAR(r->opt);
    Py_CLEAR(r->opt_do);
    return rc;
}

/* The zone named by the len bytes at name (lowercase) into r: 1, 0 where
 * zones has no such zone, -1 with an exception. */
static int
round_zone(Round *r, PyObject *zones, const unsigned char *name, Py_ssize_t len)
{
    if (r->zone != NULL && r->name_len == len && memcmp(r->name, name, (size_t)len) == 0)
        return 1;
    if (round_flush(r) < 0)
        return -1;
    round_forget_zone(r);
    PyObject *key = PyBytes_FromStringAndSize((const char *)name, len);
    if (key == NULL)
        return -1;
    PyObject *zone = PyDict_GetItemWithError(zones, key); /* borrowed */
    Py_DECREF(key);
    if (zone == NULL)
        return PyErr_Occurred() ? -1 : 0;
    PyObject *lookup = PyObject_GetAttr(zone, s_fast_lookup);
    if (lookup == NULL)
        return -1;
    PyObject *servfail = PyObject_GetAttr(zone, s_servfail);
    int failing = servfail == NULL ? -1 : PyObject_IsTrue(servfail);
    Py_XDECREF(servfail);
    PyObject *stats = failing < 0 ? NULL : PyObject_GetAttr(zone, s_stats);
    if (stats == NULL) {
        Py_DECREF(lookup);
        return -1;
    }
    PyObject *index = NULL;
    if (ip4index != NULL && lookup != Py_None) {
        index = PyObject_GetAttr(lookup, s_index);
        if (index == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
                Py_DECREF(lookup);
                Py_DECREF(stats);
                return -1;
            }
            PyErr_Clear();
        } else if (!ip4index->is_index(index)) {
            Py_CLEAR(index);
        }
    }
    r->zone = Py_NewRef(zone);
    r->lookup = lookup, r->index = index, r->stats = stats, r->servfail = failing;
    r->name_len = len;
    memcpy(r->name, name, (size_t)len);
    return 1;
}

/* edns's opt (do: opt_do) and payload, read once a call. */
static int
round_edns(Round *r, PyObject *edns, int do_bit, const char **opt, Py_ssize_t *opt_len,
           long *payload)
{
    if (r->opt == NULL) {
        PyObject *payload_obj = PyObject_GetAttr(edns, s_payload);
        if (payload_obj == NULL)
            return -1;
        r->payload = PyLong_AsLong(payload_obj);
        Py_DECREF(payload_obj);
        if (r->payload == -1 && PyErr_Occurred())
            return -1;
        PyObject *plain = PyObject_GetAttr(edns, s_opt);
        if (plain == NULL)
            return -1;
        PyObject *with_do = PyObject_GetAttr(edns, s_opt_do);
        if (with_do == NULL) {
            Py_DECREF(plain);
            return -1;
        }
        if (!PyBytes_Check(plain) || !PyBytes_Check(with_do)) {
            Py_DECREF(plain);
            Py_DECREF(with_do);
            PyErr_SetString(PyExc_TypeError, "edns.opt and edns.opt_do must be bytes");
            return -1;
        }
        r->opt = plain, r->opt_do = with_do;
    }
    PyObject *chosen = do_bit ? r->opt_do : r->opt;
    *opt = PyBytes_AS_STRING(chosen);
    *opt_len = PyBytes_GET_SIZE(chosen);
    *payload = r->payload;
    return 0;
}

/* value's a_rr and txt_rr (either may be None) into r, once a value. */
static int
round_value(Round *r, PyObject *value)
{
    if (value == r->value)
        return 0;
    PyObject *a_rr = PyObject_GetAttr(value, s_a_rr);
    if (a_rr == NULL)
        return -1;
    PyObject *txt_rr = PyObject_GetAttr(value, s_txt_rr);
    if (txt_rr == NULL) {
        Py_DECREF(a_rr);
        return -1;
    }
    if ((a_rr != Py_None && !PyBytes_Check(a_rr)) || (txt_rr != Py_None && !PyBytes_Check(txt_rr))) {
        Py_DECREF(a_rr);
        Py_DECREF(txt_rr);
        PyErr_SetString(PyExc_TypeError, "a_rr and txt_rr must be bytes or None");
        return -1;
    }
    Py_XSETREF(r->value, Py_NewRef(value));
    Py_XSETREF(r->a_rr, a_rr);
    Py_XSETREF(r->txt_rr, txt_rr);
    return 0;
}

/* The reply to the n bytes at data, None for the general path, or NULL with
 * an exception. zones is a dict (checked by the callers). With dest, the
 * reply is written there instead (cap bytes of room; a longer one is an
 * error) and True is returned, its length in *written: a batch copies no
 * bytes object per reply. */
static PyObject *
answer_fast(Round *r, const unsigned char *data, Py_ssize_t n, PyObject *zones, int udp,
            PyObject *edns, unsigned char *dest, Py_ssize_t cap, Py_ssize_t *written)
{
    PyObject *result = NULL, *value = NULL, *ip = NULL, *built_txt = NULL;

    Question q;
    if (question(data, n, &q) < 0)
        goto pass;
    Py_ssize_t zone_start = q.zone_start, qtype_at = q.qtype_at, end = qtype_at + 4;
    const int *label = q.label;
    unsigned char lower[ZONE_NAME_MAX];
    Py_ssize_t name_len = lower_name(data, &q, lower);
    int found = round_zone(r, zones, lower, name_len);
    if (found < 0)
        goto error;
    if (found == 0)
        goto pass;
    const unsigned char *tc = data + qtype_at;
    int qtype, kind;
    if (tc[0] == 0 && tc[2] == 0 && tc[3] == 1 && tc[1] == 1) {
        qtype = 1, kind = 0;
    } else if (tc[0] == 0 && tc[2] == 0 && tc[3] == 1 && tc[1] == 16) {
        qtype = 16, kind = 1;
    } else if (tc[0] == 0 && tc[2] == 0 && tc[3] == 1 && tc[1] == 255) {
        qtype = 255, kind = 2;
    } else {
        goto pass;
    }
    if (r->lookup == Py_None || r->servfail)
        goto pass;

    const char *opt = "";
    Py_ssize_t opt_len = 0;
    long limit = MAX_UDP_PLAIN;
    if (data[10] || data[11]) {
        /* Only the plain OPT (root owner, version 0, no options); anything
         * else is the general path's to check. */
        if (data[10] != 0 || data[11] != 1 || end + 11 > n
            || memcmp(data + end, "\x00\x00\x29", 3) != 0 || data[end + 6] != 0
            || data[end + 9] != 0 || data[end + 10] != 0)
            goto pass;
        long ours;
        if (round_edns(r, edns, data[end + 7] & 0x80, &opt, &opt_len, &ours) < 0)
            goto error;
        long asked = data[end + 3] << 8 | data[end + 4];
        limit = asked < ours ? asked : ours;
        if (limit < MAX_UDP_PLAIN)
            limit = MAX_UDP_PLAIN;
    }
    for (int i = 0; i < 4; i++)
        if (label[i] > 255)
            goto pass;
    unsigned char address[4] = {label[3], label[2], label[1], label[0]};
    if (r->index != NULL) {
        value = ip4index->lookup(r->index, (uint32_t)address[0] << 24
                                               | (uint32_t)address[1] << 16
                                               | (uint32_t)address[2] << 8 | address[3]);
    } else {
        ip = PyBytes_FromStringAndSize((const char *)address, 4);
        if (ip == NULL)
            goto error;
        value = PyObject_CallOneArg(r->lookup, ip);
    }
    if (value == NULL)
        goto error;

    int rcode, an, ns;
    const char *records = "", *records2 = "", *authority_tail = "";
    Py_ssize_t records_len = 0, records2_len = 0, authority_len = 0;
    if (value == Py_None) {
        rcode = NXDOMAIN, an = 0, ns = 1;
        if (r->neg_soa_tail == NULL) {
            r->neg_soa_tail = PyObject_GetAttr(r->zone, s_neg_soa_tail);
            if (r->neg_soa_tail == NULL)
                goto error;
            if (!PyBytes_Check(r->neg_soa_tail)) {
                Py_CLEAR(r->neg_soa_tail);
                PyErr_SetString(PyExc_TypeError, "neg_soa_tail is not bytes");
                goto error;
            }
        }
        authority_tail = PyBytes_AS_STRING(r->neg_soa_tail);
        authority_len = PyBytes_GET_SIZE(r->neg_soa_tail);
    } else {
        rcode = NOERROR, ns = 0;
        if (round_value(r, value) < 0)
            goto error;
        if (qtype == 1) {
            if (r->a_rr == Py_None) {
                PyErr_SetString(PyExc_TypeError, "a_rr is None");
                goto error;
            }
            records = PyBytes_AS_STRING(r->a_rr), records_len = PyBytes_GET_SIZE(r->a_rr);
            an = 1;
        } else {
            const char *txt;
            Py_ssize_t txt_len;
            if (r->txt_rr != Py_None) {
                txt = PyBytes_AS_STRING(r->txt_rr), txt_len = PyBytes_GET_SIZE(r->txt_rr);
            } else {
                built_txt = dollar_txt(value, address);
                if (built_txt == NULL)
                    goto error;
                if (built_txt == Py_None)
                    goto pass; /* no TXT to give: NODATA, the general path's */
                txt = PyBytes_AS_STRING(built_txt);
                txt_len = PyBytes_GET_SIZE(built_txt);
            }
            if (qtype == 16) {
                records = txt, records_len = txt_len, an = 1;
            } else {
                if (r->a_rr == Py_None) {
                    PyErr_SetString(PyExc_TypeError, "a_rr is None");
                    goto error;
                }
                records = PyBytes_AS_STRING(r->a_rr), records_len = PyBytes_GET_SIZE(r->a_rr);
                records2 = txt, records2_len = txt_len, an = 2;
            }
        }
    }

    Py_ssize_t question_len = end - HEADER_LEN;
    Py_ssize_t total = HEADER_LEN + question_len + records_len + records2_len
                       + (value == Py_None ? 2 + authority_len : 0) + opt_len;
    if (udp && total > limit)
        goto pass; /* truncation is the general path's */
    unsigned char *out = dest;
    if (dest == NULL) {
        result = PyBytes_FromStringAndSize(NULL, total);
        if (result == NULL)
            goto error;
        out = (unsigned char *)PyBytes_AS_STRING(result);
    } else if (total > cap) {
        PyErr_SetString(PyExc_ValueError, "a reply over a slot");
        goto error;
    } else {
        result = Py_NewRef(Py_True);
        *written = total;
    }
    out[0] = data[0];
    out[1] = data[1];
    out[2] = QR | AA | (data[2] & RD);
    out[3] = (unsigned char)(rcode | (data[3] & CD));
    out[4] = 0, out[5] = 1, out[6] = 0, out[7] = (unsigned char)an;
    out[8] = 0, out[9] = (unsigned char)ns, out[10] = 0, out[11] = opt_len ? 1 : 0;
    unsigned char *at = out + HEADER_LEN;
    memcpy(at, data + HEADER_LEN, (size_t)question_len);
    at += question_len;
    memcpy(at, records, (size_t)records_len);
    at += records_len;
    memcpy(at, records2, (size_t)records2_len);
    at += records2_len;
    if (value == Py_None) {
        /* A compression pointer to the zone's name in the question. */
        *at++ = (unsigned char)(0xC0 | zone_start >> 8);
        *at++ = (unsigned char)(zone_start & 0xFF);
        memcpy(at, authority_tail, (size_t)authority_len);
        at += authority_len;
    }
    memcpy(at, opt, (size_t)opt_len);

    /* Counted as answered; added to the zone's counters by round_flush. */
    r->requests[kind + (udp ? 0 : 3)]++;
    r->lookups[value != Py_None ? 0 : 1]++;
    r->rcodes[rcode == NXDOMAIN]++;
    goto done;

pass:
    result = Py_NewRef(Py_None);
    goto done;
error:
    Py_CLEAR(result);
done:
    Py_XDECREF(value);
    Py_XDECREF(ip);
    Py_XDECREF(built_txt);
    return result;
}

static int
check_args(PyObject *zones)
{
    if (index_a < 0) {
        PyErr_SetString(PyExc_RuntimeError, "called before configure()");
        return -1;
    }
    if (!PyDict_Check(zones)) {
        PyErr_SetString(PyExc_TypeError, "zones must be a dict");
        return -1;
    }
    return 0;
}

static PyObject *
fast(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "fast(data, zones, udp, edns)");
        return NULL;
    }
    int udp = PyObject_IsTrue(args[2]);
    if (udp < 0 || check_args(args[1]) < 0)
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Round round = ROUND_INIT;
    PyObject *result = answer_fast(&round, view.buf, view.len, args[1], udp, args[3], NULL, 0,
                                   NULL);
    PyBuffer_Release(&view);
    if (round_end(&round) < 0)
        Py_CLEAR(result);
    return result;
}

#ifdef __linux__
/* Answers the count datagrams one recvmmsg read into in: each by the fast
 * path, else by general(data) (answer.answer, in Python); the replies written
 * where the outgoing headers' buffers point, each addressed to its datagram's
 * sender. How many replies are ready for sendmmsg, or -1 with an exception. */
/* The datagram recvmmsg read into one header: its bytes and length. */
static const unsigned char *
datagram(const struct mmsghdr *in, Py_ssize_t *n)
{
    *n = in->msg_len;
    if ((size_t)*n > in->msg_hdr.msg_iov[0].iov_len)
        *n = (Py_ssize_t)in->msg_hdr.msg_iov[0].iov_len;
    return in->msg_hdr.msg_iov[0].iov_base;
}

/* Before a round is answered: the lookups its queries for the round's zone
 * will make, asked of the memory all at once (ip4index's prefetch, stage by
 * stage), so that their cache misses overlap instead of coming one after
 * another. Changes nothing the answers depend on. 0, or -1 with an
 * exception (from looking the zone up, as answering would). */
static int
prefetch_round(Round *r, struct mmsghdr *in, Py_ssize_t count, PyObject *zones)
{
    uint32_t keys[MAX_BATCH];
    Py_ssize_t wanted = 0;
    int tried = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t n;
        const unsigned char *data = datagram(&in[i], &n);
        Question q;
        if (question(data, n, &q) < 0 || q.label[0] > 255 || q.label[1] > 255
            || q.label[2] > 255 || q.label[3] > 255)
            continue;
        unsigned char lower[ZONE_NAME_MAX];
        Py_ssize_t len = lower_name(data, &q, lower);
        if (r->zone == NULL && !tried) {
            tried = 1;
            int found = round_zone(r, zones, lower, len);
            if (found <= 0)
                return found;
        }
        if (r->zone == NULL || r->index == NULL)
            return 0;
        if (len != r->name_len || memcmp(lower, r->name, (size_t)len) != 0)
            continue;
        uint32_t key = (uint32_t)q.label[3] << 24 | (uint32_t)q.label[2] << 16
                       | (uint32_t)q.label[1] << 8 | (uint32_t)q.label[0];
        ip4index->prefetch(r->index, key, 0);
        keys[wanted++] = key;
    }
    for (Py_ssize_t i = 0; i < wanted; i++)
        ip4index->prefetch(r->index, keys[i], 1);
    return 0;
}

static Py_ssize_t
answer_round(Round *r, struct mmsghdr *in, Py_ssize_t count, struct mmsghdr *out,
             Py_ssize_t slot, PyObject *zones, PyObject *edns, PyObject *general)
{
    if (ip4index != NULL && count > 1 && prefetch_round(r, in, count, zones) < 0)
        return -1;
    Py_ssize_t sent = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        struct msghdr *head = &in[i].msg_hdr;
        Py_ssize_t n;
        const unsigned char *data = datagram(&in[i], &n);
        struct msghdr *to = &out[sent].msg_hdr;
        Py_ssize_t written = 0;
        /* The outgoing iov_len is the last reply's length: the room is slot. */
        PyObject *reply = answer_fast(r, data, n, zones, 1, edns, to->msg_iov[0].iov_base,
                                      slot, &written);
        if (reply == Py_None) {
            Py_DECREF(reply);
            PyObject *bytes = PyBytes_FromStringAndSize((const char *)data, n);
            if (bytes == NULL)
                return -1;
            reply = PyObject_CallOneArg(general, bytes);
            Py_DECREF(bytes);
            if (reply == NULL)
                return -1;
            if (reply == Py_None) {
                Py_DECREF(reply);
                continue;
            }
            if (!PyBytes_Check(reply) || PyBytes_GET_SIZE(reply) > slot) {
                PyErr_SetString(PyExc_ValueError, "a reply that is not bytes or over a slot");
                Py_DECREF(reply);
                return -1;
            }
            written = PyBytes_GET_SIZE(reply);
            memcpy(to->msg_iov[0].iov_base, PyBytes_AS_STRING(reply), (size_t)written);
        }
        if (reply == NULL)
            return -1;
        Py_DECREF(reply);
        to->msg_iov[0].iov_len = (size_t)written;
        to->msg_name = head->msg_name;
        to->msg_namelen = head->msg_namelen;
        sent++;
    }
    return sent;
}

/* The two header arrays as writable buffers holding at least count headers
 * each, or -1 with an exception (nothing held). */
static int
header_buffers(PyObject *in_obj, PyObject *out_obj, Py_ssize_t count, Py_buffer *in_view,
               Py_buffer *out_view)
{
    if (PyObject_GetBuffer(in_obj, in_view, PyBUF_WRITABLE) < 0)
        return -1;
    if (PyObject_GetBuffer(out_obj, out_view, PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(in_view);
        return -1;
    }
    if (count < 0 || (size_t)count * sizeof(struct mmsghdr) > (size_t)in_view->len
        || (size_t)count * sizeof(struct mmsghdr) > (size_t)out_view->len) {
        PyErr_SetString(PyExc_ValueError, "count is past the headers");
        PyBuffer_Release(in_view);
        PyBuffer_Release(out_view);
        return -1;
    }
    return 0;
}

/* batch.BatchedUDP._send: the count replies ready in out, a full send buffer
 * given one more try, a datagram the kernel refuses (not EAGAIN: an address
 * it will not send to) skipped. How many were not sent. */
static Py_ssize_t
send_round(int fd, struct mmsghdr *out, Py_ssize_t count)
{
    Py_ssize_t done = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        int result, error;
        Py_BEGIN_ALLOW_THREADS
        errno = 0;
        result = sendmmsg(fd, out + done, (unsigned int)(count - done), 0);
        error = errno;
        Py_END_ALLOW_THREADS
        if (result > 0) {
            done += result;
            if (done == count)
                return 0;
        } else if (error != 0 && error != EAGAIN && error != EWOULDBLOCK) {
            done++;
            if (done == count)
                return 0;
        }
    }
    return count - done;
}

/* BatchedUDP._drain's whole loop for the common case (no ACL, no query log,
 * no rate limiting: nothing needs the client's address), so that a readable
 * event costs one call from Python rather than several per round: up to
 * rounds times, read up to size datagrams with recvmmsg, answer them
 * (answer_round), send the replies with sendmmsg (send_round); stop once the
 * socket has none left (EAGAIN or any other error, as the Python loop) or a
 * read brings fewer than size. Returns how many replies could not be sent,
 * for stats.dropped. */
static PyObject *
drain(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError,
                        "drain(fd, msgs_in, size, msgs_out, slot, zones, edns, general, rounds)");
        return NULL;
    }
    int fd = PyObject_AsFileDescriptor(args[0]);
    if (fd < 0)
        return NULL;
    Py_ssize_t size = PyLong_AsSsize_t(args[2]), slot = PyLong_AsSsize_t(args[4]),
               rounds = PyLong_AsSsize_t(args[8]);
    if ((size == -1 || slot == -1 || rounds == -1) && PyErr_Occurred())
        return NULL;
    if (size < 1 || size > MAX_BATCH) {
        PyErr_SetString(PyExc_ValueError, "size must be 1 to 1024");
        return NULL;
    }
    if (check_args(args[5]) < 0)
        return NULL;
    Py_buffer in_view, out_view;
    if (header_buffers(args[1], args[3], size, &in_view, &out_view) < 0)
        return NULL;
    struct mmsghdr *in = in_view.buf, *out = out_view.buf;
    Py_ssize_t dropped = 0;
    PyObject *result = NULL;
    for (Py_ssize_t round = 0; round < rounds; round++) {
        /* recvmmsg writes each sender's address length there: back to the
         * room there is before each read. */
        for (Py_ssize_t i = 0; i < size; i++)
            in[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in6);
        int count;
        Py_BEGIN_ALLOW_THREADS
        count = recvmmsg(fd, in, (unsigned int)size, MSG_DONTWAIT, NULL);
        Py_END_ALLOW_THREADS
        if (count <= 0)
            break; /* drained (EAGAIN), or an ICMP error for an earlier reply */
        Round round = ROUND_INIT;
        Py_ssize_t sent = answer_round(&round, in, count, out, slot, args[5], args[6], args[7]);
        if (round_end(&round) < 0 || sent < 0)
            goto done;
        if (sent)
            dropped += send_round(fd, out, sent);
        if (count < size)
            break;
    }
    result = PyLong_FromSsize_t(dropped);
done:
    PyBuffer_Release(&in_view);
    PyBuffer_Release(&out_view);
    return result;
}
#endif

static PyObject *
configure(PyObject *module, PyObject *args)
{
    Py_ssize_t a, txt, any, offset;
    if (!PyArg_ParseTuple(args, "nnnn", &a, &txt, &any, &offset))
        return NULL;
    if (a < 0 || txt < 0 || any < 0 || offset < 0) {
        PyErr_SetString(PyExc_ValueError, "counter indexes must not be negative");
        return NULL;
    }
    index_a = a, index_txt = txt, index_any = any, tcp_offset = offset;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"fast", (PyCFunction)(void (*)(void))fast, METH_FASTCALL,
     "fast(data, zones, udp, edns) -> bytes | None: answer._fast_python, compiled."},
#ifdef __linux__
    {"drain", (PyCFunction)(void (*)(void))drain, METH_FASTCALL,
     "drain(fd, msgs_in, size, msgs_out, slot, zones, edns, general, rounds) -> not sent."},
#endif
    {"configure", configure, METH_VARARGS,
     "configure(a, txt, any, tcp_offset): the requests counters' indexes."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "dnsbl._fastpath",
    "The fast path of answer.py, compiled (see answer._fast_python).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__fastpath(void)
{
    struct {
        PyObject **slot;
        const char *text;
    } names[] = {
        {&s_fast_lookup, "fast_lookup"}, {&s_servfail, "servfail"}, {&s_stats, "stats"},
        {&s_requests, "requests"}, {&s_lookups, "lookups"}, {&s_rcodes, "rcodes"},
        {&s_a_rr, "a_rr"}, {&s_txt_rr, "txt_rr"}, {&s_txt, "txt"}, {&s_txt_head, "txt_head"},
        {&s_neg_soa_tail, "neg_soa_tail"}, {&s_opt, "opt"}, {&s_opt_do, "opt_do"},
        {&s_payload, "payload"}, {&s_join, "join"}, {&s_index, "index"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (*names[i].slot == NULL) {
            *names[i].slot = PyUnicode_InternFromString(names[i].text);
            if (*names[i].slot == NULL)
                return NULL;
        }
    }
    ip4index = PyCapsule_Import(IP4INDEX_CAPSULE, 0);
    if (ip4index == NULL)
        PyErr_Clear(); /* not built: lookups are Python calls */
    return PyModule_Create(&module_def);
}
