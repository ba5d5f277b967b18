//! Sealing session blobs: AES-256-GCM through libcrypto, with a key ring
//! for rotation.
//!
//! Blob layout: `"SC1"` | key id (4 bytes) | nonce (12) | ciphertext | tag (16).
//! The key id is the first four bytes of SHA-256 of the key, so a key file
//! is just keys, one per line (64 hex digits), newest first: the first
//! seals, all open.

use std::ffi::c_int;
use std::path::Path;

use crate::libssl::sys as crypto;
// libcrypto's memory wipe, which the compiler may not optimise away.
use crypto::OPENSSL_cleanse;

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

#[derive(Clone, Copy)]
struct Key {
    id: [u8; KEY_ID_LEN],
    bytes: [u8; 32],
}

/// Keys in memory of their own: page-aligned, locked when the system
/// allows it (a forked child's copy is not locked), excluded from core
/// dumps, and wiped before it is unmapped. A forked child inherits it.
struct LockedKeys {
    base: std::ptr::NonNull<Key>,
    len: usize,
    map_len: usize,
}

// SAFETY: the mapping is owned by this value alone and only read after
// construction.
unsafe impl Send for LockedKeys {}
// SAFETY: as above; shared references only read.
unsafe impl Sync for LockedKeys {}

impl LockedKeys {
    fn new(keys: &[Key]) -> Result<LockedKeys, String> {
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .ok()
            .filter(|&p| p > 0)
            .unwrap_or(4096);
        let bytes = std::mem::size_of_val(keys).max(1);
        let map_len = bytes.div_ceil(page) * page;
        // SAFETY: a fresh private anonymous mapping; no existing memory is
        // touched.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err("cannot map memory for the keys".into());
        }
        // SAFETY: advice and locking on the mapping made above; both are
        // best effort (a failure only means weaker protection).
        unsafe {
            libc::madvise(base, map_len, libc::MADV_DONTDUMP);
            libc::mlock(base, map_len);
        }
        let base = std::ptr::NonNull::new(base.cast::<Key>()).expect("mmap never returns NULL");
        // SAFETY: the mapping is page-aligned (so aligned for Key) and
        // holds at least `keys.len()` keys.
        unsafe { std::ptr::copy_nonoverlapping(keys.as_ptr(), base.as_ptr(), keys.len()) };
        Ok(LockedKeys {
            base,
            len: keys.len(),
            map_len,
        })
    }

    fn keys(&self) -> &[Key] {
        // SAFETY: `len` keys were written at `base` in `new`; the mapping
        // lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr(), self.len) }
    }
}

impl Drop for LockedKeys {
    fn drop(&mut self) {
        // SAFETY: wipes, unlocks and unmaps the mapping made in `new`, once.
        unsafe {
            OPENSSL_cleanse(self.base.as_ptr().cast(), self.map_len);
            libc::munlock(self.base.as_ptr().cast(), self.map_len);
            libc::munmap(self.base.as_ptr().cast(), self.map_len);
        }
    }
}

/// Keys in ordinary memory while a key file is parsed, wiped when dropped.
struct KeyList(Vec<Key>);

impl Drop for KeyList {
    fn drop(&mut self) {
        let bytes = std::mem::size_of_val(self.0.as_slice());
        // SAFETY: cleanses the vector's own initialised elements.
        unsafe { OPENSSL_cleanse(self.0.as_mut_ptr().cast(), bytes) };
    }
}

/// Wipes a file's bytes held in ordinary memory while they are parsed.
struct Wiped<T: AsMut<[u8]>>(T);

impl<T: AsMut<[u8]>> Drop for Wiped<T> {
    fn drop(&mut self) {
        let bytes = self.0.as_mut();
        // SAFETY: cleanses our own buffer.
        unsafe { OPENSSL_cleanse(bytes.as_mut_ptr().cast(), bytes.len()) };
    }
}

/// The longest key file or CA file read.
pub const MAX_FILE_LEN: usize = 1 << 20;

