"""Does a file need a password to open? Header flags of Word and Excel 97–2003 files and the
PDF security handler, with a check of the passwords a reader tries by itself (Excel's default
"VelvetSweatshop", a PDF's empty user password), so a file that opens without asking is not
called locked. Pure: the bytes in, a bool out; nothing is decrypted beyond the verifier."""

from __future__ import annotations

import hashlib
import re
import struct

FILEPASS, BOF_TYPES = 0x002F, (0x0809, 0x0409, 0x0209, 0x0009)
EXCEL_DEFAULT_PASSWORD = "VelvetSweatshop"


def word_encrypted(fib: bytes) -> bool:
    """fEncrypted, bit 0 of the FIB's byte 0x0B (MS-DOC 2.5.2); fObfuscated needs it set too."""
    return len(fib) > 0x0B and fib[:2] == b"\xec\xa5" and bool(fib[0x0B] & 0x01)


def excel_needs_password(stream: bytes) -> bool:
    """A FILEPASS record after the first BOF, unless Excel's default password opens it."""
    pos, seen_bof = 0, False
    for _ in range(64):  # FILEPASS follows the globals' BOF directly (MS-XLS 2.4.117)
        if pos + 4 > len(stream):
            return False
        rtype, size = struct.unpack_from("<HH", stream, pos)
        body = stream[pos + 4:pos + 4 + size]
        if rtype == FILEPASS:
            return not _excel_default_password(body)
        if rtype in BOF_TYPES:
            if seen_bof:
                return False
            seen_bof = True
        elif rtype in (0x0085, 0x000A):  # BoundSheet8 or EOF: past where FILEPASS would be
            return False
        pos += 4 + size
    return False


def _excel_default_password(body: bytes) -> bool:
    """Verify "VelvetSweatshop" against the FILEPASS verifier (MS-OFFCRYPTO 2.3.6, 2.3.5, 2.3.7)."""
    try:
        kind = struct.unpack_from("<H", body)[0]
        if kind == 0:  # XOR obfuscation: key, verifier
            return struct.unpack_from("<H", body, 4)[0] == _xor_verifier(EXCEL_DEFAULT_PASSWORD)
        major, minor = struct.unpack_from("<HH", body, 2)
        if (major, minor) == (1, 1):
            return _rc4_binary_ok(body[6:22], body[22:38], body[38:54], EXCEL_DEFAULT_PASSWORD)
        if minor == 2 and major in (2, 3, 4):
            return _rc4_cryptoapi_ok(body[6:], EXCEL_DEFAULT_PASSWORD)
    except (struct.error, IndexError, ValueError):
        pass
    return False


def _xor_verifier(password: str) -> int:
    verifier = 0
    for byte in reversed([len(password), *password.encode("latin-1")]):
        verifier = (((verifier >> 14) & 1) | ((verifier << 1) & 0x7FFF)) ^ byte
    return verifier ^ 0xCE4B


def _rc4_binary_ok(salt: bytes, verifier: bytes, verifier_hash: bytes, password: str) -> bool:
    h0 = hashlib.md5(password.encode("utf-16-le")).digest()
    h1 = hashlib.md5((h0[:5] + salt) * 16).digest()
    key = hashlib.md5(h1[:5] + b"\x00\x00\x00\x00").digest()
    plain = rc4(key, verifier + verifier_hash)
    return hashlib.md5(plain[:16]).digest() == plain[16:32]


