/* A compiled reader of the common DICOM file: its header as DICOM JSON in one pass.
 *
 * Ingest reads every upload's header with pydicom (a Python object per element) and converts
 * it to DICOM JSON element by element: two thirds of an upload's parse. This reads the bytes
 * of a Part 10 file in Explicit VR Little Endian (or an encapsulated syntax, which is encoded
 * the same) once, and builds the same DICOM JSON objects that
 * ``dicom_json.dataset_to_json`` builds from pydicom's reading, with the same numbers (IS and
 * DS through Python's own ``int`` and ``float``), the same text (ASCII, ISO_IR 100 or
 * ISO_IR 192) and the same bulk data locations.
 *
 * It reads only what it can read exactly as that path does and declines anything else
 * (returns None): another encoding, character set or VR it does not decode (UN), elements out
 * of order, a value past the end, an undefined length outside a sequence, a large value
 * pydicom would defer, a number or text the Python conversion would not take. The caller then
 * reads the file through pydicom, whose checks name what is wrong. The two are compared on
 * every test file (tests/unit/dicom/test_header_scan.py).
 *
 * scan(data: bytes, syntaxes: frozenset[str], uri_prefix: str) ->
 *     None | (header: dict, bulk: dict[str, int], end: int, at_pixels: bool)
 * ``end`` is where the top-level reading stopped: the header of the pixel data element
 * (``at_pixels``), or the end of the last element (the end of the file, or fewer bytes than an
 * element header before it).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define OK 0
#define DECLINE 1
#define FAIL (-1) /* a Python exception is set */

#define BULK_THRESHOLD 1024u /* dicom_json.BULK_THRESHOLD; pydicom defers larger values */
#define MAX_DEPTH 64         /* dicom_json.MAX_SEQUENCE_DEPTH: deeper is refused by that path */
#define UNDEFINED 0xFFFFFFFFu

enum codec { ASCII, LATIN1, UTF8 };

enum kind { K_NONE, K_TEXT, K_SINGLE, K_IS, K_DS, K_PN, K_BIN, K_BYTES, K_AT, K_SQ };

typedef struct {
    enum kind kind;
    int long_length; /* 2 reserved bytes and a 4-byte length (PS3.5 7.1.2) */
    int charset;     /* decoded with the data set's character set */
    char fmt;        /* K_BIN: H h I i f d Q q */
    int size;        /* K_BIN: bytes per number */
} VrInfo;

static PyObject *s_vr, *s_value, *s_inline, *s_bulk_uri, *s_pn_groups[3];

/* The VR of two characters, or kind K_NONE (UN and anything unknown: declined). */
static VrInfo vr_info(const uint8_t *v) {
    VrInfo i = {K_NONE, 0, 0, 0, 0};
    switch ((v[0] << 8) | v[1]) {
    case ('A' << 8) | 'E': case ('A' << 8) | 'S': case ('C' << 8) | 'S':
    case ('D' << 8) | 'A': case ('D' << 8) | 'T': case ('T' << 8) | 'M':
    case ('U' << 8) | 'I':
        i.kind = K_TEXT; break;
    case ('L' << 8) | 'O': case ('S' << 8) | 'H':
        i.kind = K_TEXT; i.charset = 1; break;
    case ('U' << 8) | 'C':
        i.kind = K_TEXT; i.charset = 1; i.long_length = 1; break;
    case ('L' << 8) | 'T': case ('S' << 8) | 'T':
        i.kind = K_SINGLE; i.charset = 1; break;
    case ('U' << 8) | 'T':
        i.kind = K_SINGLE; i.charset = 1; i.long_length = 1; break;
    case ('U' << 8) | 'R':
        i.kind = K_SINGLE; i.long_length = 1; break;
    case ('I' << 8) | 'S': i.kind = K_IS; break;
    case ('D' << 8) | 'S': i.kind = K_DS; break;
    case ('P' << 8) | 'N': i.kind = K_PN; i.charset = 1; break;
    case ('A' << 8) | 'T': i.kind = K_AT; break;
    case ('U' << 8) | 'S': i.kind = K_BIN; i.fmt = 'H'; i.size = 2; break;
    case ('S' << 8) | 'S': i.kind = K_BIN; i.fmt = 'h'; i.size = 2; break;
    case ('U' << 8) | 'L': i.kind = K_BIN; i.fmt = 'I'; i.size = 4; break;
    case ('S' << 8) | 'L': i.kind = K_BIN; i.fmt = 'i'; i.size = 4; break;
    case ('F' << 8) | 'L': i.kind = K_BIN; i.fmt = 'f'; i.size = 4; break;
    case ('F' << 8) | 'D': i.kind = K_BIN; i.fmt = 'd'; i.size = 8; break;
    case ('U' << 8) | 'V': i.kind = K_BIN; i.fmt = 'Q'; i.size = 8; i.long_length = 1; break;
    case ('S' << 8) | 'V': i.kind = K_BIN; i.fmt = 'q'; i.size = 8; i.long_length = 1; break;
    case ('O' << 8) | 'B': case ('O' << 8) | 'D': case ('O' << 8) | 'F':
    case ('O' << 8) | 'L': case ('O' << 8) | 'V': case ('O' << 8) | 'W':
        i.kind = K_BYTES; i.long_length = 1; break;
    case ('S' << 8) | 'Q': i.kind = K_SQ; i.long_length = 1; break;
    default: break;
    }
    return i;
}

