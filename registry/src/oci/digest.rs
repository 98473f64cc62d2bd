//! Content digests (`<algorithm>:<hex>`) and the hashers that compute them.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256, Sha512};

/// A validated content digest. Only the algorithms registered by the OCI
/// image spec are accepted, so the hex part has a known length and charset
/// and is safe to use in a storage key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    pub const ALL: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Sha512];
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    #[error("digest `{0}` is not of the form <algorithm>:<hex>")]
    Malformed(String),
    #[error("digest algorithm `{0}` is not supported (use sha256 or sha512)")]
    UnsupportedAlgorithm(String),
    #[error("digest `{0}` has an encoded part of the wrong length or with characters other than lowercase hex")]
    BadEncoding(String),
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (alg, hex) = s.split_once(':').ok_or_else(|| DigestError::Malformed(s.to_string()))?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            // The grammar allows other algorithms; a registry may refuse them.
            _ if !alg.is_empty()
                && alg.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b)) =>
            {
                return Err(DigestError::UnsupportedAlgorithm(alg.to_string()));
            }
            _ => return Err(DigestError::Malformed(s.to_string())),
        };
        if hex.len() != algorithm.hex_len() || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(DigestError::BadEncoding(s.to_string()));
        }
        Ok(Digest { algorithm, hex: hex.to_string() })
    }
}

