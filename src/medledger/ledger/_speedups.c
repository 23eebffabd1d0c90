/*
 * The accepting half of envelope decoding and canonical encoding, in C
 * (medledger.ledger._speedups).
 *
 * Why this exists: decoding one wire envelope in Python (strict base64url,
 * RFC 8785 canonical check, field syntax, timestamp, tx_id) cost ~18 us per
 * envelope, a sixth of a worker's time at ingest rates, and the recursive
 * "no floats, safe integers" walk before every canonical encoding was most of
 * the cost of encoding a block's state writes on the node's one interpreter.
 * This module does the same checks in C, calling orjson and hashlib for the
 * JSON and SHA-256 themselves, so the only parsing written here is base64url,
 * the type and nonce syntax and the timestamp.
 *
 * It only ever *accepts*. Every function returns either its answer or None,
 * and None means "not sure": the caller then runs the Python reference path
 * (medledger.ledger.envelope, medledger.ledger.canonical), which produces the
 * exact error, or the answer when a rare but valid input (a 4-byte UTF-8
 * character, a year before 1970, nesting deeper than 32, a tuple) is outside
 * what this module handles. So a bug here can cost speed but can only change
 * an answer if this module accepts something the Python path refuses or
 * answers differently; the differential tests in tests/ledger/test_speedups.py
 * hold it to exactly that.
 *
 * decode_wire / decode_parts return (body, signature, type, payload, signer,
 * nonce, created_at, created_ms, tx_id), the fields of SignedEnvelope in order.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define MAX_ENVELOPE_BYTES 65536
#define MAX_SAFE_INT 9007199254740991LL /* 2**53 - 1 */
#define MAX_DEPTH 32                    /* the Python path allows 64; deeper input goes there */

static PyObject *orjson_loads, *orjson_dumps, *dumps_kwargs, *sha256;
static PyObject *k_envelope, *k_signature, *k_type, *k_payload, *k_signer, *k_nonce, *k_created_at;
static signed char b64_value[256];

enum { OK = 0, UNSURE = -1, ERROR = -2 };

/* Strict unpadded base64url of an exact, ASCII str: one spelling per byte string.
 * Writes a new bytes object to *out (or only validates when out is NULL). */
static int b64url(PyObject *text, Py_ssize_t max_len, Py_ssize_t exact_len, PyObject **out) {
    if (!PyUnicode_CheckExact(text) || !PyUnicode_IS_ASCII(text)) return UNSURE;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    const unsigned char *s = PyUnicode_1BYTE_DATA(text);
    if (n % 4 == 1) return UNSURE;
    Py_ssize_t size = n / 4 * 3 + (n % 4 == 0 ? 0 : n % 4 - 1);
    if (size > max_len || (exact_len >= 0 && size != exact_len)) return UNSURE;
    unsigned char stack[64];
    unsigned char *dst = stack;
    PyObject *bytes = NULL;
    if (out != NULL) {
        bytes = PyBytes_FromStringAndSize(NULL, size);
        if (bytes == NULL) return ERROR;
        dst = (unsigned char *)PyBytes_AS_STRING(bytes);
    } else if (size > (Py_ssize_t)sizeof(stack)) {
        return UNSURE;
    }
    Py_ssize_t i = 0, o = 0;
    for (; i + 4 <= n; i += 4) {
        int a = b64_value[s[i]], b = b64_value[s[i + 1]], c = b64_value[s[i + 2]], d = b64_value[s[i + 3]];
        if ((a | b | c | d) < 0) goto unsure;
        dst[o++] = (unsigned char)(a << 2 | b >> 4);
        dst[o++] = (unsigned char)((b & 0x0F) << 4 | c >> 2);
        dst[o++] = (unsigned char)((c & 0x03) << 6 | d);
    }
    if (n - i == 2) {
        int a = b64_value[s[i]], b = b64_value[s[i + 1]];
        if ((a | b) < 0 || (b & 0x0F) != 0) goto unsure; /* the unused low bits must be zero */
        dst[o++] = (unsigned char)(a << 2 | b >> 4);
    } else if (n - i == 3) {
        int a = b64_value[s[i]], b = b64_value[s[i + 1]], c = b64_value[s[i + 2]];
        if ((a | b | c) < 0 || (c & 0x03) != 0) goto unsure;
        dst[o++] = (unsigned char)(a << 2 | b >> 4);
        dst[o++] = (unsigned char)((b & 0x0F) << 4 | c >> 2);
    }
    if (out != NULL) *out = bytes;
    return OK;
unsure:
    Py_XDECREF(bytes);
    return UNSURE;
}