static inline uint16_t u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t u64(const uint8_t *p) { return (uint64_t)u32(p) | ((uint64_t)u32(p + 4) << 32); }

/* The VR strings, made once each: index (first letter - 'A') * 26 + second - 'A'. */
static PyObject *vr_names[26 * 26];

static PyObject *vr_name(const uint8_t *v) { /* borrowed; the VR is a known one */
    PyObject **slot = &vr_names[(v[0] - 'A') * 26 + (v[1] - 'A')];
    if (*slot == NULL) *slot = PyUnicode_FromStringAndSize((const char *)v, 2);
    return *slot;
}

/* Element keys ("00100010") made once each for the tags met most: a direct-mapped table. */
#define KEY_SLOTS 4096
static struct { uint32_t tag; PyObject *key; } keys[KEY_SLOTS];

static PyObject *key_of(uint32_t tag) { /* a new reference */
    size_t slot = (tag * 2654435761u) >> 20 & (KEY_SLOTS - 1);
    if (keys[slot].key != NULL && keys[slot].tag == tag) {
        Py_INCREF(keys[slot].key);
        return keys[slot].key;
    }
    char text[9];
    snprintf(text, sizeof text, "%08X", (unsigned)tag);
    PyObject *key = PyUnicode_FromStringAndSize(text, 8);
    if (key == NULL) return NULL;
    Py_XDECREF(keys[slot].key);
    keys[slot].tag = tag;
    keys[slot].key = key;
    Py_INCREF(key);
    return key;
}

typedef struct {
    const uint8_t *b;
    Py_ssize_t n;
    PyObject *bulk;       /* {location: length} */
    PyObject *uri_prefix; /* what a BulkDataURI holds before the location */
} Scan;

/* {"vr": vr} */
static PyObject *bare(PyObject *vr) {
    PyObject *d = PyDict_New();
    if (d && PyDict_SetItem(d, s_vr, vr) < 0) Py_CLEAR(d);
    return d;
}

/* {"vr": vr, key: value}, stealing ``value``. */
static PyObject *with(PyObject *vr, PyObject *key, PyObject *value) {
    if (value == NULL) return NULL;
    PyObject *d = bare(vr);
    if (d && PyDict_SetItem(d, key, value) < 0) Py_CLEAR(d);
    Py_DECREF(value);
    return d;
}

static PyObject *decode(const uint8_t *p, Py_ssize_t len, enum codec codec, int *declined) {
    PyObject *s;
    if (codec == LATIN1) return PyUnicode_DecodeLatin1((const char *)p, len, NULL);
    if (codec == ASCII) {
        for (Py_ssize_t i = 0; i < len; i++)
            if (p[i] >= 0x80) { *declined = 1; return NULL; }
        return PyUnicode_DecodeASCII((const char *)p, len, NULL);
    }
    s = PyUnicode_DecodeUTF8((const char *)p, len, NULL);
    if (s == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        *declined = 1;
    }
    return s;
}

static inline int pad(uint8_t c) { return c == 0 || c == ' '; }

/* The value of one number, text or name (``Value`` entry), or Py_None for an empty part;
 * *declined when the Python conversion would not take it. */
