//! Credentials for the Track API, kept out of every `Debug`, log line and report.

use std::fmt;

/// A Track API key. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key read from the environment or a flag.
    pub fn new(value: impl Into<String>) -> Self {
        ApiKey(value.into())
    }

    /// The key itself, for the one place that builds the Authorization header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A site id and its API key: what HTTP Basic auth needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The workspace's site id (not secret on its own).
    pub site_id: String,
    /// The Track API key.
    pub api_key: ApiKey,
}

/// Name of the environment variable holding the site id.
pub const SITE_ID_ENV: &str = "CUSTOMERIO_SITE_ID";
/// Name of the environment variable holding the Track API key.
pub const API_KEY_ENV: &str = "CUSTOMERIO_TRACK_API_KEY";

impl Credentials {
    /// Reads both variables; `None` when either is missing or empty.
    pub fn from_env() -> Option<Credentials> {
        Self::from_env_names(SITE_ID_ENV, API_KEY_ENV)
    }

    /// Reads the credentials from the named environment variables.
    pub fn from_env_names(site_var: &str, key_var: &str) -> Option<Credentials> {
        let site_id = std::env::var(site_var).ok().filter(|s| !s.is_empty())?;
        let key = std::env::var(key_var).ok().filter(|s| !s.is_empty())?;
        Some(Credentials {
            site_id,
            api_key: ApiKey::new(key),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_key() {
        let c = Credentials {
            site_id: "site".into(),
            api_key: ApiKey::new("very-secret-key"),
        };
        let shown = format!("{c:?} {} {:?}", c.api_key, c.api_key);
        assert!(!shown.contains("very-secret-key"), "{shown}");
        assert!(shown.contains("site"));
    }
}