/* Integers within +-(2**53 - 1), no floats, containers no deeper than MAX_DEPTH. */
static int check_value(PyObject *v, int depth) {
    if (PyUnicode_CheckExact(v) || v == Py_True || v == Py_False || v == Py_None) return OK;
    if (PyLong_CheckExact(v)) {
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (x == -1 && PyErr_Occurred()) return ERROR;
        return (overflow == 0 && x >= -MAX_SAFE_INT && x <= MAX_SAFE_INT) ? OK : UNSURE;
    }
    if (depth >= MAX_DEPTH) return UNSURE;
    if (PyDict_CheckExact(v)) {
        Py_ssize_t pos = 0;
        PyObject *key, *item;
        while (PyDict_Next(v, &pos, &key, &item)) {
            if (!PyUnicode_CheckExact(key)) return UNSURE;
            int r = check_value(item, depth + 1);
            if (r != OK) return r;
        }
        return OK;
    }
    if (PyList_CheckExact(v)) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(v); i++) {
            int r = check_value(PyList_GET_ITEM(v, i), depth + 1);
            if (r != OK) return r;
        }
        return OK;
    }
    return UNSURE; /* floats, and anything else */
}

/* orjson's sorted compact encoding of a checked value, which is RFC 8785's for every value check_value
 * accepts unless it holds a 4-byte UTF-8 character (JCS orders such keys by UTF-16 units; Python does that). */
static int canonical_encoding(PyObject *value, PyObject **out) {
    PyObject *args = PyTuple_Pack(1, value);
    if (args == NULL) return ERROR;
    PyObject *encoded = PyObject_Call(orjson_dumps, args, dumps_kwargs);
    Py_DECREF(args);
    if (encoded == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError)) return ERROR; /* JSONEncodeError is a TypeError */
        PyErr_Clear();
        return UNSURE;
    }
    if (PyBytes_CheckExact(encoded)) {
        const unsigned char *raw = (const unsigned char *)PyBytes_AS_STRING(encoded);
        Py_ssize_t i = 0, n = PyBytes_GET_SIZE(encoded);
        while (i < n && raw[i] < 0xF0) i++;
        if (i == n) {
            *out = encoded;
            return OK;
        }
    }
    Py_DECREF(encoded);
    return UNSURE;
}

static const unsigned char *ascii_str(PyObject *v, Py_ssize_t min_len, Py_ssize_t max_len) {
    if (!PyUnicode_CheckExact(v) || !PyUnicode_IS_ASCII(v)) return NULL;
    Py_ssize_t n = PyUnicode_GET_LENGTH(v);
    if (n < min_len || n > max_len) return NULL;
    return PyUnicode_1BYTE_DATA(v);
}

static int is_lower(unsigned char c) { return c >= 'a' && c <= 'z'; }
static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* [a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*, at most 64 characters */
static int type_ok(PyObject *v) {
    const unsigned char *s = ascii_str(v, 1, 64);
    if (s == NULL) return 0;
    Py_ssize_t n = PyUnicode_GET_LENGTH(v);
    int segment_start = 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (segment_start) {
            if (!is_lower(c)) return 0;
            segment_start = 0;
        } else if (c == '.') {
            segment_start = 1;
        } else if (!(is_lower(c) || is_digit(c) || c == '_' || c == '-')) {
            return 0;
        }
    }
    return !segment_start;
}

/* [A-Za-z0-9_-]{8,64} */
static int nonce_ok(PyObject *v) {
    const unsigned char *s = ascii_str(v, 8, 64);
    if (s == NULL) return 0;
    for (Py_ssize_t i = 0; i < PyUnicode_GET_LENGTH(v); i++) {
        if (b64_value[s[i]] < 0) return 0;
    }
    return 1;
}

static int two(const unsigned char *s) { return (s[0] - '0') * 10 + (s[1] - '0'); }

/* Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static long long days_from_civil(long long y, int m, int d) {
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* YYYY-MM-DDTHH:MM:SS.mmmZ, a real instant from 1970 on; epoch ms to *ms. */
static int timestamp_ms(PyObject *v, long long *ms) {
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    const unsigned char *s = ascii_str(v, 24, 24);
    if (s == NULL) return 0;
    for (int i = 0; i < 24; i++) {
        if (shape[i] == 'd' ? !is_digit(s[i]) : s[i] != (unsigned char)shape[i]) return 0;
    }
    int year = two(s) * 100 + two(s + 2), month = two(s + 5), day = two(s + 8);
    int hour = two(s + 11), minute = two(s + 14), second = two(s + 17);
    int milli = (s[20] - '0') * 100 + two(s + 21);
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (year < 1970 || month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59) return 0;
    int leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    int last = month_days[month - 1] + (month == 2 && leap);
    if (day < 1 || day > last) return 0;
    long long days = days_from_civil(year, month, day);
    *ms = ((days * 24 + hour) * 60 + minute) * 60000LL + second * 1000LL + milli;
    return 1;
}

/* The canonical bytes ``body`` and their 64-byte ``signature`` -> the field tuple, or UNSURE. */
static int decode_body(PyObject *body, PyObject *signature, PyObject **result) {
    Py_ssize_t size = PyBytes_GET_SIZE(body);
    if (size > MAX_ENVELOPE_BYTES || PyBytes_GET_SIZE(signature) != 64) return UNSURE;
    PyObject *value = PyObject_CallOneArg(orjson_loads, body);
    if (value == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_ValueError)) return ERROR; /* JSONDecodeError is a ValueError */
        PyErr_Clear();
        return UNSURE;
    }
    PyObject *encoded = NULL, *digest = NULL, *tx_id = NULL;
    int status = check_value(value, 0);
    if (status == OK) status = canonical_encoding(value, &encoded);
    if (status != OK) goto done;
    status = UNSURE;
    if (PyBytes_GET_SIZE(encoded) != size || memcmp(PyBytes_AS_STRING(encoded), PyBytes_AS_STRING(body), size))
        goto done; /* not the one canonical spelling */
    if (!PyDict_CheckExact(value) || PyDict_GET_SIZE(value) != 5) goto done;
    PyObject *type = PyDict_GetItemWithError(value, k_type);
    PyObject *payload = PyDict_GetItemWithError(value, k_payload);
    PyObject *signer = PyDict_GetItemWithError(value, k_signer);
    PyObject *nonce = PyDict_GetItemWithError(value, k_nonce);
    PyObject *created_at = PyDict_GetItemWithError(value, k_created_at);
    if (PyErr_Occurred()) {
        status = ERROR;
        goto done;
    }
    long long created_ms = 0;
    if (type == NULL || payload == NULL || signer == NULL || nonce == NULL || created_at == NULL) goto done;
    if (!type_ok(type) || !PyDict_CheckExact(payload) || !nonce_ok(nonce) || !timestamp_ms(created_at, &created_ms))
        goto done;
    status = b64url(signer, 32, 32, NULL);
    if (status != OK) goto done;
    digest = PyObject_CallOneArg(sha256, body);
    if (digest == NULL) {
        status = ERROR;
        goto done;
    }
    tx_id = PyObject_CallMethod(digest, "hexdigest", NULL);
    if (tx_id == NULL) {
        status = ERROR;
        goto done;
    }
    PyObject *ms = PyLong_FromLongLong(created_ms);
    if (ms == NULL) {
        status = ERROR;
        goto done;
    }
    *result = PyTuple_Pack(9, body, signature, type, payload, signer, nonce, created_at, ms, tx_id);
    Py_DECREF(ms);
    status = *result == NULL ? ERROR : OK;
done:
    Py_DECREF(value);
    Py_XDECREF(encoded);
    Py_XDECREF(digest);
    Py_XDECREF(tx_id);
    return status;
}

static PyObject *answer(int status, PyObject *result) {
    if (status == ERROR) return NULL;
    if (status == UNSURE) Py_RETURN_NONE;
    return result;
}

