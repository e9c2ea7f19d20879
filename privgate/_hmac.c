/* HMAC-SHA256 over many short messages, for tokens and memoized noise (privgate.transforms).
 *
 * One call hashes a whole list of bytes objects with OpenSSL's SHA-256 (which uses the CPU's
 * SHA extensions where present), reusing the keyed inner/outer states, with the GIL released
 * while hashing. Output: the 32-byte digests concatenated. The Python fallback in
 * privgate/crypto.py (HmacSha256) gives bit-identical results; tests compare the two.
 * Key bytes are never printed and the keyed states are wiped after use.
 */
#define PY_SSIZE_T_CLEAN
#define OPENSSL_SUPPRESS_DEPRECATED
#include <Python.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <string.h>

static PyObject *
joined(PyObject *self, PyObject *args)
{
    Py_buffer key, prefix;
    PyObject *values;
    if (!PyArg_ParseTuple(args, "y*y*O", &key, &prefix, &values))
        return NULL;
    /* a tuple: its items stay alive and unchanged while the GIL is released */
    PyObject *seq = PySequence_Tuple(values);
    if (seq == NULL) {
        PyBuffer_Release(&key);
        PyBuffer_Release(&prefix);
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    PyObject **items = &PyTuple_GET_ITEM(seq, 0);
    const char **ptrs = PyMem_Malloc(sizeof(char *) * (n ? n : 1));
    Py_ssize_t *lens = PyMem_Malloc(sizeof(Py_ssize_t) * (n ? n : 1));
    PyObject *out = PyBytes_FromStringAndSize(NULL, 32 * n);
    if (ptrs == NULL || lens == NULL || out == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyBytes_Check(items[i])) {
            PyErr_SetString(PyExc_TypeError, "values must be bytes");
            goto fail;
        }
        ptrs[i] = PyBytes_AS_STRING(items[i]);
        lens[i] = PyBytes_GET_SIZE(items[i]);
    }

    unsigned char k[64], pad[64], digest[32];
    SHA256_CTX inner, outer, c;
    memset(k, 0, sizeof k);
    if (key.len > 64)
        SHA256(key.buf, key.len, k);
    else
        memcpy(k, key.buf, key.len);
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x36;
    SHA256_Init(&inner);
    SHA256_Update(&inner, pad, 64);
    SHA256_Update(&inner, prefix.buf, prefix.len);
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x5c;
    SHA256_Init(&outer);
    SHA256_Update(&outer, pad, 64);

    unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(out);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        c = inner;
        SHA256_Update(&c, ptrs[i], (size_t)lens[i]);
        SHA256_Final(digest, &c);
        c = outer;
        SHA256_Update(&c, digest, 32);
        SHA256_Final(dst + 32 * i, &c);
    }
    Py_END_ALLOW_THREADS
    OPENSSL_cleanse(k, sizeof k);
    OPENSSL_cleanse(pad, sizeof pad);
    OPENSSL_cleanse(digest, sizeof digest);
    OPENSSL_cleanse(&inner, sizeof inner);
    OPENSSL_cleanse(&outer, sizeof outer);
    OPENSSL_cleanse(&c, sizeof c);
    PyMem_Free(ptrs);
    PyMem_Free(lens);
    Py_DECREF(seq);
    PyBuffer_Release(&key);
    PyBuffer_Release(&prefix);
    return out;

fail:
    PyMem_Free(ptrs);
    PyMem_Free(lens);
    Py_XDECREF(out);
    Py_DECREF(seq);
    PyBuffer_Release(&key);
    PyBuffer_Release(&prefix);
    return NULL;
}

static PyMethodDef methods[] = {
    {"joined", joined, METH_VARARGS,
     "joined(key, prefix, values) -> HMAC-SHA256(key, prefix || v) for each v, concatenated."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "privgate._hmac", NULL, -1, methods};

PyMODINIT_FUNC
PyInit__hmac(void)
{
    return PyModule_Create(&module);
}
