/* What dnsbl/datasets/_ip4index.c offers other extensions through the
 * capsule dnsbl.datasets._ip4index._API: dnsbl/_fastpath.c looks addresses
 * up with it and no Python call. */
#ifndef DNSBL_IP4INDEX_H
#define DNSBL_IP4INDEX_H

#include <Python.h>
#include <stdint.h>

#define IP4INDEX_CAPSULE "dnsbl.datasets._ip4index._API"

typedef struct {
    /* Whether obj is an Index. */
    int (*is_index)(PyObject *obj);
    /* The value of the address (a new reference, None where not listed), or
     * NULL with an exception. */
    PyObject *(*lookup)(PyObject *index, uint32_t address);
    /* A hint that the address will be looked up soon: stage 0, then 1. */
    void (*prefetch)(PyObject *index, uint32_t address, int stage);
} IP4IndexAPI;

#endif
