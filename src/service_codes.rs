//! What to do about the PowerSync Service's error codes that a client can fix: the
//! hints [`Error::HttpStatus`](crate::Error::HttpStatus) adds to its message.
//!
//! Codes as listed in the service's reference,
//! <https://docs.powersync.com/debugging/error-codes>. Older services numbered a few
//! authentication errors differently; the hints are worded so that a mismatch still
//! points at the token.

/// The next step for a service error `code`, when livesync knows one.
pub(crate) fn hint(code: &str) -> Option<&'static str> {
    Some(match code {
        "PSYNC_S2101" => {
            "the service could not verify the token: it must be a JWT with `sub`, `iat` and \
             `exp` claims, signed with a key that the service's client auth config accepts \
             (a JWKS URI, or a shared HS256 key for development)"
        }
        "PSYNC_S2102" => {
            "the token's signature could not be verified: the `kid` in its header must name a \
             key of the service's client auth config (JWKS or HS256 key), and the token must be \
             signed with that key"
        }
        "PSYNC_S2103" => {
            "the token has expired: `fetch_credentials` must return a fresh token each time it \
             is called (set `Credentials::expires_at` so livesync fetches a new one before the \
             old one expires); also check the device's clock"
        }
        "PSYNC_S2104" => {
            "the token is valid for longer than the service allows: issue tokens with an \
             earlier `exp`"
        }
        "PSYNC_S2105" => {
            "the token's `aud` claim is not an audience of the service's client auth config: \
             issue tokens for this service (for PowerSync Cloud the audience is the instance \
             URL), or add the audience to the config"
        }
        "PSYNC_S2106" => {
            "no token reached the service: the connector returned an empty token, or a proxy \
             dropped the `Authorization` header"
        }
        "PSYNC_S2302" => {
            "the service has no sync config deployed yet (or is still processing it): deploy \
             one and check the service's logs"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authentication_codes_have_hints_and_unknown_codes_none() {
        for code in (2101..=2106).map(|n| format!("PSYNC_S{n}")) {
            assert!(hint(&code).is_some(), "{code}");
        }
        assert!(hint("PSYNC_S2001").is_none());
        assert!(hint("").is_none());
    }
}