static PyObject *part(const uint8_t *p, Py_ssize_t len, enum kind kind, enum codec codec,
                      int *declined) {
    while (len && pad(p[0])) { p++; len--; }
    while (len && pad(p[len - 1])) len--;
    if (len == 0) Py_RETURN_NONE;
    PyObject *text = decode(p, len, codec, declined);
    if (text == NULL) return NULL;
    if (kind == K_IS || kind == K_DS) {
        PyObject *n = kind == K_IS ? PyLong_FromUnicodeObject(text, 10) : PyFloat_FromString(text);
        Py_DECREF(text);
        if (n == NULL) {
            if (PyErr_ExceptionMatches(PyExc_ValueError)) { PyErr_Clear(); *declined = 1; }
            return NULL;
        }
        if (kind == K_DS && !isfinite(PyFloat_AS_DOUBLE(n))) {
            Py_DECREF(n);
            *declined = 1; /* NaN and infinities have no JSON number */
            return NULL;
        }
        return n;
    }
    if (kind != K_PN) return text;
    /* Person name: up to three component groups, "=" apart; empty ones left out. */
    PyObject *entry = PyDict_New();
    if (entry == NULL) { Py_DECREF(text); return NULL; }
    Py_ssize_t start = 0, end;
    for (int g = 0; g < 3 && start <= len; g++) {
        end = start;
        while (end < len && p[end] != '=') end++;
        if (end > start) {
            PyObject *s = decode(p + start, end - start, codec, declined);
            if (s == NULL || PyDict_SetItem(entry, s_pn_groups[g], s) < 0) {
                Py_XDECREF(s); Py_DECREF(entry); Py_DECREF(text);
                return NULL;
            }
            Py_DECREF(s);
        }
        start = end + 1;
    }
    Py_DECREF(text);
    if (PyDict_GET_SIZE(entry) == 0) { Py_DECREF(entry); Py_RETURN_NONE; }
    return entry;
}

/* Text, IS, DS and PN: values "\" apart, each stripped of spaces and NULs. */
static PyObject *values(PyObject *vr, const uint8_t *p, Py_ssize_t len, enum kind kind,
                        enum codec codec, int *declined) {
    PyObject *list = PyList_New(0);
    if (list == NULL) return NULL;
    int any = 0;
    Py_ssize_t start = 0;
    for (;;) {
        Py_ssize_t end = start;
        while (end < len && p[end] != '\\') end++;
        PyObject *v = part(p + start, end - start, kind, codec, declined);
        if (v == NULL || PyList_Append(list, v) < 0) { Py_XDECREF(v); Py_DECREF(list); return NULL; }
        any |= v != Py_None;
        Py_DECREF(v);
        if (end >= len) break;
        start = end + 1;
    }
    if (!any) { Py_DECREF(list); return bare(vr); }
    return with(vr, s_value, list);
}

static PyObject *single_text(PyObject *vr, const uint8_t *p, Py_ssize_t len, enum codec codec,
                             int *declined) {
    while (len && pad(p[len - 1])) len--;
    if (len == 0) return bare(vr);
    PyObject *text = decode(p, len, codec, declined);
    if (text == NULL) return NULL;
    PyObject *list = PyList_New(1);
    if (list == NULL) { Py_DECREF(text); return NULL; }
    PyList_SET_ITEM(list, 0, text);
    return with(vr, s_value, list);
}

static PyObject *numbers(PyObject *vr, const uint8_t *p, Py_ssize_t len, VrInfo info,
                         int *declined) {
    if (len % info.size) { *declined = 1; return NULL; }
    Py_ssize_t count = len / info.size;
    PyObject *list = PyList_New(count);
    if (list == NULL) return NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        const uint8_t *q = p + i * info.size;
        PyObject *n = NULL;
        double d;
        switch (info.fmt) {
        case 'H': n = PyLong_FromLong(u16(q)); break;
        case 'h': n = PyLong_FromLong((int16_t)u16(q)); break;
        case 'I': n = PyLong_FromUnsignedLong(u32(q)); break;
        case 'i': n = PyLong_FromLong((int32_t)u32(q)); break;
        case 'Q': n = PyLong_FromUnsignedLongLong(u64(q)); break;
        case 'q': n = PyLong_FromLongLong((int64_t)u64(q)); break;
        case 'f': case 'd':
            d = info.fmt == 'f' ? PyFloat_Unpack4((const char *)q, 1) : PyFloat_Unpack8((const char *)q, 1);
            if (d == -1.0 && PyErr_Occurred()) break;
            if (!isfinite(d)) { Py_DECREF(list); *declined = 1; return NULL; }
            n = PyFloat_FromDouble(d);
            break;
        }
        if (n == NULL) { Py_DECREF(list); return NULL; }
        PyList_SET_ITEM(list, i, n);
    }
    return with(vr, s_value, list);
}