PyDoc_STRVAR(decode_wire_doc,
             "decode_wire(item, /)\n--\n\n"
             "A wire item {\"envelope\": b64url, \"signature\": b64url} -> the SignedEnvelope field tuple,\n"
             "or None when the Python reference path must decide.");

static PyObject *decode_wire(PyObject *module, PyObject *item) {
    if (!PyDict_CheckExact(item) || PyDict_GET_SIZE(item) != 2) Py_RETURN_NONE;
    PyObject *env = PyDict_GetItemWithError(item, k_envelope);
    PyObject *sig = PyDict_GetItemWithError(item, k_signature);
    if (PyErr_Occurred()) return NULL;
    if (env == NULL || sig == NULL) Py_RETURN_NONE;
    PyObject *body = NULL, *signature = NULL, *result = NULL;
    int status = b64url(env, MAX_ENVELOPE_BYTES, -1, &body);
    if (status == OK) status = b64url(sig, 64, 64, &signature);
    if (status == OK) status = decode_body(body, signature, &result);
    Py_XDECREF(body);
    Py_XDECREF(signature);
    return answer(status, result);
}

/* METH_FASTCALL leaves the argument count to the function. */
static int arity_ok(const char *name, Py_ssize_t nargs, Py_ssize_t wanted) {
    if (nargs == wanted) return 1;
    PyErr_Format(PyExc_TypeError, "%s takes exactly %zd arguments (%zd given)", name, wanted, nargs);
    return 0;
}

PyDoc_STRVAR(decode_parts_doc,
             "decode_parts(body, signature, /)\n--\n\n"
             "Canonical envelope bytes and a signature -> the SignedEnvelope field tuple, or None.");

static PyObject *decode_parts(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (!arity_ok("decode_parts", nargs, 2)) return NULL;
    if (!PyBytes_CheckExact(args[0]) || !PyBytes_CheckExact(args[1])) Py_RETURN_NONE;
    PyObject *result = NULL;
    int status = decode_body(args[0], args[1], &result); /* before reading result: C leaves argument order open */
    return answer(status, result);
}

PyDoc_STRVAR(encode_doc,
             "encode(value, /)\n--\n\n"
             "RFC 8785 canonical bytes of a JSON value, or None when the Python reference path must decide.");

static PyObject *encode(PyObject *module, PyObject *value) {
    PyObject *out = NULL;
    int status = check_value(value, 0);
    if (status == OK) status = canonical_encoding(value, &out);
    return answer(status, out);
}

PyDoc_STRVAR(envelopes_doc,
             "envelopes(rows, bodies, values, signatures, cls, /)\n--\n\n"
             "Rebuild checked envelopes from a verify worker's packed answer (see medledger.node.pool._pack),\n"
             "or None if any row is not a plain accepted one (the Python unpacker then reads them all).");

