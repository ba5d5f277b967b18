//! Sealing session blobs: AES-256-GCM through libcrypto, with a key ring
//! for rotation.
//!
//! Blob layout: `"SC1"` | key id (4 bytes) | nonce (12) | ciphertext | tag (16).
//! The key id is the first four bytes of SHA-256 of the key, so a key file
//! is just keys, one per line (64 hex digits), newest first: the first
//! seals, all open.

use std::ffi::c_int;
use std::path::Path;

use openssl_sys as crypto;

unsafe extern "C" {
    /// libcrypto's memory wipe, which the compiler may not optimise away.
    fn OPENSSL_cleanse(ptr: *mut std::ffi::c_void, len: usize);
}

const MAGIC: &[u8; 3] = b"SC1";
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = MAGIC.len() + KEY_ID_LEN + NONCE_LEN;

/// Why a blob was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// Not a blob of ours (wrong magic, too short).
    Malformed,
    /// Sealed under a key we do not hold.
    UnknownKey,
    /// Authentication failed: tampered, or sealed for another session or
    /// session-ID context.
    Forged,
}

struct Key {
    id: [u8; KEY_ID_LEN],
    bytes: [u8; 32],
}

impl Drop for Key {
    fn drop(&mut self) {
        // SAFETY: cleanses our own 32-byte buffer.
        unsafe { OPENSSL_cleanse(self.bytes.as_mut_ptr().cast(), self.bytes.len()) };
    }
}

/// The keys blobs are sealed and opened with.
pub struct Keyring {
    keys: Vec<Key>,
}

impl Keyring {
    /// Reads a key file: one key per line, 64 hex digits; blank lines and
    /// lines starting with `#` are ignored.
    pub fn load(path: &Path) -> Result<Keyring, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
        Keyring::parse(&text).map_err(|e| format!("key file {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Keyring, String> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bytes = decode_hex_key(line)
                .ok_or_else(|| format!("line {} is not 64 hex digits", n + 1))?;
            let mut digest = [0u8; 32];
            // SAFETY: SHA-256 of our 32 bytes into a 32-byte buffer.
            unsafe { crypto::SHA256(bytes.as_ptr(), bytes.len(), digest.as_mut_ptr()) };
            let mut id = [0u8; KEY_ID_LEN];
            id.copy_from_slice(&digest[..KEY_ID_LEN]);
            keys.push(Key { id, bytes });
        }
        if keys.is_empty() {
            return Err("no key".into());
        }
        Ok(Keyring { keys })
    }

    /// Seals `plaintext` under the newest key, binding `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        let key = self.keys.first()?;
        let mut nonce = [0u8; NONCE_LEN];
        // SAFETY: fills our 12-byte buffer.
        if unsafe { crypto::RAND_bytes(nonce.as_mut_ptr(), NONCE_LEN as c_int) } != 1 {
            return None;
        }
        let mut blob = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        blob.extend_from_slice(MAGIC);
        blob.extend_from_slice(&key.id);
        blob.extend_from_slice(&nonce);
        let (ciphertext, tag) = gcm(Direction::Seal, &key.bytes, &nonce, aad, plaintext, None)?;
        blob.extend_from_slice(&ciphertext);
        blob.extend_from_slice(&tag);
        Some(blob)
    }

    /// Opens a blob sealed by [`Keyring::seal`] with the same `aad`.
    pub fn open(&self, blob: &[u8], aad: &[u8]) -> Result<Vec<u8>, Rejected> {
        if blob.len() < HEADER_LEN + TAG_LEN || &blob[..MAGIC.len()] != MAGIC {
            return Err(Rejected::Malformed);
        }
        let id = &blob[MAGIC.len()..MAGIC.len() + KEY_ID_LEN];
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or(Rejected::UnknownKey)?;
        let nonce = &blob[MAGIC.len() + KEY_ID_LEN..HEADER_LEN];
        let (ciphertext, tag) = blob[HEADER_LEN..].split_at(blob.len() - HEADER_LEN - TAG_LEN);
        gcm(
            Direction::Open,
            &key.bytes,
            nonce,
            aad,
            ciphertext,
            Some(tag),
        )
        .map(|(plain, _)| plain)
        .ok_or(Rejected::Forged)
    }
}

fn decode_hex_key(line: &str) -> Option<[u8; 32]> {
    let digits = line.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in digits.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Seal,
    Open,
}

