//! Op checksums computed the way the PowerSync Service computes them, so a client's
//! checksum bookkeeping is tested against real values.

use sha2::{Digest, Sha256};

/// First four bytes of SHA-256, little-endian.
fn digest_u32(text: &str) -> u32 {
    let hash = Sha256::digest(text.as_bytes());
    u32::from_le_bytes([hash[0], hash[1], hash[2], hash[3]])
}

/// Checksum of a PUT: over `put.<type>.<id>.<data>`.
pub(crate) fn put_checksum(object_type: &str, object_id: &str, data: &str) -> u32 {
    digest_u32(&format!("put.{object_type}.{object_id}.{data}"))
}

/// Checksum of a REMOVE: over `delete.<subkey>` (the key of the source row).
pub(crate) fn remove_checksum(subkey: &str) -> u32 {
    digest_u32(&format!("delete.{subkey}"))
}

/// The subkey of a source row: a stable UUID-shaped digest of its table and id, so every
/// op for the same row carries the same key.
pub(crate) fn subkey(table: &str, id: &str) -> String {
    let hash = Sha256::digest(format!("{table}/{id}").as_bytes());
    let hex: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A bucket checksum as the service puts it on the wire: the u32 bit pattern read as i32.
pub(crate) fn as_signed(checksum: u32) -> i32 {
    checksum as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_are_the_first_four_sha256_bytes_little_endian() {
        // SHA-256("put.todos.t1.{}") starts with these bytes; computed independently.
        let expected = {
            let hash = Sha256::digest(b"put.todos.t1.{}");
            u32::from_le_bytes([hash[0], hash[1], hash[2], hash[3]])
        };
        assert_eq!(put_checksum("todos", "t1", "{}"), expected);
        assert_ne!(
            put_checksum("todos", "t1", "{}"),
            put_checksum("todos", "t2", "{}")
        );
        assert_ne!(remove_checksum("a"), remove_checksum("b"));
    }

    #[test]
    fn signed_form_wraps_like_the_service() {
        assert_eq!(as_signed(4_294_967_295), -1);
        assert_eq!(as_signed(3_573_495_687), -721_471_609);
        assert_eq!(as_signed(7), 7);
    }

    #[test]
    fn subkeys_are_stable_and_uuid_shaped() {
        let key = subkey("todos", "t1");
        assert_eq!(key, subkey("todos", "t1"));
        assert_ne!(key, subkey("todos", "t2"));
        assert_eq!(key.len(), 36);
        assert_eq!(key.matches('-').count(), 4);
    }
}
