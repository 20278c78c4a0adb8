//! General-purpose SQL functions registered on every connection (writer and readers):
//! `uuid()`, as PowerSync's docs use it (`INSERT INTO todos(id, …) VALUES (uuid(), …)`),
//! and `livesync_in_sync_apply()` (see `in_sync_apply.rs`).

use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;

/// Registers the functions on `conn`.
pub(super) fn register(conn: &Connection) -> rusqlite::Result<()> {
    // Not deterministic (every call is a new id, so SQLite never reuses a result), and
    // innocuous, so views, triggers and DEFAULT clauses may call it.
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_INNOCUOUS;
    conn.create_scalar_function("uuid", 0, flags, |_| {
        new_uuid_v4().map_err(|e| rusqlite::Error::UserFunctionError(e.into()))
    })?;
    super::in_sync_apply::register(conn)
}

/// Fills `bytes` from the operating system's CSPRNG (ring's, through rustls).
#[cfg(not(target_arch = "wasm32"))]
fn fill_random(bytes: &mut [u8]) -> Result<(), &'static str> {
    static RANDOM: std::sync::OnceLock<&'static dyn rustls::crypto::SecureRandom> =
        std::sync::OnceLock::new();
    let random = RANDOM.get_or_init(|| rustls::crypto::ring::default_provider().secure_random);
    random
        .fill(bytes)
        .map_err(|_| "uuid(): the operating system's random number generator failed")
}

/// Fills `bytes` from the browser's `crypto.getRandomValues` (rustls is native-only).
#[cfg(target_arch = "wasm32")]
fn fill_random(bytes: &mut [u8]) -> Result<(), &'static str> {
    getrandom::getrandom(bytes).map_err(|_| "uuid(): the browser's crypto.getRandomValues failed")
}

/// A random version-4 UUID as lowercase text (`xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx`).
///
/// The 122 random bits come from the operating system's CSPRNG, through the `ring`
/// provider that rustls (already a dependency, for sync requests) carries: `getrandom`
/// on Linux, `SecRandomCopyBytes` on Apple platforms, `ProcessPrng` on Windows. So the ids
/// are unpredictable and unique across processes and devices, with no dependency of
/// their own.
fn new_uuid_v4() -> Result<String, &'static str> {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes)?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(36);
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        text.push(HEX[usize::from(byte >> 4)] as char);
        text.push(HEX[usize::from(byte & 0x0f)] as char);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4_lowercase_and_differ() {
        let a = new_uuid_v4().unwrap();
        let b = new_uuid_v4().unwrap();
        assert_ne!(a, b);
        for id in [&a, &b] {
            assert_eq!(id.len(), 36);
            assert_eq!(id.as_bytes()[14], b'4', "{id}");
            assert!(b"89ab".contains(&id.as_bytes()[19]), "{id}");
            assert!(
                id.chars()
                    .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)),
                "{id}"
            );
        }
    }
}