static PyObject *tags(PyObject *vr, const uint8_t *p, Py_ssize_t len, int *declined) {
    if (len % 4) { *declined = 1; return NULL; }
    PyObject *list = PyList_New(len / 4);
    if (list == NULL) return NULL;
    for (Py_ssize_t i = 0; i < len / 4; i++) {
        char text[9]; /* PyUnicode_FromFormat has no %X */
        snprintf(text, sizeof text, "%04X%04X", u16(p + 4 * i), u16(p + 4 * i + 2));
        PyObject *s = PyUnicode_FromStringAndSize(text, 8);
        if (s == NULL) { Py_DECREF(list); return NULL; }
        PyList_SET_ITEM(list, i, s);
    }
    return with(vr, s_value, list);
}

static PyObject *inline_binary(PyObject *vr, const uint8_t *p, Py_ssize_t len) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    Py_ssize_t out_len = (len + 2) / 3 * 4;
    PyObject *s = PyUnicode_New(out_len, 127);
    if (s == NULL) return NULL;
    Py_UCS1 *o = PyUnicode_1BYTE_DATA(s);
    Py_ssize_t i = 0, j = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = ((uint32_t)p[i] << 16) | ((uint32_t)p[i + 1] << 8) | p[i + 2];
        o[j++] = abc[v >> 18]; o[j++] = abc[(v >> 12) & 63];
        o[j++] = abc[(v >> 6) & 63]; o[j++] = abc[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < len) v |= (uint32_t)p[i + 1] << 8;
        o[j++] = abc[v >> 18]; o[j++] = abc[(v >> 12) & 63];
        o[j++] = i + 1 < len ? abc[(v >> 6) & 63] : '=';
        o[j++] = '=';
    }
    return with(vr, s_inline, s);
}

enum mode { META, TOP, ITEM };

static int walk(Scan *sc, Py_ssize_t *pos, Py_ssize_t end, enum mode mode, int depth,
                PyObject *path, PyObject *out, int *at_pixels);

/* The items of a sequence whose value starts at *pos: ``length`` bytes, or up to its
 * delimitation item. */
static int sequence(Scan *sc, Py_ssize_t *pos, uint32_t length, int depth, PyObject *where,
                    PyObject **result, PyObject *vr) {
    Py_ssize_t end = length == UNDEFINED ? sc->n : *pos + (Py_ssize_t)length;
    PyObject *items = PyList_New(0);
    if (items == NULL) return FAIL;
    int rc = OK;
    for (Py_ssize_t index = 0;; index++) {
        if (length != UNDEFINED && *pos == end) break;
        if (end - *pos < 8) { rc = DECLINE; break; }
        uint32_t tag = ((uint32_t)u16(sc->b + *pos) << 16) | u16(sc->b + *pos + 2);
        uint32_t item_length = u32(sc->b + *pos + 4);
        *pos += 8;
        if (tag == 0xFFFEE0DD && length == UNDEFINED) {
            if (item_length != 0) rc = DECLINE;
            break;
        }
        if (tag != 0xFFFEE000) { rc = DECLINE; break; }
        Py_ssize_t item_end;
        if (item_length == UNDEFINED) item_end = end;
        else if ((Py_ssize_t)item_length > end - *pos) { rc = DECLINE; break; }
        else item_end = *pos + (Py_ssize_t)item_length;
        PyObject *item_path = PyUnicode_FromFormat("%U/%zd/", where, index);
        PyObject *item = PyDict_New();
        if (item_path == NULL || item == NULL) { Py_XDECREF(item_path); Py_XDECREF(item); rc = FAIL; break; }
        int unused = 0;
        rc = walk(sc, pos, item_length == UNDEFINED ? -item_end : item_end, ITEM, depth, item_path,
                  item, &unused);
        Py_DECREF(item_path);
        if (rc == OK && PyList_Append(items, item) < 0) rc = FAIL;
        Py_DECREF(item);
        if (rc != OK) break;
    }
    if (rc != OK) { Py_DECREF(items); return rc; }
    if (PyList_GET_SIZE(items) == 0) {
        Py_DECREF(items);
        *result = bare(vr);
    } else {
        *result = with(vr, s_value, items);
    }
    return *result ? OK : FAIL;
}