/// A file read at once, in full, as it is when read: its bytes and its
/// permission bits. Refuses what is not a regular file or is longer than
/// [`MAX_FILE_LEN`].
pub fn read_file(path: &Path) -> Result<(Vec<u8>, u32), String> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let what = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    // O_NONBLOCK: opening a FIFO planted at the path does not hang.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(what)?;
    let meta = file.metadata().map_err(what)?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    let len = usize::try_from(meta.len()).unwrap_or(usize::MAX);
    if len > MAX_FILE_LEN {
        return Err(format!(
            "{} is larger than {MAX_FILE_LEN} bytes",
            path.display()
        ));
    }
    // Sized once, so that no reallocation leaves a copy behind.
    let mut bytes = Vec::with_capacity(len + 1);
    (&mut file)
        .take(len as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(what)?;
    if bytes.len() > len {
        return Err(format!("{} grew while it was read", path.display()));
    }
    Ok((bytes, meta.mode() & 0o7777))
}

/// The keys blobs are sealed and opened with.
pub struct Keyring {
    keys: LockedKeys,
}

impl Keyring {
    /// Reads a key file: one key per line, 64 hex digits; blank lines and
    /// lines starting with `#` are ignored. Also returns the file's
    /// permission bits.
    pub fn load(path: &Path) -> Result<(Keyring, u32), String> {
        let (bytes, mode) = read_file(path)?;
        let bytes = Wiped(bytes);
        let text = std::str::from_utf8(&bytes.0)
            .map_err(|_| format!("key file {}: not text", path.display()))?;
        let ring = Keyring::parse(text).map_err(|e| format!("key file {}: {e}", path.display()))?;
        Ok((ring, mode))
    }

    pub fn parse(text: &str) -> Result<Keyring, String> {
        let lines = || {
            text.lines()
                .enumerate()
                .map(|(n, line)| (n, line.trim()))
                .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        };
        // Sized once, so that no reallocation leaves a copy of a key behind.
        let mut keys = KeyList(Vec::with_capacity(lines().count()));
        for (n, line) in lines() {
            let mut key = Key {
                id: [0; KEY_ID_LEN],
                bytes: [0; 32],
            };
            if !decode_hex_key(line, &mut key.bytes) {
                return Err(format!("line {} is not 64 hex digits", n + 1));
            }
            let mut digest = [0u8; 32];
            // SAFETY: SHA-256 of our 32 bytes into a 32-byte buffer.
            unsafe { crypto::SHA256(key.bytes.as_ptr(), key.bytes.len(), digest.as_mut_ptr()) };
            key.id.copy_from_slice(&digest[..KEY_ID_LEN]);
            keys.0.push(key);
        }
        if keys.0.is_empty() {
            return Err("no key".into());
        }
        Ok(Keyring {
            keys: LockedKeys::new(&keys.0)?,
        })
    }

    /// Seals `plaintext` under the newest key, binding `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        let key = self.keys.keys().first()?;
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
            .keys()
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

/// Decodes 64 hex digits into `out`; false (with `out` partly written) if
/// the line is anything else.
fn decode_hex_key(line: &str, out: &mut [u8; 32]) -> bool {
    let digits = line.as_bytes();
    if digits.len() != 64 {
        return false;
    }
    for (i, pair) in digits.chunks(2).enumerate() {
        let Some(byte) = std::str::from_utf8(pair)
            .ok()
            .and_then(|t| u8::from_str_radix(t, 16).ok())
        else {
            return false;
        };
        out[i] = byte;
    }
    true
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

    #[test]
    fn key_files_are_read_with_their_mode_and_refused_when_not_regular() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("sesscache-seal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys");
        std::fs::write(&path, format!("# newest first\n{K2}\n{K1}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let (ring, mode) = Keyring::load(&path).unwrap();
        assert_eq!(mode, 0o640);
        let blob = Keyring::parse(K1).unwrap().seal(b"z", b"").unwrap();
        assert_eq!(ring.open(&blob, b"").unwrap(), b"z", "every key opens");
        let err = Keyring::load(&dir).err().unwrap();
        assert!(err.contains("not a regular file"), "{err}");
        let err = Keyring::load(&dir.join("missing")).err().unwrap();
        assert!(err.contains("cannot read"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn many_keys_span_pages() {
        let text: String = (0..300).map(|i| format!("{i:064x}\n")).collect();
        let ring = Keyring::parse(&text).unwrap();
        assert_eq!(ring.keys.keys().len(), 300);
        let last = Keyring::parse(&format!("{:064x}", 299)).unwrap();
        let blob = last.seal(b"p", b"").unwrap();
        assert_eq!(ring.open(&blob, b"").unwrap(), b"p");
    }
}