/// One AES-256-GCM operation. Sealing returns (ciphertext, tag); opening
/// checks `tag` and returns (plaintext, empty), or `None` if it fails.
fn gcm(
    direction: Direction,
    key: &[u8; 32],
    nonce: &[u8],
    aad: &[u8],
    input: &[u8],
    tag: Option<&[u8]>,
) -> Option<(Vec<u8>, Vec<u8>)> {
    let aad_len = c_int::try_from(aad.len()).ok()?;
    let input_len = c_int::try_from(input.len()).ok()?;
    // SAFETY: a fresh cipher context, freed by the guard below.
    let ctx = unsafe { crypto::EVP_CIPHER_CTX_new() };
    if ctx.is_null() {
        return None;
    }
    struct Guard(*mut crypto::EVP_CIPHER_CTX);
    impl Drop for Guard {
        fn drop(&mut self) {
            // SAFETY: the context created above, freed once.
            unsafe { crypto::EVP_CIPHER_CTX_free(self.0) }
        }
    }
    let _guard = Guard(ctx);
    let mut output = vec![0u8; input.len() + 16];
    let mut n: c_int = 0;
    let mut total: c_int = 0;
    let seal = direction == Direction::Seal;
    // SAFETY: every buffer passed below is ours and large enough: GCM output
    // is never longer than its input, AAD updates write nothing, the tag is
    // 16 bytes. The nonce is 12 bytes, GCM's default IV length.
    unsafe {
        let cipher = crypto::EVP_aes_256_gcm();
        let init = if seal {
            crypto::EVP_EncryptInit_ex(
                ctx,
                cipher,
                std::ptr::null_mut(),
                key.as_ptr(),
                nonce.as_ptr(),
            )
        } else {
            crypto::EVP_DecryptInit_ex(
                ctx,
                cipher,
                std::ptr::null_mut(),
                key.as_ptr(),
                nonce.as_ptr(),
            )
        };
        if init != 1 || nonce.len() != NONCE_LEN {
            return None;
        }
        let update = if seal {
            crypto::EVP_EncryptUpdate
        } else {
            crypto::EVP_DecryptUpdate
        };
        if update(ctx, std::ptr::null_mut(), &mut n, aad.as_ptr(), aad_len) != 1 {
            return None;
        }
        if update(ctx, output.as_mut_ptr(), &mut n, input.as_ptr(), input_len) != 1 {
            return None;
        }
        total += n;
        if seal {
            if crypto::EVP_EncryptFinal_ex(ctx, output.as_mut_ptr().add(total as usize), &mut n)
                != 1
            {
                return None;
            }
            total += n;
            let mut tag_out = vec![0u8; TAG_LEN];
            if crypto::EVP_CIPHER_CTX_ctrl(
                ctx,
                crypto::EVP_CTRL_GCM_GET_TAG,
                TAG_LEN as c_int,
                tag_out.as_mut_ptr().cast(),
            ) != 1
            {
                return None;
            }
            output.truncate(total as usize);
            Some((output, tag_out))
        } else {
            let tag = tag?;
            if tag.len() != TAG_LEN {
                return None;
            }
            let mut tag_copy = [0u8; TAG_LEN];
            tag_copy.copy_from_slice(tag);
            if crypto::EVP_CIPHER_CTX_ctrl(
                ctx,
                crypto::EVP_CTRL_GCM_SET_TAG,
                TAG_LEN as c_int,
                tag_copy.as_mut_ptr().cast(),
            ) != 1
            {
                return None;
            }
            if crypto::EVP_DecryptFinal_ex(ctx, output.as_mut_ptr().add(total as usize), &mut n)
                != 1
            {
                return None; // authentication failed
            }
            total += n;
            output.truncate(total as usize);
            Some((output, Vec::new()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const K2: &str = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f";

    #[test]
    fn round_trip_and_aad_binding() {
        let ring = Keyring::parse(K1).unwrap();
        let blob = ring.seal(b"session der", b"id+ctx").unwrap();
        assert_eq!(ring.open(&blob, b"id+ctx").unwrap(), b"session der");
        assert_eq!(ring.open(&blob, b"id+other"), Err(Rejected::Forged));
    }

    #[test]
    fn every_flipped_byte_is_rejected() {
        let ring = Keyring::parse(K1).unwrap();
        let blob = ring.seal(b"0123456789", b"a").unwrap();
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 0x01;
            assert!(ring.open(&bad, b"a").is_err(), "byte {i}");
        }
        assert_eq!(
            ring.open(&blob[..blob.len() - 1], b"a"),
            Err(Rejected::Forged)
        );
        assert_eq!(ring.open(b"SC1", b"a"), Err(Rejected::Malformed));
        assert_eq!(
            ring.open(b"random bytes that are long enough to pass", b"a"),
            Err(Rejected::Malformed)
        );
    }

    #[test]
    fn rotation_reads_old_keys_and_refuses_unknown_ones() {
        let old = Keyring::parse(K1).unwrap();
        let rotated = Keyring::parse(&format!("{K2}\n# previous\n{K1}\n")).unwrap();
        let other = Keyring::parse(K2).unwrap();
        let blob = old.seal(b"x", b"").unwrap();
        assert_eq!(rotated.open(&blob, b"").unwrap(), b"x");
        assert_eq!(other.open(&blob, b""), Err(Rejected::UnknownKey));
        let new_blob = rotated.seal(b"y", b"").unwrap();
        assert_eq!(
            other.open(&new_blob, b"").unwrap(),
            b"y",
            "the first key seals"
        );
    }

    #[test]
    fn bad_key_files_are_refused() {
        assert!(Keyring::parse("").is_err());
        assert!(Keyring::parse("abc").is_err());
        assert!(Keyring::parse(&"zz".repeat(32)).is_err());
    }
}