static PyObject *envelopes(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (!arity_ok("envelopes", nargs, 5)) return NULL;
    PyObject *rows = args[0], *bodies = args[1], *values = args[2], *signatures = args[3], *cls = args[4];
    if (!PyList_CheckExact(rows) || !PyBytes_CheckExact(bodies) || !PyList_CheckExact(values) ||
        !PyBytes_CheckExact(signatures))
        Py_RETURN_NONE;
    Py_ssize_t n = PyList_GET_SIZE(rows);
    if (PyList_GET_SIZE(values) != n || PyBytes_GET_SIZE(signatures) != 64 * n) Py_RETURN_NONE;
    const char *body_bytes = PyBytes_AS_STRING(bodies);
    const char *signature_bytes = PyBytes_AS_STRING(signatures);
    Py_ssize_t body_size = PyBytes_GET_SIZE(bodies);
    PyObject *out = PyList_New(n);
    if (out == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = PyList_GET_ITEM(rows, i), *value = PyList_GET_ITEM(values, i);
        if (!PyList_CheckExact(row) || PyList_GET_SIZE(row) != 4 || !PyDict_CheckExact(value)) goto unsure;
        PyObject *created_ms = PyList_GET_ITEM(row, 0), *tx_id = PyList_GET_ITEM(row, 1);
        PyObject *first = PyList_GET_ITEM(row, 2), *last = PyList_GET_ITEM(row, 3);
        if (!PyLong_CheckExact(created_ms) || !PyUnicode_CheckExact(tx_id) || !PyLong_CheckExact(first) ||
            !PyLong_CheckExact(last))
            goto unsure;
        Py_ssize_t start = PyLong_AsSsize_t(first);
        if (start == -1 && PyErr_Occurred()) {
            PyErr_Clear(); /* an offset beyond Py_ssize_t: not what _pack writes */
            goto unsure;
        }
        Py_ssize_t end = PyLong_AsSsize_t(last);
        if (end == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            goto unsure;
        }
        if (start < 0 || end < start || end > body_size) goto unsure;
        PyObject *fields[9];
        fields[2] = PyDict_GetItemWithError(value, k_type);
        fields[3] = PyDict_GetItemWithError(value, k_payload);
        fields[4] = PyDict_GetItemWithError(value, k_signer);
        fields[5] = PyDict_GetItemWithError(value, k_nonce);
        fields[6] = PyDict_GetItemWithError(value, k_created_at);
        if (PyErr_Occurred()) goto error;
        if (!fields[2] || !fields[3] || !fields[4] || !fields[5] || !fields[6]) goto unsure;
        fields[0] = PyBytes_FromStringAndSize(body_bytes + start, end - start);
        fields[1] = PyBytes_FromStringAndSize(signature_bytes + 64 * i, 64);
        fields[7] = created_ms;
        fields[8] = tx_id;
        PyObject *env = (fields[0] && fields[1]) ? PyObject_Vectorcall(cls, fields, 9, NULL) : NULL;
        Py_XDECREF(fields[0]);
        Py_XDECREF(fields[1]);
        if (env == NULL) goto error;
        PyList_SET_ITEM(out, i, env);
    }
    return out;
unsure:
    Py_DECREF(out);
    Py_RETURN_NONE;
error:
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef methods[] = {
    {"envelopes", (PyCFunction)(void (*)(void))envelopes, METH_FASTCALL, envelopes_doc},
    {"encode", encode, METH_O, encode_doc},
    {"decode_wire", decode_wire, METH_O, decode_wire_doc},
    {"decode_parts", (PyCFunction)(void (*)(void))decode_parts, METH_FASTCALL, decode_parts_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_speedups", "Accept-only C fast paths for envelope decoding and canonical encoding (see the C source).", -1, methods,
    NULL, NULL, NULL, NULL,
};

static PyObject *attribute(const char *module_name, const char *name) {
    PyObject *module = PyImport_ImportModule(module_name);
    if (module == NULL) return NULL;
    PyObject *value = PyObject_GetAttrString(module, name);
    Py_DECREF(module);
    return value;
}

PyMODINIT_FUNC PyInit__speedups(void) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    memset(b64_value, -1, sizeof(b64_value));
    for (int i = 0; i < 64; i++) b64_value[(unsigned char)alphabet[i]] = (signed char)i;
    PyObject *option = NULL;
    if ((orjson_loads = attribute("orjson", "loads")) == NULL) return NULL;
    if ((orjson_dumps = attribute("orjson", "dumps")) == NULL) return NULL;
    if ((sha256 = attribute("hashlib", "sha256")) == NULL) return NULL;
    if ((option = attribute("orjson", "OPT_SORT_KEYS")) == NULL) return NULL;
    /* orjson matches keyword names by identity with its own interned strings */
    PyObject *option_name = PyUnicode_InternFromString("option");
    dumps_kwargs = option_name == NULL ? NULL : PyDict_New();
    if (dumps_kwargs == NULL || PyDict_SetItem(dumps_kwargs, option_name, option) < 0) return NULL;
    Py_DECREF(option_name);
    Py_DECREF(option);
    k_envelope = PyUnicode_InternFromString("envelope");
    k_signature = PyUnicode_InternFromString("signature");
    k_type = PyUnicode_InternFromString("type");
    k_payload = PyUnicode_InternFromString("payload");
    k_signer = PyUnicode_InternFromString("signer");
    k_nonce = PyUnicode_InternFromString("nonce");
    k_created_at = PyUnicode_InternFromString("created_at");
    if (!k_envelope || !k_signature || !k_type || !k_payload || !k_signer || !k_nonce || !k_created_at) return NULL;
    return PyModule_Create(&module_def);
}
