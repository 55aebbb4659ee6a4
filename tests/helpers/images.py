"""Image files the loading tests need and cannot find on disk."""
import zlib
from functools import lru_cache


@lru_cache(maxsize=1)
def huge_png(side=16000):
    """A valid 8-bit grey PNG of side x side zeros: 249 KB, 768 MB once decoded as BGR."""
    def chunk(kind, data):
        return (len(data).to_bytes(4, 'big') + kind + data +
                zlib.crc32(kind + data).to_bytes(4, 'big'))
    packer, row = zlib.compressobj(9), bytes(side + 1)  # filter byte + pixels
    pixels = b''.join([packer.compress(row) for _ in range(side)] + [packer.flush()])
    header = side.to_bytes(4, 'big') * 2 + bytes([8, 0, 0, 0, 0])
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IDAT', pixels) +
            chunk(b'IEND', b''))
