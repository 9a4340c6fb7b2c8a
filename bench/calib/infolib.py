"""infolib.py — the few libflashlib_info calls the calibration harness needs
(estimate as a dict, the model with explicit coefficients, the coefficient
names and roofline values, device names). Standard library only."""
import ctypes
import json
from ctypes import POINTER, byref, c_char_p, c_double, c_int, c_int64, c_size_t, c_void_p


class InfoError(RuntimeError):
    pass


class Info:
    def __init__(self, path):
        self.path = path
        lib = self.lib = ctypes.CDLL(path)
        lib.fl_info_sizeof.restype = c_size_t
        lib.fl_info_sizeof.argtypes = [c_char_p]
        self.rsize = lib.fl_info_sizeof(b"result")
        lib.fl_info_estimate.argtypes = [c_char_p, POINTER(c_int64), c_int, c_char_p, c_char_p, c_char_p, c_void_p,
                                         c_char_p, c_size_t]
        lib.fl_info_json.restype = c_size_t
        lib.fl_info_json.argtypes = [c_void_p, c_char_p, c_size_t]
        lib.fl_info_model_eval.argtypes = [c_char_p, c_char_p, POINTER(c_int64), c_int, c_char_p, c_char_p,
                                           c_char_p, POINTER(c_double), c_int, POINTER(c_double), c_char_p,
                                           c_size_t]
        lib.fl_info_model_coefs.argtypes = [c_char_p, c_char_p, c_char_p, POINTER(c_char_p), POINTER(c_double)]
        lib.fl_info_device_find.restype = c_void_p
        lib.fl_info_device_find.argtypes = [c_char_p]
        self.err = ctypes.create_string_buffer(1024)

    @staticmethod
    def _shape(shape):
        return (c_int64 * 4)(*shape), len(shape)

    def estimate(self, op, shape, params=None, dtype=None, device=None):
        dims, nd = self._shape(shape)
        res = ctypes.create_string_buffer(self.rsize)
        rc = self.lib.fl_info_estimate(op.encode(), dims, nd, (params or "").encode(),
                                       dtype.encode() if dtype else None, device.encode() if device else None,
                                       res, self.err, len(self.err))
        if rc:
            raise InfoError(self.err.value.decode())
        buf = ctypes.create_string_buffer(1 << 16)
        self.lib.fl_info_json(res, buf, len(buf))
        return json.loads(buf.value.decode())

    def coefs(self, op, variant, device):
        n = self.lib.fl_info_model_coefs(op.encode(), variant.encode(), device.encode(), None, None)
        if n < 0:
            raise InfoError(f"no model for {op}/{variant} on {device}")
        names = (c_char_p * n)()
        vals = (c_double * n)()
        self.lib.fl_info_model_coefs(op.encode(), variant.encode(), device.encode(), names, vals)
        return [x.decode() for x in names], list(vals)

    def model(self, op, variant, shape, params, dtype, device, coef):
        dims, nd = self._shape(shape)
        c = (c_double * len(coef))(*coef)
        out = c_double()
        rc = self.lib.fl_info_model_eval(op.encode(), variant.encode(), dims, nd, (params or "").encode(),
                                         dtype.encode() if dtype else None, device.encode(), c, len(coef),
                                         byref(out), self.err, len(self.err))
        if rc:
            raise InfoError(self.err.value.decode())
        return out.value

    def device_name(self, name):
        """Canonical table name of a device (an alias or a driver's name)."""
        p = self.lib.fl_info_device_find(name.encode())
        if not p:
            return None
        return ctypes.cast(p, POINTER(c_char_p))[0].decode()
