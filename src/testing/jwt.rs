//! HS256 JSON Web Tokens: minting test tokens and checking them the way the PowerSync
//! Service does (`kid`, signature, `sub`, `aud`, `iat`, `exp`, maximum lifetime).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a token was refused, as the service reports it (HTTP 401).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthError {
    pub(crate) code: &'static str,
    pub(crate) description: String,
}

impl AuthError {
    fn new(code: &'static str, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }
}

/// The claims the service uses after a token was accepted.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedToken {
    pub(crate) user_id: String,
    pub(crate) expires_at: i64,
    /// The `parameters` claim (token parameters for bucket rules), `{}` when absent.
    pub(crate) parameters: Map<String, Value>,
    /// livesync's own `generation` claim, used by `expire_tokens`.
    pub(crate) generation: Option<u64>,
}

/// Signing key and the checks applied to incoming tokens.
#[derive(Debug, Clone)]
pub(crate) struct TokenKey {
    pub(crate) secret: Vec<u8>,
    pub(crate) kid: String,
    pub(crate) audience: String,
    pub(crate) max_lifetime_secs: i64,
}

impl TokenKey {
    /// Signs `claims` (which must be an object) with this key.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = URL_SAFE_NO_PAD.encode(self.mac(&signing_input).finalize().into_bytes());
        format!("{signing_input}.{signature}")
    }

    fn mac(&self, signing_input: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key size");
        mac.update(signing_input.as_bytes());
        mac
    }

    /// Checks a token at Unix time `now`.
    pub(crate) fn verify(&self, token: &str, now: i64) -> Result<VerifiedToken, AuthError> {
        let bad =
            |what: &str| AuthError::new("PSYNC_S2101", format!("Could not verify token: {what}"));
        let Some((signing_input, signature)) = token.rsplit_once('.') else {
            return Err(bad("not a JWT (expected three dot-separated parts)"));
        };
        let Some((header, claims)) = signing_input
            .split_once('.')
            .filter(|(_, claims)| !claims.contains('.'))
        else {
            return Err(bad("not a JWT (expected three dot-separated parts)"));
        };
        let header: Value = decode_json(header).ok_or_else(|| bad("unreadable header"))?;
        if header["alg"] != "HS256" {
            return Err(bad("unsupported algorithm (only HS256 is configured)"));
        }
        // As the current service: a key the keystore lacks, or a signature that does not
        // match the key, is PSYNC_S2102.
        let unverified = |what: &str| {
            AuthError::new(
                "PSYNC_S2102",
                format!("Could not verify token signature: {what}"),
            )
        };
        if header["kid"] != self.kid.as_str() {
            return Err(unverified("no key in the keystore matches the token's kid"));
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| bad("signature is not base64url"))?;
        self.mac(signing_input)
            .verify_slice(&signature)
            .map_err(|_| unverified("the signature does not match the key"))?;

        let claims: Value = decode_json(claims).ok_or_else(|| bad("unreadable claims"))?;
        let user_id = match claims.get("sub").and_then(Value::as_str) {
            Some(sub) if !sub.is_empty() => sub.to_owned(),
            _ => {
                return Err(AuthError::new(
                    "PSYNC_S2101",
                    "JWT payload is missing a sub claim",
                ));
            }
        };
        let audience_ok = match &claims["aud"] {
            Value::String(aud) => *aud == self.audience,
            Value::Array(auds) => auds.iter().any(|a| *a == self.audience.as_str()),
            _ => false,
        };
        if !audience_ok {
            return Err(AuthError::new(
                "PSYNC_S2105",
                format!(
                    "Unexpected \"aud\" claim value: expected {:?}",
                    self.audience
                ),
            ));
        }
        let (Some(issued_at), Some(expires_at)) = (claims["iat"].as_i64(), claims["exp"].as_i64())
        else {
            return Err(AuthError::new(
                "PSYNC_S2101",
                "JWT payload needs numeric iat and exp claims",
            ));
        };
        if expires_at <= now {
            return Err(AuthError::new("PSYNC_S2103", "JWT has expired"));
        }
        if expires_at - issued_at > self.max_lifetime_secs {
            return Err(AuthError::new(
                "PSYNC_S2104",
                format!(
                    "Token must expire in a maximum of {} seconds",
                    self.max_lifetime_secs
                ),
            ));
        }
        let parameters = match claims.get("parameters") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map.clone(),
            Some(_) => {
                return Err(AuthError::new(
                    "PSYNC_S2101",
                    "parameters claim must be an object",
                ));
            }
        };
        Ok(VerifiedToken {
            user_id,
            expires_at,
            parameters,
            generation: claims["livesync_generation"].as_u64(),
        })
    }
}

fn decode_json(part: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TokenKey {
        TokenKey {
            secret: b"secret".to_vec(),
            kid: "k1".into(),
            audience: "aud".into(),
            max_lifetime_secs: 86_400,
        }
    }

    fn claims(exp: i64) -> Value {
        json!({"sub": "u1", "aud": "aud", "iat": 1000, "exp": exp, "parameters": {"team": "a"}})
    }

    #[test]
    fn a_signed_token_verifies_and_carries_its_claims() {
        let token = key().sign(&claims(2000));
        let verified = key().verify(&token, 1500).unwrap();
        assert_eq!(verified.user_id, "u1");
        assert_eq!(verified.expires_at, 2000);
        assert_eq!(verified.parameters["team"], "a");
    }

    #[test]
    fn every_broken_rule_is_refused_with_its_code() {
        let token = key().sign(&claims(2000));
        assert_eq!(key().verify(&token, 2000).unwrap_err().code, "PSYNC_S2103");
        let other_key = TokenKey {
            secret: b"other".to_vec(),
            ..key()
        };
        assert_eq!(
            other_key.verify(&token, 1500).unwrap_err().code,
            "PSYNC_S2102"
        );
        let other_kid = TokenKey {
            kid: "k2".into(),
            ..key()
        };
        assert_eq!(
            other_kid.verify(&token, 1500).unwrap_err().code,
            "PSYNC_S2102"
        );
        let other_aud = TokenKey {
            audience: "x".into(),
            ..key()
        };
        assert_eq!(
            other_aud.verify(&token, 1500).unwrap_err().code,
            "PSYNC_S2105"
        );
        let too_long = key().sign(&claims(1000 + 86_401));
        assert_eq!(
            key().verify(&too_long, 1500).unwrap_err().code,
            "PSYNC_S2104"
        );
        let no_sub = key().sign(&json!({"aud": "aud", "iat": 1000, "exp": 2000}));
        assert_eq!(key().verify(&no_sub, 1500).unwrap_err().code, "PSYNC_S2101");
        assert!(key().verify("garbage", 1500).is_err());
        let mut tampered = token.clone();
        tampered.insert(tampered.len() - 3, 'x');
        assert!(key().verify(&tampered, 1500).is_err());
    }
}