/* (0008,0005) Specific Character Set: the values the Python conversion decodes itself. */
static int charset(const uint8_t *p, uint32_t len, enum codec *codec, PyObject **name) {
    static const struct { const char *value; enum codec codec; } known[] = {
        {"ISO_IR 100", LATIN1}, {"ISO_IR 192", UTF8}, {"ISO_IR 6", ASCII},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        size_t n = strlen(known[i].value);
        if ((len == n || (len == n + 1 && p[n] == ' ')) && memcmp(p, known[i].value, n) == 0) {
            *codec = known[i].codec;
            *name = PyUnicode_FromString(known[i].value);
            return *name ? OK : FAIL;
        }
    }
    return DECLINE;
}

/* The elements of one data set, from *pos. ``end``: the last byte (ITEM of defined length),
 * or minus the bound of an item of undefined length (which ends at its delimitation item);
 * META stops at the first element outside group 0002, TOP at the pixel data or the end. */
static int walk(Scan *sc, Py_ssize_t *pos, Py_ssize_t end, enum mode mode, int depth,
                PyObject *path, PyObject *out, int *at_pixels) {
    int delimited = end < 0;
    if (delimited) end = -end;
    enum codec codec = ASCII;
    uint32_t previous = 0;
    int first = 1;
    const uint8_t *b = sc->b;
    for (;;) {
        if (mode == ITEM && !delimited && *pos == end) return OK;
        if (end - *pos < 8) {
            /* pydicom ends a data set at fewer bytes than an element header */
            return mode == ITEM ? DECLINE : OK;
        }
        Py_ssize_t start = *pos;
        uint32_t tag = ((uint32_t)u16(b + start) << 16) | u16(b + start + 2);
        if (mode == META && tag >> 16 != 0x0002) return OK;
        if (mode == TOP && (tag == 0x7FE00010 || tag == 0x7FE00008 || tag == 0x7FE00009)) {
            *at_pixels = 1;
            return OK;
        }
        if (delimited && tag == 0xFFFEE00D) {
            if (u32(b + start + 4) != 0) return DECLINE;
            *pos += 8;
            return OK;
        }
        if (!first && tag <= previous) return DECLINE; /* out of order, or repeated */
        if (tag >> 16 == 0xFFFE) return DECLINE;
        if (mode != META && tag >> 16 <= 0x0002) return DECLINE;
        first = 0;
        previous = tag;
        VrInfo info = vr_info(b + start + 4);
        if (info.kind == K_NONE) return DECLINE;
        uint32_t length;
        if (info.long_length) {
            if (end - start < 12) return DECLINE;
            length = u32(b + start + 8);
            *pos = start + 12;
        } else {
            length = u16(b + start + 6);
            *pos = start + 8;
        }
        const uint8_t *v = b + *pos;
        if (length != UNDEFINED && (Py_ssize_t)length > end - *pos) return DECLINE;
        if (length == UNDEFINED && info.kind != K_SQ) return DECLINE;
        Py_ssize_t value_end = length == UNDEFINED ? -1 : *pos + (Py_ssize_t)length;
        int group_length = !(tag & 0xFFFF) && tag >> 16 != 0x0002;
        PyObject *vr = NULL, *elem = NULL;
        char key[9];
        int declined = 0;
        int rc = OK;
        if (group_length) {
            if (length == UNDEFINED) return DECLINE;
            *pos = value_end;
            continue; /* group lengths are retired and carry nothing (PS3.5 7.2) */
        }
        snprintf(key, sizeof key, "%08X", (unsigned)tag);
        vr = vr_name(b + start + 4);
        if (vr == NULL) return FAIL;
        Py_INCREF(vr);
        if (info.kind == K_BYTES && length > BULK_THRESHOLD) {
            PyObject *where = PyUnicode_FromFormat("%U%s", path, key);
            PyObject *n = PyLong_FromUnsignedLong(length);
            if (where && n && PyDict_SetItem(sc->bulk, where, n) == 0)
                elem = with(vr, s_bulk_uri, PyUnicode_Concat(sc->uri_prefix, where));
            Py_XDECREF(where);
            Py_XDECREF(n);
            if (elem == NULL) rc = FAIL;
            *pos = value_end;
        } else if (tag == 0x00080005) {
            PyObject *name = NULL;
            if (mode != TOP) rc = DECLINE;
            else if (length == 0) elem = bare(vr), rc = elem ? OK : FAIL;
            else if ((rc = charset(v, length, &codec, &name)) == OK) {
                PyObject *list = PyList_New(1);
                if (list == NULL) { Py_DECREF(name); rc = FAIL; }
                else { PyList_SET_ITEM(list, 0, name); elem = with(vr, s_value, list); }
                if (elem == NULL) rc = FAIL;
            }
            *pos = value_end;
        } else if (length == 0) {
            elem = bare(vr);
            if (elem == NULL) rc = FAIL;
            *pos = value_end;
        } else if (info.kind == K_SQ) {
            if (depth + 1 > MAX_DEPTH) rc = DECLINE;
            else {
                PyObject *where = PyUnicode_FromFormat("%U%s", path, key);
                if (where == NULL) rc = FAIL;
                else {
                    rc = sequence(sc, pos, length, depth + 1, where, &elem, vr);
                    Py_DECREF(where);
                }
                if (rc == OK && length != UNDEFINED && *pos != value_end) rc = DECLINE;
            }
        } else if (length > BULK_THRESHOLD) {
            rc = DECLINE; /* pydicom defers it: that path converts it differently */
        } else {
            if (info.charset && tag < 0x00080005 && mode == TOP) rc = DECLINE;
            else {
                enum codec c = info.charset ? codec : ASCII;
                switch (info.kind) {
                case K_TEXT: case K_IS: case K_DS: case K_PN:
                    elem = values(vr, v, length, info.kind, c, &declined); break;
                case K_SINGLE: elem = single_text(vr, v, length, c, &declined); break;
                case K_BIN: elem = numbers(vr, v, length, info, &declined); break;
                case K_AT: elem = tags(vr, v, length, &declined); break;
                case K_BYTES: elem = inline_binary(vr, v, length); break;
                default: declined = 1; break;
                }
                rc = elem ? OK : declined ? DECLINE : FAIL;
            }
            *pos = value_end;
        }
        if (rc == OK) {
            PyObject *k = key_of(tag);
            if (k == NULL || PyDict_SetItem(out, k, elem) < 0) rc = FAIL;
            Py_XDECREF(k);
        }
        Py_XDECREF(elem);
        Py_DECREF(vr);
        if (rc != OK) return rc;
    }
}