impl Digest {
    pub fn algorithm(&self) -> &'static str {
        self.algorithm.as_str()
    }

    pub fn alg(&self) -> Algorithm {
        self.algorithm
    }

    /// A digest from the two parts of a storage key (`<alg>/.../<hex>`);
    /// `None` when `hex` is not a valid encoding for `algorithm`.
    pub fn from_parts(algorithm: Algorithm, hex: &str) -> Option<Digest> {
        let valid =
            hex.len() == algorithm.hex_len() && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        valid.then(|| Digest { algorithm, hex: hex.to_string() })
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The sha256 digest of `data`.
    pub fn sha256_of(data: &[u8]) -> Digest {
        Digest { algorithm: Algorithm::Sha256, hex: hex::encode(Sha256::digest(data)) }
    }

    /// The digest of `data` computed with this digest's algorithm.
    pub fn verify(&self, data: &[u8]) -> bool {
        let mut h = Hasher::new(self.algorithm);
        h.update(data);
        &h.finish() == self
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An incremental hasher for one of the supported algorithms.
#[derive(Clone)]
pub enum Hasher {
    Sha256(ResumableSha256),
    Sha512(Sha512),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(ResumableSha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The hash state as text, so another process can continue it (sha256 only).
    pub fn save(&self) -> Option<String> {
        match self {
            Hasher::Sha256(h) => Some(h.save()),
            Hasher::Sha512(_) => None,
        }
    }

    /// Continues a state written by [`Hasher::save`].
    pub fn restore(text: &str) -> Option<Hasher> {
        ResumableSha256::restore(text).map(Hasher::Sha256)
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finish())),
            Hasher::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }
}

/// SHA-256 whose state can be saved and continued elsewhere: an upload's
/// chunks may land on different replicas, and none of them should read the
/// bytes back to hash them. The block function is sha2's (with its CPU
/// extensions); only the 64-byte buffering and padding live here.
#[derive(Clone)]
pub struct ResumableSha256 {
    state: [u32; 8],
    /// Bytes hashed so far, including `buf`.
    len: u64,
    buf: [u8; 64],
    buf_len: usize,
}

const SHA256_IV: [u32; 8] =
    [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

impl Default for ResumableSha256 {
    fn default() -> Self {
        ResumableSha256::new()
    }
}

impl ResumableSha256 {
    pub fn new() -> Self {
        ResumableSha256 { state: SHA256_IV, len: 0, buf: [0; 64], buf_len: 0 }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.buf_len > 0 {
            let take = (64 - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len < 64 {
                return;
            }
            let block = self.buf;
            compress_blocks(&mut self.state, &block);
            self.buf_len = 0;
        }
        let whole = data.len() - data.len() % 64;
        compress_blocks(&mut self.state, &data[..whole]);
        let rest = &data[whole..];
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    pub fn finish(mut self) -> [u8; 32] {
        let bits = self.len.wrapping_mul(8);
        let mut tail = [0u8; 128];
        tail[..self.buf_len].copy_from_slice(&self.buf[..self.buf_len]);
        tail[self.buf_len] = 0x80;
        let total = if self.buf_len < 56 { 64 } else { 128 };
        tail[total - 8..total].copy_from_slice(&bits.to_be_bytes());
        compress_blocks(&mut self.state, &tail[..total]);
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    /// `sha256:<state words><length><buffer>` in hex.
    pub fn save(&self) -> String {
        let mut raw = Vec::with_capacity(32 + 8 + self.buf_len);
        for w in self.state {
            raw.extend_from_slice(&w.to_be_bytes());
        }
        raw.extend_from_slice(&self.len.to_be_bytes());
        raw.extend_from_slice(&self.buf[..self.buf_len]);
        format!("sha256:{}", hex::encode(raw))
    }

    pub fn restore(text: &str) -> Option<ResumableSha256> {
        let raw = hex::decode(text.strip_prefix("sha256:")?).ok()?;
        if raw.len() < 40 || raw.len() >= 40 + 64 {
            return None;
        }
        let mut h = ResumableSha256::new();
        for (i, w) in raw[..32].chunks_exact(4).enumerate() {
            h.state[i] = u32::from_be_bytes(w.try_into().ok()?);
        }
        h.len = u64::from_be_bytes(raw[32..40].try_into().ok()?);
        h.buf_len = raw.len() - 40;
        // The buffer must hold exactly the bytes past the last whole block.
        if (h.len % 64) as usize != h.buf_len {
            return None;
        }
        h.buf[..h.buf_len].copy_from_slice(&raw[40..]);
        Some(h)
    }
}

/// Runs the block function over whole 64-byte blocks.
fn compress_blocks(state: &mut [u32; 8], data: &[u8]) {
    use sha2::digest::generic_array::{GenericArray, typenum::U64};
    let blocks = data.len() / 64;
    // SAFETY: GenericArray<u8, U64> is a #[repr(transparent)] array of 64
    // bytes (alignment 1), so the first `blocks` * 64 bytes of `data` are
    // `blocks` of them. sha2 takes no plain byte slice, and copying every
    // block into an array first cost 2-3% of a cold mirror pull.
    let blocks = unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<GenericArray<u8, U64>>(), blocks) };
    sha2::compress256(state, blocks);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let ok = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(ok.parse::<Digest>().unwrap().to_string(), ok);
        assert_eq!(Digest::sha256_of(b"").to_string(), ok);
        for bad in [
            "",
            "sha256",
            "sha256:",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0",
            "sha256:../../../../etc/passwd0000000000000000000000000000000000000000",
            ":abc",
            "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad} should be refused");
        }
        assert!(matches!("md5:abc".parse::<Digest>(), Err(DigestError::UnsupportedAlgorithm(_))));
    }

    #[test]
    fn resumable_sha256_matches_sha2_across_saves() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + i / 3) as u8).collect();
        for cut in [0, 1, 55, 56, 63, 64, 65, 127, 128, 4096, 4097, 9999, 10_000] {
            let mut a = Hasher::new(Algorithm::Sha256);
            a.update(&data[..cut]);
            let mut b = Hasher::restore(&a.save().unwrap()).unwrap();
            for piece in data[cut..].chunks(333) {
                b.update(piece);
            }
            assert_eq!(b.finish().hex(), hex::encode(Sha256::digest(&data)), "cut at {cut}");
            let mut c = Hasher::new(Algorithm::Sha256);
            c.update(&data[..cut]);
            assert_eq!(c.finish().hex(), hex::encode(Sha256::digest(&data[..cut])), "prefix {cut}");
        }
        for bad in ["", "sha256:", "sha256:zz", "md5:00", &format!("sha256:{}", "00".repeat(41))] {
            assert!(Hasher::restore(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn hasher_matches_one_shot() {
        let mut h = Hasher::new(Algorithm::Sha256);
        h.update(b"hello ");
        h.update(b"world");
        assert_eq!(h.finish(), Digest::sha256_of(b"hello world"));
    }
}
