"""NumPy references of convolution and pooling, and the geometries the convolution tests use."""

import numpy as np


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def conv_ref(x, w, stride=1, padding=0, dilation=1, padding_mode="zeros"):
    """out[n, o, y, x] = sum_{c, i, j} w[o, c, i, j] x_padded[n, c, y s + i d, x s + j d], by loops."""
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, o, ho, wo))
    for y in range(ho):
        for xx in range(wo):
            for i in range(kh):
                for j in range(kw):
                    r, c = y * sh + i * dh - ph, xx * sw + j * dw - pw
                    if padding_mode == "circular":
                        r, c = r % h, c % wd
                    elif not (0 <= r < h and 0 <= c < wd):
                        continue
                    out[:, :, y, xx] += x[:, :, r, c] @ w[:, :, i, j].T
    return out


def avg_pool_ref(x, kernel, stride=None, padding=0):
    """Mean over windows of the zero-padded x, every window dividing by kh kw."""
    (kh, kw) = pair(kernel)
    (sh, sw) = pair(kernel if stride is None else stride)
    (ph, pw) = pair(padding)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho = (xp.shape[2] - kh) // sh + 1
    wo = (xp.shape[3] - kw) // sw + 1
    out = np.zeros(x.shape[:2] + (ho, wo))
    for y in range(ho):
        for xx in range(wo):
            out[:, :, y, xx] = xp[:, :, y * sh:y * sh + kh, xx * sw:xx * sw + kw].mean(axis=(2, 3))
    return out


GEOMETRIES = [
    dict(),
    dict(stride=2, padding=1),
    dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
    dict(padding=2, dilation=2, padding_mode="circular"),
    dict(stride=(1, 2), padding=(2, 1), padding_mode="circular"),
]