static PyObject *scan(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    PyObject *syntaxes, *uri_prefix;
    if (!PyArg_ParseTuple(args, "y*OU", &view, &syntaxes, &uri_prefix)) return NULL;
    Scan sc = {(const uint8_t *)view.buf, view.len, NULL, uri_prefix};
    PyObject *header = NULL, *result = NULL;
    int at_pixels = 0, rc = DECLINE;
    Py_ssize_t pos = 132;
    if (sc.n < 132 + 12 || memcmp(sc.b + 128, "DICM", 4) != 0) goto done;
    header = PyDict_New();
    sc.bulk = PyDict_New();
    if (header == NULL || sc.bulk == NULL) { rc = FAIL; goto done; }
    PyObject *empty = PyUnicode_FromString("");
    if (empty == NULL) { rc = FAIL; goto done; }
    rc = walk(&sc, &pos, sc.n, META, 0, empty, header, &at_pixels);
    if (rc == OK) {
        /* The transfer syntax: one the caller names as encoded like Explicit VR LE. */
        PyObject *ts = PyDict_GetItemString(header, "00020010");
        PyObject *value = ts ? PyDict_GetItem(ts, s_value) : NULL;
        PyObject *uid = value && PyList_GET_SIZE(value) == 1 ? PyList_GET_ITEM(value, 0) : NULL;
        int known = uid && PyUnicode_Check(uid) ? PySet_Contains(syntaxes, uid) : 0;
        if (known < 0) rc = FAIL;
        else if (!known) rc = DECLINE;
    }
    if (rc == OK) {
        Py_ssize_t meta_end = pos;
        rc = walk(&sc, &pos, sc.n, TOP, 0, empty, header, &at_pixels);
        if (rc == OK && pos == meta_end) rc = DECLINE; /* no data set after the meta group */
    }
    Py_DECREF(empty);
    if (rc == OK) result = Py_BuildValue("OOnO", header, sc.bulk, pos, at_pixels ? Py_True : Py_False);
done:
    Py_XDECREF(header);
    Py_XDECREF(sc.bulk);
    PyBuffer_Release(&view);
    if (rc == FAIL || (rc == OK && result == NULL)) return NULL;
    if (rc == DECLINE) Py_RETURN_NONE;
    return result;
}

