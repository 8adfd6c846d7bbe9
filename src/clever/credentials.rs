//! Clever credentials from where operators keep them: the one parser of a credentials Secret
//! (`data` or `stringData`; key `token`, or keys `client_id` and `client_secret`) and of the
//! environment the sync Job gets them in. Values are trimmed; an empty value counts as absent.
use k8s_openapi::api::core::v1::Secret;

use super::{AppCredentials, Token};

/// How a run authenticates to Clever.
#[derive(Clone, Debug)]
pub enum CleverCredentials {
    /// A district token (Secret key `token`, env `CLEVER_TOKEN`).
    Token(Token),
    /// App credentials, to look the district token up (`client_id` + `client_secret`).
    App(AppCredentials),
}

/// Which Secret keys hold the credentials: what the sync Job's env refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialKeys {
    /// Key `token`: a district token.
    Token,
    /// Keys `client_id` and `client_secret`: app credentials.
    AppCredentials,
}

/// A Secret without usable credentials.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "Secret {0} has neither key `token` nor both `client_id` and `client_secret`: add the district \
     token under `token`"
)]
pub struct SecretKeysMissing(pub String);

impl CleverCredentials {
    /// The credentials in `secret` (a district token wins over app credentials).
    pub fn from_secret(secret: &Secret) -> Result<CleverCredentials, SecretKeysMissing> {
        let get = |key: &str| secret_value(secret, key);
        CleverCredentials::from_lookup(get)
            .ok_or_else(|| SecretKeysMissing(secret.metadata.name.clone().unwrap_or_default()))
    }

    /// From `CLEVER_TOKEN`, else `CLEVER_CLIENT_ID` + `CLEVER_CLIENT_SECRET`.
    pub fn from_env() -> Option<CleverCredentials> {
        CleverCredentials::from_lookup(|key| {
            let var = match key {
                "token" => "CLEVER_TOKEN",
                "client_id" => "CLEVER_CLIENT_ID",
                _ => "CLEVER_CLIENT_SECRET",
            };
            std::env::var(var).ok()
        })
    }

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Option<CleverCredentials> {
        let get = |key: &str| {
            get(key)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if let Some(token) = get("token") {
            return Some(CleverCredentials::Token(Token::new(token)));
        }
        Some(CleverCredentials::App(AppCredentials {
            client_id: get("client_id")?,
            client_secret: Token::new(get("client_secret")?),
        }))
    }

    /// Which keys they came from.
    pub fn keys(&self) -> CredentialKeys {
        match self {
            CleverCredentials::Token(_) => CredentialKeys::Token,
            CleverCredentials::App(_) => CredentialKeys::AppCredentials,
        }
    }
}

/// A key of the Secret, from `data` (as the API server returns it) or `stringData` (as a
/// manifest may give it); not valid UTF-8 counts as absent.
fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    if let Some(v) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return String::from_utf8(v.0.clone()).ok();
    }
    secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(data: &[(&str, &str)], string_data: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: kube::api::ObjectMeta {
                name: Some("clever".into()),
                ..Default::default()
            },
            data: (!data.is_empty()).then(|| {
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect()
            }),
            string_data: (!string_data.is_empty()).then(|| {
                string_data
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            }),
            ..Default::default()
        }
    }

    fn keys(s: &Secret) -> Option<CredentialKeys> {
        CleverCredentials::from_secret(s).ok().map(|c| c.keys())
    }

    #[test]
    fn secret_keys_table() {
        use CredentialKeys::*;
        type Keys<'a> = &'a [(&'a str, &'a str)];
        let cases: [(Keys, Keys, Option<CredentialKeys>); 9] = [
            (&[("token", "t")], &[], Some(Token)),
            (&[], &[("token", "t")], Some(Token)),
            (&[("token", " \n")], &[], None),
            (
                &[("client_id", "i"), ("client_secret", "s")],
                &[],
                Some(AppCredentials),
            ),
            (
                &[("client_id", "i")],
                &[("client_secret", "s")],
                Some(AppCredentials),
            ),
            (&[("client_id", "i")], &[], None),
            (
                &[("token", "t"), ("client_id", "i"), ("client_secret", "s")],
                &[],
                Some(Token),
            ),
            (&[("other", "x")], &[], None),
            (&[], &[], None),
        ];
        for (data, string_data, want) in cases {
            assert_eq!(
                keys(&secret(data, string_data)),
                want,
                "{data:?} {string_data:?}"
            );
        }
    }

    #[test]
    fn values_are_trimmed_and_the_error_names_the_secret() {
        match CleverCredentials::from_secret(&secret(&[("token", " abc\n")], &[])) {
            Ok(CleverCredentials::Token(t)) => assert_eq!(t.expose(), "abc"),
            other => panic!("{other:?}"),
        }
        let err = CleverCredentials::from_secret(&secret(&[], &[])).expect_err("no keys");
        assert!(err.to_string().contains("Secret clever"), "{err}");
    }
}