def _rc4_cryptoapi_ok(info: bytes, password: str) -> bool:
    header_size = struct.unpack_from("<I", info, 4)[0]
    key_bits = struct.unpack_from("<I", info, 8 + 16)[0] or 40
    verifier = info[8 + header_size:]
    salt_size = struct.unpack_from("<I", verifier)[0]
    salt = verifier[4:4 + salt_size]
    encrypted = verifier[4 + salt_size:4 + salt_size + 16]
    hash_size = struct.unpack_from("<I", verifier, 4 + salt_size + 16)[0]
    encrypted_hash = verifier[8 + salt_size + 16:8 + salt_size + 16 + hash_size]
    h0 = hashlib.sha1(salt + password.encode("utf-16-le")).digest()
    key = hashlib.sha1(h0 + b"\x00\x00\x00\x00").digest()[:key_bits // 8]
    if key_bits == 40:
        key += bytes(11)
    plain = rc4(key, encrypted + encrypted_hash)
    return hashlib.sha1(plain[:16]).digest() == plain[16:16 + hash_size]


def rc4(key: bytes, data: bytes) -> bytes:
    """RC4, only ever over a few dozen bytes of verifier."""
    s, j = list(range(256)), 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) & 0xFF
        s[i], s[j] = s[j], s[i]
    out, i, j = bytearray(), 0, 0
    for byte in data:
        i = (i + 1) & 0xFF
        j = (j + s[i]) & 0xFF
        s[i], s[j] = s[j], s[i]
        out.append(byte ^ s[(s[i] + s[j]) & 0xFF])
    return bytes(out)


# ---- PDF ---------------------------------------------------------------------------------------

_ENCRYPT = re.compile(rb"/Encrypt\s*(?:(\d+)\s+(\d+)\s+R|(<<))")
_ID = re.compile(rb"/ID\s*\[\s*")
PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")


def pdf_needs_password(data: bytes) -> bool:
    """An /Encrypt dictionary whose user password is not empty (a permissions-only PDF opens)."""
    # Only in a trailer (or cross-reference stream) dictionary, which always names its /Root.
    matches = [m for m in _ENCRYPT.finditer(data) if b"/Root" in data[max(0, m.start() - 2048):m.end() + 2048]]
    if not matches:
        return False
    last = matches[-1]
    if last.group(3):
        start = last.start(3)
    else:
        objs = list(re.finditer(rb"(?<![\d])%s\s+%s\s+obj\s*" % (last.group(1), last.group(2)), data))
        if not objs:
            return False  # "/Encrypt" in text, not a trailer: nothing to go on
        start = objs[-1].end()
    try:
        params = PdfLexer(data, start).value()
    except (ValueError, IndexError):
        return True  # an encryption dictionary we cannot read: assume it locks
    if not isinstance(params, dict):
        return False
    if params.get("Filter") != "/Standard":
        return True  # certificate security (Adobe.PubSec …): needs the recipient's key
    try:
        return not _empty_user_password_opens(params, _first_id(data))
    except (TypeError, ValueError, struct.error):  # malformed entries: as unreadable as above
        return True


def _first_id(data: bytes) -> bytes:
    ids = list(_ID.finditer(data))
    if not ids:
        return b""
    try:
        value = PdfLexer(data, ids[-1].end()).value()
    except (ValueError, IndexError):
        return b""
    return value if isinstance(value, bytes) else b""