/* element_spans(json) -> bytes: for the JSON object ``json`` as orjson writes it (no spaces),
 * whose keys are tags as 8 hex digits, the (tag, start, end) of each member's value as native
 * uint32 triples, in the object's order (header_index.encode_header's span index). */
static PyObject *element_spans(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*", &view)) return NULL;
    const uint8_t *b = view.buf;
    Py_ssize_t n = view.len, pos = 1, count = 0, capacity = 64;
    uint32_t *out = PyMem_Malloc(capacity * 3 * sizeof(uint32_t));
    PyObject *result = NULL;
    if (out == NULL) { PyErr_NoMemory(); goto done; }
    if (n < 2 || b[0] != '{') goto malformed;
    if (b[1] == '}') goto finished;
    for (;;) {
        if (pos + 11 > n || b[pos] != '"' || b[pos + 9] != '"' || b[pos + 10] != ':') goto malformed;
        uint32_t tag = 0;
        for (int i = 1; i <= 8; i++) {
            uint8_t c = b[pos + i];
            int digit = c >= '0' && c <= '9'   ? c - '0'
                        : c >= 'A' && c <= 'F' ? c - 'A' + 10
                        : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                               : -1;
            if (digit < 0) goto malformed;
            tag = (tag << 4) | (uint32_t)digit;
        }
        pos += 11;
        Py_ssize_t start = pos;
        int depth = 0;
        for (;; pos++) {
            if (pos >= n) goto malformed;
            uint8_t c = b[pos];
            if (c == '"') {
                for (pos++; pos < n && b[pos] != '"'; pos++)
                    if (b[pos] == '\\') pos++;
                if (pos >= n) goto malformed;
            } else if (c == '{' || c == '[') {
                depth++;
            } else if (c == '}' || c == ']') {
                if (depth == 0) break;
                depth--;
            } else if (c == ',' && depth == 0) {
                break;
            }
        }
        if (count == capacity) {
            capacity *= 2;
            uint32_t *grown = PyMem_Realloc(out, capacity * 3 * sizeof(uint32_t));
            if (grown == NULL) { PyErr_NoMemory(); goto done; }
            out = grown;
        }
        out[3 * count] = tag;
        out[3 * count + 1] = (uint32_t)start;
        out[3 * count + 2] = (uint32_t)pos;
        count++;
        if (b[pos] == '}') break;
        pos++;
    }
finished:
    result = PyBytes_FromStringAndSize((const char *)out, count * 3 * (Py_ssize_t)sizeof(uint32_t));
    goto done;
malformed:
    PyErr_SetString(PyExc_ValueError, "not a JSON object of tags as orjson writes it");
done:
    PyMem_Free(out);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"element_spans", element_spans, METH_VARARGS,
     "element_spans(json) -> the (tag, start, end) of each member's value, as uint32s"},
    {"scan", scan, METH_VARARGS,
     "scan(data, syntaxes, uri_prefix) -> None | (header, bulk lengths, end, at pixel data)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_header_scan", NULL, -1, methods,
                                   NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__header_scan(void) {
    s_vr = PyUnicode_InternFromString("vr");
    s_value = PyUnicode_InternFromString("Value");
    s_inline = PyUnicode_InternFromString("InlineBinary");
    s_bulk_uri = PyUnicode_InternFromString("BulkDataURI");
    s_pn_groups[0] = PyUnicode_InternFromString("Alphabetic");
    s_pn_groups[1] = PyUnicode_InternFromString("Ideographic");
    s_pn_groups[2] = PyUnicode_InternFromString("Phonetic");
    if (!s_vr || !s_value || !s_inline || !s_bulk_uri || !s_pn_groups[0] || !s_pn_groups[1] ||
        !s_pn_groups[2])
        return NULL;
    return PyModule_Create(&module);
}
