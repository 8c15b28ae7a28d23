/* The fast path of answer.py in C: d.c.b.a.<zone> IN A/TXT/ANY answered from
 * a zone whose only data is one IPv4 dataset.
 *
 * It is answer._fast_python line for line: the same checks in the same order,
 * None (hand the datagram to the general path) in exactly the same cases, the
 * same bytes otherwise, and the same counters bumped. Every read of the
 * datagram is bounds-checked against its length first: the bytes come from
 * the network.
 *
 * Written against the plain C API so that building it needs nothing but a
 * compiler and the Python headers; where it cannot be built, answer.py serves
 * with the Python version.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE /* struct mmsghdr */
#include <Python.h>
#include <stdint.h>
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

/* counters[index] += 1, for a list of ints (or any sequence). */
static int
bump(PyObject *owner, PyObject *name, Py_ssize_t index)
{
    PyObject *counters = PyObject_GetAttr(owner, name);
    if (counters == NULL)
        return -1;
    /* stats.py's lists of ints: no generic sequence and number calls. */
    if (PyList_CheckExact(counters) && index >= 0 && index < PyList_GET_SIZE(counters)
        && PyLong_CheckExact(PyList_GET_ITEM(counters, index))) {
        Py_ssize_t count = PyLong_AsSsize_t(PyList_GET_ITEM(counters, index));
        if (count >= 0 && count < PY_SSIZE_T_MAX) {
            PyObject *new = PyLong_FromSsize_t(count + 1);
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
    PyObject *one = PyLong_FromLong(1);
    PyObject *new = one == NULL ? NULL : PyNumber_Add(old, one);
    Py_XDECREF(one);
    Py_DECREF(old);
    int rc = new == NULL ? -1 : PySequence_SetItem(counters, index, new);
    Py_XDECREF(new);
    Py_DECREF(counters);
    return rc;
}

/* A bytes attribute of obj, borrowed into *out (owned by *hold), or -1 with
 * an exception; Py_None gives *out = NULL and 0. */
static int
bytes_attr(PyObject *obj, PyObject *name, PyObject **hold, const char **out, Py_ssize_t *len)
{
    *hold = PyObject_GetAttr(obj, name);
    if (*hold == NULL)
        return -1;
    if (*hold == Py_None) {
        *out = NULL;
        *len = 0;
        return 0;
    }
    if (!PyBytes_Check(*hold)) {
        PyErr_Format(PyExc_TypeError, "%U is not bytes", name);
        return -1;
    }
    *out = PyBytes_AS_STRING(*hold);
    *len = PyBytes_GET_SIZE(*hold);
    return 0;
}

/* An array('I') of 4-byte items, or -1 (not one: the caller falls back). */
static int
uint32_array(PyObject *obj, Py_buffer *view)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
        PyErr_Clear();
        return -1;
    }
    if (view->itemsize != 4 || view->format == NULL || strcmp(view->format, "I") != 0) {
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* dataset.IP4Dataset's lookup, done here from what it exposes as
 * lookup.index: (keys, starts, numbers, values, shift, trie_get or None),
 * the same steps as the Python closure. 1 with *value set (a new
 * reference), 0 where that is not there or not as expected (the caller
 * calls the lookup instead), -1 with an exception. */
static int
indexed_lookup(PyObject *lookup, uint32_t key, PyObject **value)
{
    PyObject *index = PyObject_GetAttr(lookup, s_index);
    if (index == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return -1;
        PyErr_Clear();
        return 0;
    }
    int rc = 0;
    Py_buffer keys, starts, numbers;
    int have = 0; /* buffers held */
    if (!PyTuple_Check(index) || PyTuple_GET_SIZE(index) != 6
        || !PyList_Check(PyTuple_GET_ITEM(index, 3)))
        goto out;
    PyObject *values = PyTuple_GET_ITEM(index, 3), *trie_get = PyTuple_GET_ITEM(index, 5);
    long shift = PyLong_AsLong(PyTuple_GET_ITEM(index, 4));
    if (shift == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        goto out;
    }
    if (shift < 1 || shift > 31)
        goto out;
    if (uint32_array(PyTuple_GET_ITEM(index, 0), &keys) < 0)
        goto out;
    have = 1;
    if (uint32_array(PyTuple_GET_ITEM(index, 1), &starts) < 0)
        goto out;
    have = 2;
    if (uint32_array(PyTuple_GET_ITEM(index, 2), &numbers) < 0)
        goto out;
    have = 3;
    const uint32_t *k = keys.buf, *st = starts.buf, *num = numbers.buf;
    Py_ssize_t nkeys = keys.len / 4, nstarts = starts.len / 4, nnumbers = numbers.len / 4;
    Py_ssize_t block = (Py_ssize_t)(key >> shift);
    if (block + 1 >= nstarts)
        goto out;
    Py_ssize_t lo = st[block], hi = st[block + 1];
    if (lo > hi || hi > nkeys || hi > nnumbers)
        goto out;
    if (lo != hi) {
        while (lo < hi) { /* bisect_left */
            Py_ssize_t mid = lo + (hi - lo) / 2;
            if (k[mid] < key)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < (Py_ssize_t)st[block + 1] && k[lo] == key) {
            uint32_t number = num[lo];
            if ((Py_ssize_t)number >= PyList_GET_SIZE(values))
                goto out;
            *value = Py_NewRef(PyList_GET_ITEM(values, number));
            rc = 1;
            goto out;
        }
    }
    if (trie_get == Py_None) {
        *value = Py_NewRef(Py_None);
        rc = 1;
    } else {
        unsigned char packed[4] = {key >> 24, key >> 16 & 0xFF, key >> 8 & 0xFF, key & 0xFF};
        PyObject *ip = PyBytes_FromStringAndSize((const char *)packed, 4);
        *value = ip == NULL ? NULL : PyObject_CallOneArg(trie_get, ip);
        Py_XDECREF(ip);
        rc = *value == NULL ? -1 : 1;
    }
out:
    if (have >= 3)
        PyBuffer_Release(&numbers);
    if (have >= 2)
        PyBuffer_Release(&starts);
    if (have >= 1)
        PyBuffer_Release(&keys);
    Py_DECREF(index);
    return rc;
}

/* The reply to the n bytes at data, None for the general path, or NULL with
 * an exception. zones is a dict (checked by the callers). With dest, the
 * reply is written there instead (cap bytes of room; a longer one is an
 * error) and True is returned, its length in *written: a batch copies no
 * bytes object per reply. */
static PyObject *
answer_fast(const unsigned char *data, Py_ssize_t n, PyObject *zones, int udp, PyObject *edns,
            unsigned char *dest, Py_ssize_t cap, Py_ssize_t *written)
{
    PyObject *result = NULL, *zone = NULL, *lookup = NULL, *servfail = NULL, *value = NULL;
    PyObject *ip = NULL, *key = NULL, *opt_obj = NULL, *a_hold = NULL, *txt_rr_hold = NULL;
    PyObject *built_txt = NULL, *tail_hold = NULL, *stats = NULL;

    /* The regex of the Python version: four decimal labels from offset 12,
     * then the zone's name up to the first zero byte, then 4 more bytes. */
    Py_ssize_t pos = HEADER_LEN;
    int label[4];
    for (int i = 0; i < 4; i++) {
        label[i] = decimal_label(data, n, &pos);
        if (label[i] < 0)
            goto pass;
    }
    Py_ssize_t zone_start = pos;
    const unsigned char *zero = pos < n ? memchr(data + pos, 0, (size_t)(n - pos)) : NULL;
    if (zero == NULL)
        goto pass;
    Py_ssize_t qtype_at = (zero - data) + 1;
    Py_ssize_t end = qtype_at + 4;
    if (end > n)
        goto pass;
    /* A response, another opcode, or counts other than one question. */
    if (data[2] & 0xF8 || memcmp(data + 4, "\x00\x01\x00\x00\x00\x00", 6) != 0)
        goto pass;

    key = PyBytes_FromStringAndSize(NULL, qtype_at - zone_start);
    if (key == NULL)
        goto error;
    char *lower = PyBytes_AS_STRING(key);
    for (Py_ssize_t i = zone_start; i < qtype_at; i++) {
        unsigned char c = data[i];
        lower[i - zone_start] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    zone = PyDict_GetItemWithError(zones, key); /* borrowed */
    if (zone == NULL) {
        if (PyErr_Occurred())
            goto error;
        goto pass;
    }
    Py_INCREF(zone);
    lookup = PyObject_GetAttr(zone, s_fast_lookup);
    if (lookup == NULL)
        goto error;
    const unsigned char *tc = data + qtype_at;
    int qtype;
    Py_ssize_t counter;
    if (tc[0] == 0 && tc[2] == 0 && tc[3] == 1 && tc[1] == 1) {
        qtype = 1, counter = index_a;
    } else if (tc[0] == 0 && tc[2] == 0 && tc[3] == 1 && tc[1] == 16) {
        qtype = 16, counter = index_txt;
    } else if (tc[0] == 0 && tc[2] == 0 && tc[3] == 1 && tc[1] == 255) {
        qtype = 255, counter = index_any;
    } else {
        goto pass;
    }
    if (lookup == Py_None)
        goto pass;
    servfail = PyObject_GetAttr(zone, s_servfail);
    if (servfail == NULL)
        goto error;
    int failing = PyObject_IsTrue(servfail);
    if (failing < 0)
        goto error;
    if (failing)
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
        if (bytes_attr(edns, data[end + 7] & 0x80 ? s_opt_do : s_opt, &opt_obj, &opt, &opt_len)
            < 0)
            goto error;
        if (opt == NULL) {
            PyErr_SetString(PyExc_TypeError, "edns.opt is None");
            goto error;
        }
        PyObject *payload_obj = PyObject_GetAttr(edns, s_payload);
        if (payload_obj == NULL)
            goto error;
        long ours = PyLong_AsLong(payload_obj);
        Py_DECREF(payload_obj);
        if (ours == -1 && PyErr_Occurred())
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
    uint32_t packed = (uint32_t)address[0] << 24 | (uint32_t)address[1] << 16
                   | (uint32_t)address[2] << 8 | address[3];
    /* The address as bytes only where Python is called with it: most
     * lookups end in the index. */
    int looked = indexed_lookup(lookup, packed, &value);
    if (looked < 0)
        goto error;
    if (looked == 0) {
        ip = PyBytes_FromStringAndSize((const char *)address, 4);
        if (ip == NULL)
            goto error;
        value = PyObject_CallOneArg(lookup, ip);
    }
    if (value == NULL)
        goto error;

    int rcode, an, ns;
    const char *records = "", *records2 = "", *authority_tail = "";
    Py_ssize_t records_len = 0, records2_len = 0, authority_len = 0;
    if (value == Py_None) {
        rcode = NXDOMAIN, an = 0, ns = 1;
        if (bytes_attr(zone, s_neg_soa_tail, &tail_hold, &authority_tail, &authority_len) < 0)
            goto error;
        if (authority_tail == NULL) {
            PyErr_SetString(PyExc_TypeError, "neg_soa_tail is None");
            goto error;
        }
    } else {
        rcode = NOERROR, ns = 0;
        const char *a_rr;
        Py_ssize_t a_len;
        if (bytes_attr(value, s_a_rr, &a_hold, &a_rr, &a_len) < 0)
            goto error;
        if (qtype == 1) {
            if (a_rr == NULL) {
                PyErr_SetString(PyExc_TypeError, "a_rr is None");
                goto error;
            }
            records = a_rr, records_len = a_len, an = 1;
        } else {
            const char *txt;
            Py_ssize_t txt_len;
            if (bytes_attr(value, s_txt_rr, &txt_rr_hold, &txt, &txt_len) < 0)
                goto error;
            if (txt == NULL) {
                /* A TXT with "$" in it: the address goes in, cut at 255 bytes. */
                PyObject *parts = PyObject_GetAttr(value, s_txt);
                if (parts == NULL)
                    goto error;
                if (parts == Py_None) {
                    Py_DECREF(parts);
                    goto pass; /* no TXT to give: NODATA, the general path's */
                }
                PyObject *dollar = PyBytes_FromFormat("%d.%d.%d.%d", address[0], address[1],
                                                      address[2], address[3]);
                PyObject *text = dollar == NULL ? NULL
                                 : PyObject_CallMethodOneArg(dollar, s_join, parts);
                Py_XDECREF(dollar);
                Py_DECREF(parts);
                if (text == NULL)
                    goto error;
                if (!PyBytes_Check(text)) {
                    Py_DECREF(text);
                    PyErr_SetString(PyExc_TypeError, "txt join is not bytes");
                    goto error;
                }
                Py_ssize_t size = PyBytes_GET_SIZE(text);
                if (size > 255)
                    size = 255;
                PyObject *head_hold = NULL;
                const char *head = NULL;
                Py_ssize_t head_len = 0;
                if (bytes_attr(value, s_txt_head, &head_hold, &head, &head_len) < 0
                    || head == NULL) {
                    if (head == NULL && !PyErr_Occurred())
                        PyErr_SetString(PyExc_TypeError, "txt_head is None");
                    Py_XDECREF(head_hold);
                    Py_DECREF(text);
                    goto error;
                }
                built_txt = PyBytes_FromStringAndSize(NULL, head_len + 3 + size);
                if (built_txt == NULL) {
                    Py_DECREF(head_hold);
                    Py_DECREF(text);
                    goto error;
                }
                char *out = PyBytes_AS_STRING(built_txt);
                memcpy(out, head, (size_t)head_len);
                out[head_len] = (char)((size + 1) >> 8);
                out[head_len + 1] = (char)((size + 1) & 0xFF);
                out[head_len + 2] = (char)size;
                memcpy(out + head_len + 3, PyBytes_AS_STRING(text), (size_t)size);
                Py_DECREF(head_hold);
                Py_DECREF(text);
                txt = PyBytes_AS_STRING(built_txt);
                txt_len = PyBytes_GET_SIZE(built_txt);
            }
            if (qtype == 16) {
                records = txt, records_len = txt_len, an = 1;
            } else {
                if (a_rr == NULL) {
                    PyErr_SetString(PyExc_TypeError, "a_rr is None");
                    goto error;
                }
                records = a_rr, records_len = a_len;
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

    stats = PyObject_GetAttr(zone, s_stats);
    if (stats == NULL || bump(stats, s_requests, udp ? counter : counter + tcp_offset) < 0
        || bump(stats, s_lookups, value != Py_None ? 0 : 1) < 0
        || bump(stats, s_rcodes, rcode) < 0)
        goto error;
    goto done;

pass:
    result = Py_NewRef(Py_None);
    goto done;
error:
    Py_CLEAR(result);
done:
    Py_XDECREF(zone);
    Py_XDECREF(lookup);
    Py_XDECREF(servfail);
    Py_XDECREF(value);
    Py_XDECREF(ip);
    Py_XDECREF(key);
    Py_XDECREF(opt_obj);
    Py_XDECREF(a_hold);
    Py_XDECREF(txt_rr_hold);
    Py_XDECREF(built_txt);
    Py_XDECREF(tail_hold);
    Py_XDECREF(stats);
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
    PyObject *result = answer_fast(view.buf, view.len, args[1], udp, args[3], NULL, 0, NULL);
    PyBuffer_Release(&view);
    return result;
}

#ifdef __linux__
/* Answers the count datagrams one recvmmsg read into in: each by the fast
 * path, else by general(data) (answer.answer, in Python); the replies written
 * where the outgoing headers' buffers point, each addressed to its datagram's
 * sender. How many replies are ready for sendmmsg, or -1 with an exception. */
static Py_ssize_t
answer_round(struct mmsghdr *in, Py_ssize_t count, struct mmsghdr *out, Py_ssize_t slot,
             PyObject *zones, PyObject *edns, PyObject *general)
{
    Py_ssize_t sent = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        struct msghdr *head = &in[i].msg_hdr;
        const unsigned char *data = head->msg_iov[0].iov_base;
        Py_ssize_t n = in[i].msg_len;
        if ((size_t)n > head->msg_iov[0].iov_len)
            n = (Py_ssize_t)head->msg_iov[0].iov_len;
        struct msghdr *to = &out[sent].msg_hdr;
        Py_ssize_t written = 0;
        /* The outgoing iov_len is the last reply's length: the room is slot. */
        PyObject *reply = answer_fast(data, n, zones, 1, edns, to->msg_iov[0].iov_base, slot,
                                      &written);
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
    if (size < 1 || size > 1024) { /* UIO_MAXIOV: the most recvmmsg takes */
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
        Py_ssize_t sent = answer_round(in, count, out, slot, args[5], args[6], args[7]);
        if (sent < 0)
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
    return PyModule_Create(&module_def);
}
