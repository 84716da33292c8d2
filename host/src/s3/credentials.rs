//! Access keys that never print and are wiped from memory when dropped.

use std::fmt;

/// An S3 access key pair (and optional session token).
///
/// `Debug` and `Display` show nothing secret; the backing strings are
/// zeroized on drop (the signing library stores them in `Zeroizing`).
#[derive(Clone)]
pub struct Credentials {
    inner: aws_credential_types::Credentials,
}

impl Credentials {
    /// Credentials from an access key id, its secret and, for temporary credentials, a session token.
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        Self {
            inner: aws_credential_types::Credentials::new(
                access_key_id,
                secret_access_key,
                session_token,
                None,
                "byos3",
            ),
        }
    }

    /// The access key id. Not a secret by itself, but keep it out of logs anyway.
    pub fn access_key_id(&self) -> &str {
        self.inner.access_key_id()
    }

    /// The secret key, for sealing in the vault. Never log or return it.
    pub fn secret_access_key(&self) -> &str {
        self.inner.secret_access_key()
    }

    /// The session token of temporary credentials (sent as `x-amz-security-token`); `None` for long-term
    /// keys. A secret: never log it.
    pub fn session_token(&self) -> Option<&str> {
        self.inner.session_token()
    }

    pub(crate) fn identity(&self) -> aws_smithy_runtime_api::client::identity::Identity {
        self.inner.clone().into()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted credentials>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_reveal_nothing() {
        let c = Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI-secret", Some("tok-secret".into()));
        for s in [format!("{c:?}"), format!("{c}"), format!("{c:#?}")] {
            assert!(!s.contains("AKIDEXAMPLE") && !s.contains("secret"), "{s}");
        }
    }
}