def _empty_user_password_opens(p: dict, doc_id: bytes) -> bool:
    revision = p.get("R", 0)
    owner, user = p.get("O", b""), p.get("U", b"")
    if not isinstance(owner, bytes) or not isinstance(user, bytes):
        return False
    if revision in (5, 6):
        digest = _r6_hash(b"", user[32:40], revision)
        return digest is None or digest == user[:32]
    perms = struct.pack("<I", int(p.get("P", 0)) & 0xFFFFFFFF)
    metadata = b"" if revision < 4 or p.get("EncryptMetadata", True) else b"\xff" * 4
    base = hashlib.md5(PAD + owner[:32] + perms + doc_id + metadata).digest()
    bits = p.get("Length", 40)
    for n in sorted({5, 16, max(5, min(16, int(bits) // 8 if isinstance(bits, int) else 5))}):
        key = base[:n]
        if revision >= 3:
            for _ in range(50):
                key = hashlib.md5(key).digest()[:n]
        if _user_entry(key, revision, doc_id) == user[:16 if revision >= 3 else 32]:
            return True
    return False


def _user_entry(key: bytes, revision: int, doc_id: bytes) -> bytes:
    if revision == 2:
        return rc4(key, PAD)
    value = rc4(key, hashlib.md5(PAD + doc_id).digest())
    for i in range(1, 20):
        value = rc4(bytes(b ^ i for b in key), value)
    return value


def _r6_hash(password: bytes, salt: bytes, revision: int) -> bytes | None:
    """ISO 32000-2 algorithm 2.B (R6) or plain SHA-256 (R5) of the password and validation salt."""
    k = hashlib.sha256(password + salt).digest()
    if revision == 5:
        return k
    try:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    except ImportError:  # without AES we cannot tell: None, and the caller does not cry wolf
        return None
    i = 0
    while True:
        k1 = (password + k) * 64
        enc = Cipher(algorithms.AES(k[:16]), modes.CBC(k[16:32])).encryptor()
        e = enc.update(k1) + enc.finalize()
        k = (hashlib.sha256, hashlib.sha384, hashlib.sha512)[sum(e[:16]) % 3](e).digest()
        i += 1
        if i >= 64 and e[-1] <= i - 32:
            return k[:32]


class PdfLexer:
    """Just enough of PDF's object syntax for an encryption dictionary and the /ID array."""

    DELIM = b"()<>[]{}/%"

    def __init__(self, data: bytes, pos: int):
        self.data, self.pos = data, pos

    def value(self, depth: int = 0):
        if depth > 8:
            raise ValueError("nesting")
        self._skip()
        d, p = self.data, self.pos
        if d.startswith(b"<<", p):
            return self._dict(depth)
        if d[p:p + 1] == b"<":
            end = d.index(b">", p)
            self.pos = end + 1
            hexdigits = re.sub(rb"\s", b"", d[p + 1:end])
            return bytes.fromhex((hexdigits + b"0" * (len(hexdigits) % 2)).decode("ascii"))
        if d[p:p + 1] == b"(":
            return self._string()
        if d[p:p + 1] == b"[":
            self.pos += 1
            items = []
            while self._skip() or self.data[self.pos:self.pos + 1] != b"]":
                items.append(self.value(depth + 1))
            self.pos += 1
            return items
        return self._token()

    def _skip(self) -> None:
        while self.pos < len(self.data) and self.data[self.pos] in b" \t\r\n\x0c\x00":
            self.pos += 1
        if self.pos >= len(self.data):
            raise ValueError("end of data")

    def _dict(self, depth: int) -> dict:
        self.pos += 2
        out = {}
        while True:
            self._skip()
            if self.data.startswith(b">>", self.pos):
                self.pos += 2
                return out
            key = self._token()
            if not isinstance(key, str) or not key.startswith("/"):
                raise ValueError("dictionary key")
            out[key[1:]] = self.value(depth + 1)

    def _token(self):
        start = self.pos
        self.pos += 1  # a name's slash, or the first character
        while self.pos < len(self.data) and self.data[self.pos] not in b" \t\r\n\x0c\x00" + self.DELIM:
            self.pos += 1
        word = self.data[start:self.pos].decode("latin-1")
        if re.fullmatch(r"[+-]?\d+", word):
            return self._maybe_ref(int(word))
        return {"true": True, "false": False}.get(word, word)

    def _maybe_ref(self, number: int):
        match = re.compile(rb"\s+(\d+)\s+R(?![A-Za-z])").match(self.data, self.pos)
        if match:
            self.pos = match.end()
            return ("ref", number, int(match.group(1)))
        return number

    def _string(self) -> bytes:
        out, depth, d = bytearray(), 0, self.data
        self.pos += 1
        while True:
            c = d[self.pos]
            self.pos += 1
            if c == 0x5C:  # backslash
                nxt = d[self.pos]
                self.pos += 1
                if 0x30 <= nxt <= 0x37:
                    digits = bytes([nxt])
                    while len(digits) < 3 and 0x30 <= d[self.pos] <= 0x37:
                        digits += d[self.pos:self.pos + 1]
                        self.pos += 1
                    out.append(int(digits, 8) & 0xFF)
                elif nxt in b"\r\n":
                    if nxt == 0x0D and d[self.pos:self.pos + 1] == b"\n":
                        self.pos += 1
                else:
                    out += {0x6E: b"\n", 0x72: b"\r", 0x74: b"\t", 0x62: b"\b", 0x66: b"\f"}.get(nxt, bytes([nxt]))
            elif c == 0x28:
                depth += 1
                out.append(c)
            elif c == 0x29:
                if depth == 0:
                    return bytes(out)
                depth -= 1
                out.append(c)
            else:
                out.append(c)
